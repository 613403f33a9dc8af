"""Billing periods are calendar months in Asia/Tokyo."""

from __future__ import annotations

from datetime import UTC, date, datetime

from hypothesis import given
from hypothesis import strategies as st

from billing.periods import last_day, next_period, period_end, period_of, period_start, previous_period, valid_period


def test_an_instant_belongs_to_its_tokyo_month() -> None:
    """15:00 UTC on the last day of November is already December in Tokyo."""
    assert period_of(datetime(2026, 11, 30, 14, 59, tzinfo=UTC)) == "2026-11"
    assert period_of(datetime(2026, 11, 30, 15, 0, tzinfo=UTC)) == "2026-12"


def test_periods_roll_over_the_year() -> None:
    """December is followed by January of the next year; the bounds are JST midnights."""
    assert next_period("2026-12") == "2027-01"
    assert previous_period("2027-01") == "2026-12"
    assert previous_period(next_period("2026-06")) == "2026-06"
    assert period_start("2027-01") == datetime(2026, 12, 31, 15, 0, tzinfo=UTC)
    assert period_end("2026-12") == period_start("2027-01")
    assert last_day("2028-02") == date(2028, 2, 29)


def test_period_format() -> None:
    """Only YYYY-MM with a real month is a period."""
    assert valid_period("2026-11")
    assert not valid_period("2026-13")
    assert not valid_period("2026-1")
    assert not valid_period("26-11")


# hypothesis takes naive bounds and attaches the zone itself
@given(st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)))  # noqa: DTZ001
def test_every_instant_lies_inside_its_period(moment: datetime) -> None:
    """start(period_of(t)) <= t < end(period_of(t)) for any instant."""
    period = period_of(moment)
    assert period_start(period) <= moment < period_end(period)
