"""The purchase decision of product.md §4: in order, the first failing check wins.

Everything the decision needs is gathered first into ``PurchaseFacts`` (the worker loads it,
with the usage rows locked); ``decide_purchase`` is then a pure function of those facts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

__all__ = [
    "LOCK_AFTER_FAILURES",
    "LOCK_DURATION",
    "WRONG_PASSWORDS_PER_PURCHASE",
    "Decision",
    "PurchaseFacts",
    "decide_my_page_sign_in",
    "decide_purchase",
    "decide_renewal",
    "may_try_again",
]

LOCK_AFTER_FAILURES = 5
WRONG_PASSWORDS_PER_PURCHASE = 5
LOCK_DURATION = timedelta(minutes=30)


@dataclass(frozen=True, kw_only=True)
class PurchaseFacts:
    """What is known when a subscriber's confirmation is decided."""

    now: datetime
    amount: int
    account_found: bool
    password_ok: bool
    failed_attempts: int = 0
    locked_until: datetime | None = None
    line_active: bool = True
    line_eligible: bool = True
    address_in_open_session: bool = False
    merchant_active: bool = True
    account_spent: int = 0
    account_limit: int = 0
    line_spent: int = 0
    line_limit: int = 0


@dataclass(frozen=True, kw_only=True)
class Decision:
    """``failure_code`` is None for a purchase that succeeds; the counter and lock are what the
    ID's failed-attempt state becomes."""

    failure_code: str | None
    failed_attempts: int
    locked_until: datetime | None

    @property
    def succeeded(self) -> bool:
        """True when every check passed."""
        return self.failure_code is None


def decide_purchase(facts: PurchaseFacts) -> Decision:
    """Apply the checks of product.md §4 in order; the first failure wins.

    A locked ID is refused before its password is looked at, so guessing during the lock
    learns nothing. The fifth consecutive wrong password locks the ID for 30 minutes; a
    right password resets the counter, whatever the later checks decide.
    """
    if not facts.account_found:
        return Decision(failure_code="invalid_credentials", failed_attempts=0, locked_until=None)
    if facts.locked_until is not None and facts.now < facts.locked_until:
        return Decision(
            failure_code="account_locked", failed_attempts=facts.failed_attempts, locked_until=facts.locked_until
        )
    if not facts.password_ok:
        attempts = facts.failed_attempts + 1
        if attempts >= LOCK_AFTER_FAILURES:
            return Decision(failure_code="account_locked", failed_attempts=0, locked_until=facts.now + LOCK_DURATION)
        return Decision(failure_code="invalid_credentials", failed_attempts=attempts, locked_until=None)
    failure = _first_failure(facts)
    return Decision(failure_code=failure, failed_attempts=0, locked_until=None)


def _first_failure(facts: PurchaseFacts) -> str | None:
    checks = (
        (facts.line_active, "line_inactive"),
        (facts.line_eligible, "line_ineligible"),
        (facts.address_in_open_session, "line_mismatch"),
        (facts.merchant_active, "merchant_inactive"),
        (facts.account_spent + facts.amount <= facts.account_limit, "limit_exceeded"),
        (facts.line_spent + facts.amount <= facts.line_limit, "limit_exceeded"),
    )
    return next((code for passed, code in checks if not passed), None)


def decide_renewal(facts: PurchaseFacts) -> Decision:
    """A monthly renewal: the subscriber agreed once, so no password, lock or address is
    asked again; the line, the merchant and the limits are checked as for a purchase."""
    return decide_purchase(
        PurchaseFacts(
            now=facts.now,
            amount=facts.amount,
            account_found=True,
            password_ok=True,
            line_active=facts.line_active,
            line_eligible=facts.line_eligible,
            address_in_open_session=True,
            merchant_active=facts.merchant_active,
            account_spent=facts.account_spent,
            account_limit=facts.account_limit,
            line_spent=facts.line_spent,
            line_limit=facts.line_limit,
        )
    )


def decide_my_page_sign_in(facts: PurchaseFacts) -> Decision:
    """Signing in to the my page (product.md §10): exactly a purchase's password, lock, line and
    address checks, on the same counter; no merchant and no amount, so those checks pass."""
    return decide_purchase(
        replace(facts, amount=0, merchant_active=True, account_spent=0, account_limit=0, line_spent=0, line_limit=0)
    )


def may_try_again(failure_code: str | None, wrong_passwords_on_purchase: int) -> bool:
    """Whether a failed sign-in leaves the purchase open for another try (product.md §10):
    only a wrong ID or password, and only until the purchase has had five of them (counting
    this one). A lock, a line problem, a limit... end the purchase at once."""
    return failure_code == "invalid_credentials" and wrong_passwords_on_purchase < WRONG_PASSWORDS_PER_PURCHASE
