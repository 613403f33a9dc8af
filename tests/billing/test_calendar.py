"""Business days: weekends, Japanese public holidays and the year-end bank holidays are closed."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.calendar import is_business_day, last_business_day, payout_date
from billing.periods import last_day, next_period


@pytest.mark.parametrize(
    ("day", "open_"),
    [
        (date(2026, 4, 28), True),
        (date(2026, 4, 29), False),  # 昭和の日, a Wednesday
        (date(2026, 4, 30), True),
        (date(2026, 5, 1), True),
        (date(2026, 5, 2), False),  # Saturday
        (date(2026, 5, 3), False),  # 憲法記念日, a Sunday
        (date(2026, 5, 4), False),  # みどりの日
        (date(2026, 5, 5), False),  # こどもの日
        (date(2026, 5, 6), False),  # 振替休日 for May 3
        (date(2026, 5, 7), True),
    ],
)
def test_golden_week(day: date, open_: bool) -> None:
    """Golden Week 2026: Showa Day and May 3-6 are closed, the weekdays between are open."""
    assert is_business_day(day) is open_


@pytest.mark.parametrize(
    ("day", "open_"),
    [
        (date(2026, 12, 30), True),
        (date(2026, 12, 31), False),  # bank holiday, not a public one
        (date(2027, 1, 1), False),  # 元日
        (date(2027, 1, 2), False),  # bank holiday (a Saturday too)
        (date(2027, 1, 3), False),  # bank holiday (a Sunday too)
        (date(2027, 1, 4), True),  # Monday: banks open
        (date(2028, 1, 3), False),  # a Monday, closed as a bank holiday only
        (date(2028, 1, 4), True),
    ],
)
def test_new_year_bank_holidays(day: date, open_: bool) -> None:
    """December 31 and January 1-3 are bank holidays even on weekdays."""
    assert is_business_day(day) is open_


def test_a_month_ending_on_sunday() -> None:
    """May 2026 ends on Sunday the 31st: its last business day is Friday the 29th."""
    assert date(2026, 5, 31).weekday() == 6
    assert last_business_day(2026, 5) == date(2026, 5, 29)


def test_december_ends_before_new_years_eve() -> None:
    """December 2026's last business day is Wednesday the 30th."""
    assert last_business_day(2026, 12) == date(2026, 12, 30)


def test_payout_is_the_last_business_day_of_p_plus_2() -> None:
    """November 2026 is paid out on Friday 2027-01-29 (January 31 is a Sunday)."""
    assert payout_date("2026-11") == date(2027, 1, 29)
    assert payout_date("2026-03") == date(2026, 5, 29)


@given(st.integers(min_value=2000, max_value=2099), st.integers(min_value=1, max_value=12))
def test_last_business_day_is_the_last_open_day(year: int, month: int) -> None:
    """The day is in the month, is a business day, and no later day of the month is."""
    day = last_business_day(year, month)
    assert (day.year, day.month) == (year, month)
    assert is_business_day(day)
    end = last_day(f"{year:04d}-{month:02d}")
    later = day + timedelta(days=1)
    while later <= end:
        assert not is_business_day(later)
        later += timedelta(days=1)


@given(st.integers(min_value=2000, max_value=2099), st.integers(min_value=1, max_value=12))
def test_payout_falls_in_p_plus_2(year: int, month: int) -> None:
    """The payout date lies in the month two after the period."""
    period = f"{year:04d}-{month:02d}"
    target = next_period(next_period(period))
    assert payout_date(period).strftime("%Y-%m") == target


@given(st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)))
def test_weekends_are_never_business_days(day: date) -> None:
    """Saturdays and Sundays are closed whatever else the day is."""
    if day.weekday() >= 5:
        assert not is_business_day(day)
