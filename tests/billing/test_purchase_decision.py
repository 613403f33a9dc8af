"""The purchase decision (product.md §4): checks in order, first failure wins, lock after five."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.purchases import LOCK_DURATION, PurchaseFacts, decide_purchase

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
GOOD = PurchaseFacts(
    now=NOW,
    amount=3000,
    account_found=True,
    password_ok=True,
    line_active=True,
    line_eligible=True,
    address_in_open_session=True,
    merchant_active=True,
    account_spent=0,
    account_limit=50_000,
    line_spent=0,
    line_limit=100_000,
)


def test_all_checks_pass() -> None:
    """Right password, active eligible line, right address, active merchant, within limits: success."""
    decision = decide_purchase(GOOD)
    assert decision.succeeded
    assert decision.failure_code is None


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"account_found": False}, "invalid_credentials"),
        ({"password_ok": False}, "invalid_credentials"),
        ({"locked_until": NOW + timedelta(minutes=1)}, "account_locked"),
        ({"line_active": False}, "line_inactive"),
        ({"line_eligible": False}, "line_ineligible"),
        ({"address_in_open_session": False}, "line_mismatch"),
        ({"merchant_active": False}, "merchant_inactive"),
        ({"account_spent": 47_001}, "limit_exceeded"),
        ({"line_spent": 97_001}, "limit_exceeded"),
    ],
)
def test_each_failure_has_its_own_cause(change: dict[str, object], code: str) -> None:
    """Each broken rule alone produces its own failure code."""
    assert decide_purchase(replace(GOOD, **change)).failure_code == code  # type: ignore[arg-type]


def test_order_first_failure_wins() -> None:
    """With everything wrong at once, the earliest check of §4 is the one reported."""
    everything_wrong = replace(
        GOOD,
        line_active=False,
        line_eligible=False,
        address_in_open_session=False,
        merchant_active=False,
        account_spent=10**9,
    )
    assert decide_purchase(everything_wrong).failure_code == "line_inactive"
    assert decide_purchase(replace(everything_wrong, line_active=True)).failure_code == "line_ineligible"
    assert decide_purchase(replace(everything_wrong, password_ok=False)).failure_code == "invalid_credentials"


def test_limit_is_inclusive() -> None:
    """Spending exactly up to the limit is allowed; one yen more is not."""
    assert decide_purchase(replace(GOOD, account_spent=47_000)).succeeded
    assert not decide_purchase(replace(GOOD, account_spent=47_001)).succeeded


def test_fifth_wrong_password_locks_for_thirty_minutes() -> None:
    """Four failures count up; the fifth locks the ID until now + 30 minutes."""
    facts = replace(GOOD, password_ok=False)
    for attempt in range(1, 5):
        decision = decide_purchase(facts)
        assert (decision.failure_code, decision.failed_attempts) == ("invalid_credentials", attempt)
        facts = replace(facts, failed_attempts=decision.failed_attempts)
    locked = decide_purchase(facts)
    assert locked.failure_code == "account_locked"
    assert locked.locked_until == NOW + LOCK_DURATION


def test_right_password_during_the_lock_is_still_refused_and_after_it_works() -> None:
    """A lock holds whatever is typed; once it has passed, the right password succeeds."""
    locked = replace(GOOD, locked_until=NOW + timedelta(minutes=10))
    assert decide_purchase(locked).failure_code == "account_locked"
    after = replace(locked, now=NOW + timedelta(minutes=11))
    assert decide_purchase(after).succeeded


def test_success_resets_the_counter() -> None:
    """A right password clears earlier failures, even when a later check fails."""
    decision = decide_purchase(replace(GOOD, failed_attempts=3, merchant_active=False))
    assert decision.failed_attempts == 0


@given(
    spent=st.integers(min_value=0, max_value=200_000),
    amount=st.integers(min_value=1, max_value=50_000),
    limit=st.integers(min_value=0, max_value=200_000),
)
def test_a_success_never_takes_an_id_over_its_limit(spent: int, amount: int, limit: int) -> None:
    """Whatever was spent, a succeeded purchase leaves the ID within its limit."""
    decision = decide_purchase(replace(GOOD, account_spent=spent, amount=amount, account_limit=limit))
    assert decision.succeeded == (spent + amount <= limit)


def test_only_a_wrong_password_leaves_the_purchase_open_and_only_four_times() -> None:
    """invalid_credentials may be retried until the purchase's fifth; every other failure ends it at once."""
    from billing.purchases import may_try_again

    assert [may_try_again("invalid_credentials", n) for n in range(1, 6)] == [True, True, True, True, False]
    for code in ("account_locked", "line_mismatch", "line_inactive", "limit_exceeded", "merchant_inactive", None):
        assert not may_try_again(code, 1)
