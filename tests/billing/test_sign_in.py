"""Staff sign-in rules: the lockout, and the password and e-mail checks of the sites' forms."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from billing.sign_in import SignInOutcome, decide_sign_in, email_problem, password_problem

NOW = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)


def test_five_wrong_passwords_lock_for_thirty_minutes() -> None:
    """Four wrong passwords count up; the fifth locks until 30 minutes later."""
    failures, locked = 0, None
    outcomes = []
    for _ in range(5):
        decision = decide_sign_in(password_ok=False, failed_attempts=failures, locked_until=locked, now=NOW)
        failures, locked = decision.failed_attempts, decision.locked_until
        outcomes.append(decision.outcome)
    assert outcomes == [SignInOutcome.WRONG_PASSWORD] * 4 + [SignInOutcome.LOCKED]
    assert locked == NOW + timedelta(minutes=30)


def test_a_locked_user_is_refused_even_with_the_right_password_until_the_lock_ends() -> None:
    """During the lock the right password is refused; after it, it signs in and clears the counter."""
    until = NOW + timedelta(minutes=30)
    during = decide_sign_in(password_ok=True, failed_attempts=0, locked_until=until, now=NOW)
    after = decide_sign_in(password_ok=True, failed_attempts=3, locked_until=until, now=until)
    assert during.outcome == SignInOutcome.LOCKED
    assert (after.outcome, after.failed_attempts, after.locked_until) == (SignInOutcome.SIGNED_IN, 0, None)


@given(st.integers(min_value=0, max_value=3))
def test_a_right_password_clears_any_count_below_the_lock(failures: int) -> None:
    """Whatever was counted before, a right password while unlocked signs in with the count at zero."""
    decision = decide_sign_in(password_ok=True, failed_attempts=failures, locked_until=None, now=NOW)
    assert decision.outcome == SignInOutcome.SIGNED_IN
    assert decision.failed_attempts == 0


def test_weak_passwords_are_named() -> None:
    """Short, equal to the login, or one repeated pattern: each has its own code; a good one has none."""
    assert password_problem("short", login="a@example.jp") == "password_too_short"
    assert password_problem("A@Example.jp", login="a@example.jp") == "password_is_login"
    assert password_problem("ababababab", login="a@example.jp") == "password_too_simple"
    assert password_problem("correct horse battery", login="a@example.jp") is None


def test_email_addresses_are_checked_plainly() -> None:
    """Empty, no @, or no dot in the domain are refused; an ordinary address passes."""
    assert email_problem("") == "required"
    assert email_problem("not-an-address") == "invalid_email"
    assert email_problem("a@localhost") == "invalid_email"
    assert email_problem("hanako@shop.example.jp") is None


def test_an_email_with_a_c1_control_or_a_byte_order_mark_is_refused() -> None:
    """U+0085 (whitespace to Python, not to JSON Schema), other C1 controls and U+FEFF (whitespace
    to JSON Schema only) are refused, as the ops document's pattern refuses them (schemathesis
    found U+0085 accepted by the document and refused here)."""
    for address in ("a\x85b@shop.example.jp", "a\ufeffb@shop.example.jp", "ab@shop\x9a.example.jp"):
        assert email_problem(address) == "invalid_email"
    assert email_problem("はなこ@shop.example.jp") is None
