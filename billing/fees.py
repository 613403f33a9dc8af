"""The merchant fee (月額利用料) of product.md §7.

For a merchant and period: 5% of ``billed``; but when the average per line, ``billed / lines``,
is under 600 yen, 31.5 yen per line instead. The average is compared exactly
(``billed < threshold * lines``, no division). The fee is computed exactly in decimal and
rounded down (floor) to whole yen once, at the end. Nothing billed (``billed <= 0``) or no line
means no fee.

The rate, threshold and per-line amount form an effective-dated ``FeePlan``; the plan for a
period is the one with the latest ``effective_from`` not after it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal, Inexact, localcontext
from typing import Literal

from billing.periods import valid_period

__all__ = ["Fee", "FeePlan", "FeeRule", "merchant_fee", "plan_for"]

FeeRule = Literal["percent", "per_line"]

# Enough digits that a product of a plan figure and a yen amount is never rounded; the
# Inexact trap turns any rounding before the final floor into an error instead.
_EXACT_PRECISION = 60


@dataclass(frozen=True)
class FeePlan:
    """A merchant's fee terms from ``effective_from`` (``YYYY-MM``) on."""

    effective_from: str
    rate: Decimal = Decimal("0.05")
    threshold: int = 600
    per_line_amount: Decimal = Decimal("31.5")

    def __post_init__(self) -> None:
        if not valid_period(self.effective_from):
            raise ValueError(f"effective_from is a period YYYY-MM, not {self.effective_from!r}")
        if not self.rate.is_finite() or self.rate < 0:
            raise ValueError(f"the fee rate is a finite non-negative decimal, not {self.rate}")
        if not self.per_line_amount.is_finite() or self.per_line_amount < 0:
            raise ValueError(f"the per-line amount is a finite non-negative decimal, not {self.per_line_amount}")
        if self.threshold < 0:
            raise ValueError(f"the threshold is a non-negative yen amount, not {self.threshold}")


@dataclass(frozen=True)
class Fee:
    """The fee in whole yen and the rule that produced it."""

    amount: int
    rule: FeeRule


def plan_for(plans: Iterable[FeePlan], period: str) -> FeePlan:
    """The plan in force in ``period``: the latest ``effective_from <= period``.

    ``ValueError`` when no plan has started yet, or when two plans start in the same month
    (which one applies would be a guess).
    """
    if not valid_period(period):
        raise ValueError(f"not a period: {period!r}")
    started = [plan for plan in plans if plan.effective_from <= period]
    if not started:
        raise ValueError(f"no fee plan is in force in {period}")
    latest = max(plan.effective_from for plan in started)
    current = [plan for plan in started if plan.effective_from == latest]
    if len(current) > 1:
        raise ValueError(f"{len(current)} fee plans start in {latest}")
    return current[0]


def merchant_fee(billed: int, lines: int, plan: FeePlan) -> Fee:
    """The fee on ``billed`` yen over ``lines`` distinct lines under ``plan``, floored once."""
    if lines < 0:
        raise ValueError(f"a line count is never negative, not {lines}")
    if billed <= 0 or lines == 0:
        return Fee(amount=0, rule="percent")
    if billed < plan.threshold * lines:
        return Fee(amount=_floor_yen(plan.per_line_amount, lines), rule="per_line")
    return Fee(amount=_floor_yen(plan.rate, billed), rule="percent")


def _floor_yen(factor: Decimal, count: int) -> int:
    """``floor(factor * count)``, the product computed without any intermediate rounding."""
    with localcontext() as context:
        context.prec = _EXACT_PRECISION
        context.traps[Inexact] = True
        exact = factor * count
        return int(exact.to_integral_value(rounding=ROUND_FLOOR))
