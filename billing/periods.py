"""Billing periods: calendar months in Asia/Tokyo, written ``YYYY-MM``."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

__all__ = [
    "JST",
    "LAST_CLOCK_YEAR",
    "clock_in_range",
    "month_start",
    "next_period",
    "period_end",
    "period_of",
    "period_start",
    "previous_period",
    "valid_period",
]

JST = ZoneInfo("Asia/Tokyo")
PERIOD_PATTERN = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
# The calendar serves four-digit years; a month's bill falls due and is paid out in the months
# after it, so the platform's clock stays before the last year by a year of headroom.
LAST_CLOCK_YEAR = 9997


def clock_in_range(moment: datetime) -> bool:
    """True when every month, due date and payout that ``moment`` brings due is a ``YYYY-MM``."""
    return moment.astimezone(JST).year <= LAST_CLOCK_YEAR


def valid_period(period: str) -> bool:
    """True for ``YYYY-MM`` with a real month."""
    return bool(PERIOD_PATTERN.match(period))


def period_of(moment: datetime) -> str:
    """The period (JST month) an aware instant falls in."""
    if moment.tzinfo is None:
        raise ValueError("an instant needs its UTC offset")
    local = moment.astimezone(JST)
    return f"{local.year:04d}-{local.month:02d}"


def _year_month(period: str) -> tuple[int, int]:
    match = PERIOD_PATTERN.match(period)
    if match is None:
        raise ValueError(f"not a period: {period!r}")
    return int(match.group(1)), int(match.group(2))


def next_period(period: str) -> str:
    """The month after ``period``."""
    year, month = _year_month(period)
    return f"{year + 1:04d}-01" if month == 12 else f"{year:04d}-{month + 1:02d}"


def previous_period(period: str) -> str:
    """The month before ``period``."""
    year, month = _year_month(period)
    return f"{year - 1:04d}-12" if month == 1 else f"{year:04d}-{month - 1:02d}"


def month_start(period: str) -> date:
    """The first day of ``period``."""
    year, month = _year_month(period)
    return date(year, month, 1)


def period_start(period: str) -> datetime:
    """The instant ``period`` begins: 00:00 JST on its first day, in UTC."""
    year, month = _year_month(period)
    return datetime(year, month, 1, tzinfo=JST).astimezone(UTC)


def period_end(period: str) -> datetime:
    """The instant ``period`` ends (exclusive): when the next one begins."""
    return period_start(next_period(period))


def last_day(period: str) -> date:
    """The last calendar day of ``period``."""
    return month_start(next_period(period)) - timedelta(days=1)
