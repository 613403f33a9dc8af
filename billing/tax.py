"""Consumption tax by Japan's qualified-invoice rule (適格請求書, product.md §5).

Prices are tax-included. Per invoice and per tax rate, the tax contained in the rate's total is
computed once, exactly, and rounded down: ``floor(total * rate / (1 + rate))``. Rounding each
item and adding the results is wrong (three 105-yen items at 10% contain 28 yen of tax, not
3 x 9 = 27).

A negative total (a credit-heavy invoice) contains the negated tax of its absolute value, so
the rounding is toward zero on both sides: ``tax_included(-315, 10%) == -28``. An invoice and
its exact reversal therefore carry exactly opposite taxes.

Rates are effective-dated data. Only the standard rate is kept: digital content is never under
the reduced rate (軽減税率).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

__all__ = ["TAX_RATES", "TaxLine", "invoice_taxes", "price_of_net", "rate_on", "tax_included"]

# (effective from, standard rate), oldest first. Days before the first entry have no rate here:
# the platform never bills them, and answering 8% for them would be wrong (it was 5%).
TAX_RATES: tuple[tuple[date, Decimal], ...] = (
    (date(2014, 4, 1), Decimal("0.08")),
    (date(2019, 10, 1), Decimal("0.10")),
)


@dataclass(frozen=True)
class TaxLine:
    """One rate's line of an invoice: the tax-included total at that rate and the tax in it."""

    rate: Decimal
    taxable_total: int
    tax: int


def rate_on(day: date) -> Decimal:
    """The standard rate in force on ``day``; ``ValueError`` before the first known rate."""
    current: Decimal | None = None
    for effective_from, rate in TAX_RATES:
        if effective_from <= day:
            current = rate
    if current is None:
        raise ValueError(f"no consumption tax rate is known for {day.isoformat()}")
    return current


def tax_included(total: int, rate: Decimal) -> int:
    """The tax contained in the tax-included ``total``: ``floor(total * rate / (1 + rate))``,
    exact (integer arithmetic on the rate's fraction), and ``-tax_included(-total)`` for a
    negative total (rounded toward zero)."""
    if not rate.is_finite() or rate < 0:
        raise ValueError(f"a tax rate is a finite non-negative decimal, not {rate}")
    if total < 0:
        return -tax_included(-total, rate)
    numerator, denominator = rate.as_integer_ratio()
    # total * (n/d) / (1 + n/d) == total * n / (d + n); // on non-negative ints is the floor
    return total * numerator // (denominator + numerator)


def price_of_net(net: int, rate: Decimal) -> int:
    """The tax-included price of a ``net`` amount (an aggregator's ``isTaxIncluded: false``):
    the net amount plus its tax at ``rate``, rounded down: ``net + floor(net * rate)``."""
    if not rate.is_finite() or rate < 0:
        raise ValueError(f"a tax rate is a finite non-negative decimal, not {rate}")
    if net < 0:
        raise ValueError(f"a net amount is not negative, not {net}")
    numerator, denominator = rate.as_integer_ratio()
    return net + net * numerator // denominator


def invoice_taxes(items: Iterable[tuple[int, Decimal]]) -> list[TaxLine]:
    """One ``TaxLine`` per rate of the invoice's ``(amount, rate)`` items: the amounts at a rate
    are added first and the tax is rounded once per rate. Lines come highest rate first."""
    totals: dict[Decimal, int] = {}
    for amount, rate in items:
        totals[rate] = totals.get(rate, 0) + amount
    return [
        TaxLine(rate=rate, taxable_total=total, tax=tax_included(total, rate))
        for rate, total in sorted(totals.items(), key=lambda entry: entry[0], reverse=True)
    ]
