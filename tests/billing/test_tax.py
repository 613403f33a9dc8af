"""Consumption tax by the qualified-invoice rule: once per rate per invoice, rounded down."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from fractions import Fraction
from math import floor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.tax import TaxLine, invoice_taxes, price_of_net, rate_on, tax_included

TEN = Decimal("0.10")
EIGHT = Decimal("0.08")

rates = st.sampled_from([TEN, EIGHT, Decimal("0.05"), Decimal("0.03"), Decimal(0)])


def test_rates_change_on_their_effective_day() -> None:
    """8% until 2019-09-30, 10% from 2019-10-01 on."""
    assert rate_on(date(2019, 9, 30)) == EIGHT
    assert rate_on(date(2019, 10, 1)) == TEN
    assert rate_on(date(2026, 11, 30)) == TEN


def test_no_rate_before_the_table_begins() -> None:
    """A day before the first known rate is refused rather than guessed."""
    with pytest.raises(ValueError, match="2014-03-31"):
        rate_on(date(2014, 3, 31))


def test_three_items_are_taxed_once_not_per_item() -> None:
    """Three 105-yen items at 10%: floor(315 x 0.1 / 1.1) = 28, not 3 x floor(105 / 11) = 27."""
    lines = invoice_taxes([(105, TEN), (105, TEN), (105, TEN)])
    assert lines == [TaxLine(rate=TEN, taxable_total=315, tax=28)]
    assert sum(tax_included(105, TEN) for _ in range(3)) == 27


@pytest.mark.parametrize(
    ("total", "rate", "tax"),
    [
        (110, TEN, 10),
        (109, TEN, 9),
        (11, TEN, 1),
        (10, TEN, 0),
        (108, EIGHT, 8),
        (1000, TEN, 90),
        (0, TEN, 0),
        (500, Decimal(0), 0),
    ],
)
def test_tax_contained_in_a_total(total: int, rate: Decimal, tax: int) -> None:
    """The tax inside a tax-included total is floored, and exact where the division is exact."""
    assert tax_included(total, rate) == tax


def test_negative_totals_round_toward_zero() -> None:
    """A negative total carries minus the tax of its absolute value."""
    assert tax_included(-315, TEN) == -28
    assert tax_included(-10, TEN) == 0


def test_negative_rate_is_refused() -> None:
    """A tax rate is never negative."""
    with pytest.raises(ValueError, match="rate"):
        tax_included(100, Decimal("-0.1"))


def test_rates_are_grouped_and_credits_net_within_their_rate() -> None:
    """Each rate gets one line, highest rate first; a credit lowers its rate's total before rounding."""
    lines = invoice_taxes([(1000, TEN), (216, EIGHT), (-300, TEN)])
    assert lines == [TaxLine(rate=TEN, taxable_total=700, tax=63), TaxLine(rate=EIGHT, taxable_total=216, tax=16)]


def test_an_invoice_without_items_has_no_tax_lines() -> None:
    """No items, no tax lines."""
    assert invoice_taxes([]) == []


@given(st.integers(min_value=1, max_value=10**12), rates)
def test_tax_is_less_than_a_positive_total(total: int, rate: Decimal) -> None:
    """0 <= tax < total for any positive total."""
    assert 0 <= tax_included(total, rate) < total


@given(st.integers(min_value=-(10**12), max_value=10**12), rates)
def test_tax_is_the_exact_floor(total: int, rate: Decimal) -> None:
    """The tax equals floor(|total| x rate / (1 + rate)) in exact fractions, with the total's sign."""
    exact = Fraction(abs(total)) * Fraction(rate) / (1 + Fraction(rate))
    expected = floor(exact)
    assert tax_included(total, rate) == (expected if total >= 0 else -expected)


@given(st.lists(st.integers(min_value=-100_000, max_value=100_000), min_size=1), rates)
def test_items_at_one_rate_are_taxed_as_their_sum(amounts: list[int], rate: Decimal) -> None:
    """However a rate's total is split into items, its tax is the tax of the total computed once."""
    [line] = invoice_taxes([(amount, rate) for amount in amounts])
    assert line.taxable_total == sum(amounts)
    assert line.tax == tax_included(sum(amounts), rate)


def test_a_net_amount_gets_its_tax_added_rounded_down() -> None:
    """300 yen net at 10% is 330 yen; 305 yen net is 335 (30.5 rounded down); 8% of 105 is 8.4 → 113."""
    assert price_of_net(300, TEN) == 330
    assert price_of_net(305, TEN) == 335
    assert price_of_net(105, EIGHT) == 113
    with pytest.raises(ValueError):
        price_of_net(-1, TEN)


@given(st.integers(min_value=0, max_value=10**12), rates)
def test_a_price_of_a_net_amount_is_net_plus_the_floor_of_its_tax(net: int, rate: Decimal) -> None:
    """The price less the net amount is floor(net x rate) exactly; the tax it contains is at most what was added."""
    price = price_of_net(net, rate)
    assert price - net == floor(Fraction(net) * Fraction(rate))
    assert tax_included(price, rate) <= price - net
