"""Staff sign-in to the sites (product.md §10): the same lockout as a subscriber's ID, and the
password and e-mail rules a form checks before anything is written.

Pure functions of plain values; ``models.operations.site_users`` loads the user, calls these,
and writes what they decide.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from billing.purchases import LOCK_AFTER_FAILURES, LOCK_DURATION

__all__ = [
    "MIN_PASSWORD_LENGTH",
    "SignInDecision",
    "SignInOutcome",
    "decide_sign_in",
    "email_problem",
    "password_problem",
]

MIN_PASSWORD_LENGTH = 10
# Deliberately plain: one @, no spaces, a dot in the domain. Delivery is the real check. No C1
# control character (U+0080-U+009F) nor U+FEFF either: Python's \s and JSON Schema's (ECMA)
# differ on U+0085 and U+FEFF, and the ops document states this rule as a pattern.
EMAIL = re.compile(r"^[^@\s\x80-\x9f\ufeff]{1,64}@[^@\s\x80-\x9f\ufeff]+\.[^@\s.\x80-\x9f\ufeff]{2,}$")
MAX_EMAIL_LENGTH = 254


class SignInOutcome(StrEnum):
    """What a sign-in attempt comes to."""

    SIGNED_IN = "signed_in"
    WRONG_PASSWORD = "wrong_password"  # noqa: S105 - an outcome; an unknown or disabled user reads the same
    LOCKED = "locked"


@dataclass(frozen=True, kw_only=True)
class SignInDecision:
    """The outcome and what the user's failure counter and lock become."""

    outcome: SignInOutcome
    failed_attempts: int
    locked_until: datetime | None


def decide_sign_in(
    *, password_ok: bool, failed_attempts: int, locked_until: datetime | None, now: datetime
) -> SignInDecision:
    """A locked user is refused before the password counts; the fifth consecutive wrong password
    locks for 30 minutes; a right password clears the counter."""
    if locked_until is not None and now < locked_until:
        return SignInDecision(outcome=SignInOutcome.LOCKED, failed_attempts=failed_attempts, locked_until=locked_until)
    if password_ok:
        return SignInDecision(outcome=SignInOutcome.SIGNED_IN, failed_attempts=0, locked_until=None)
    attempts = failed_attempts + 1
    if attempts >= LOCK_AFTER_FAILURES:
        return SignInDecision(outcome=SignInOutcome.LOCKED, failed_attempts=0, locked_until=now + LOCK_DURATION)
    return SignInDecision(outcome=SignInOutcome.WRONG_PASSWORD, failed_attempts=attempts, locked_until=None)


def password_problem(password: str, *, login: str) -> str | None:
    """Why ``password`` may not be chosen (an error code for the form), or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return "password_too_short"
    if password.strip().casefold() == login.strip().casefold():
        return "password_is_login"
    if len(set(password)) < 4:
        return "password_too_simple"
    return None


def email_problem(email: str) -> str | None:
    """Why ``email`` is not an address (an error code for the form), or None."""
    if not email:
        return "required"
    if len(email) > MAX_EMAIL_LENGTH or not EMAIL.match(email):
        return "invalid_email"
    return None
