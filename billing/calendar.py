"""Business days for payouts (product.md §7): the days Japanese banks are open.

A day is not a business day when it is a Saturday or Sunday, a national holiday (国民の祝日,
including 振替休日 and 国民の休日, from ``jpholiday``), or one of the year-end and new-year
bank holidays (銀行休業日, 銀行法施行令 第5条): December 31 and January 1 to 3. Those last three
days of the new year and New Year's Eve are not public holidays, so ``jpholiday`` alone would
miss them.

A payout for period P is scheduled for the last business day of P+2.
"""

from __future__ import annotations

from datetime import date, timedelta

import jpholiday

from billing.periods import last_day, next_period

__all__ = ["BANK_YEAR_END_HOLIDAYS", "is_business_day", "last_business_day", "payout_date"]

# (month, day) of the year-end and new-year bank holidays
BANK_YEAR_END_HOLIDAYS: frozenset[tuple[int, int]] = frozenset({(12, 31), (1, 1), (1, 2), (1, 3)})
_SATURDAY = 5


def is_business_day(day: date) -> bool:
    """True when banks are open on ``day``: a weekday, not a public holiday or a bank holiday."""
    if day.weekday() >= _SATURDAY:
        return False
    if (day.month, day.day) in BANK_YEAR_END_HOLIDAYS:
        return False
    return not bool(jpholiday.is_holiday(day))


def last_business_day(year: int, month: int) -> date:
    """The last business day of the month (every month has weekdays that are not holidays)."""
    day = last_day(f"{year:04d}-{month:02d}")
    while not is_business_day(day):
        day -= timedelta(days=1)
    return day


def payout_date(period: str) -> date:
    """When the payout for ``period`` (``YYYY-MM``) is scheduled: the last business day of P+2."""
    target = next_period(next_period(period))
    year, month = (int(part) for part in target.split("-"))
    return last_business_day(year, month)
