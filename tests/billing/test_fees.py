"""The merchant fee: 5% of billed, or 31.5 yen per line under a 600-yen average, floored once."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction
from math import floor

import pytest
from hypothesis import given
from hypothesis import strategies as st

from billing.fees import Fee, FeePlan, merchant_fee, plan_for

PLAN = FeePlan(effective_from="2026-01")


@pytest.mark.parametrize(
    ("billed", "fee"),
    [
        (5990, Fee(amount=315, rule="per_line")),
        (6000, Fee(amount=300, rule="percent")),
        (6010, Fee(amount=300, rule="percent")),
    ],
)
def test_the_threshold_is_an_average_of_600_yen(billed: int, fee: Fee) -> None:
    """Over 10 lines: 599 yen a line pays 31.5 x 10; 600 and 601 pay 5% (300.5 floors to 300)."""
    assert merchant_fee(billed, 10, PLAN) == fee


def test_half_yen_is_rounded_down() -> None:
    """Three lines under the threshold: 31.5 x 3 = 94.5 gives 94."""
    assert merchant_fee(1000, 3, PLAN) == Fee(amount=94, rule="per_line")


def test_percent_fee_is_floored_once() -> None:
    """5% of 12,345 yen is 617.25, paid as 617."""
    assert merchant_fee(12_345, 1, PLAN) == Fee(amount=617, rule="percent")


def test_per_line_fee_may_exceed_a_tiny_bill() -> None:
    """One line billing 10 yen still pays the 31-yen per-line fee: that is the contract."""
    assert merchant_fee(10, 1, PLAN) == Fee(amount=31, rule="per_line")


@pytest.mark.parametrize(("billed", "lines"), [(0, 5), (-500, 5), (1000, 0), (0, 0)])
def test_nothing_billed_means_no_fee(billed: int, lines: int) -> None:
    """No billing (or refunds beyond it) or no line: a zero fee under the percent rule."""
    assert merchant_fee(billed, lines, PLAN) == Fee(amount=0, rule="percent")


def test_negative_line_count_is_refused() -> None:
    """A line count is never negative."""
    with pytest.raises(ValueError, match="line count"):
        merchant_fee(1000, -1, PLAN)


def test_the_plan_in_force_is_the_latest_started() -> None:
    """A period takes the plan with the latest effective_from not after it."""
    first = FeePlan(effective_from="2026-01")
    cheaper = FeePlan(effective_from="2026-07", rate=Decimal("0.04"))
    plans = [cheaper, first]
    assert plan_for(plans, "2026-01") == first
    assert plan_for(plans, "2026-06") == first
    assert plan_for(plans, "2026-07") == cheaper
    assert plan_for(plans, "2027-03") == cheaper


def test_no_plan_in_force_is_an_error() -> None:
    """A period before every plan, or two plans starting together, is refused."""
    with pytest.raises(ValueError, match="no fee plan"):
        plan_for([FeePlan(effective_from="2026-01")], "2025-12")
    with pytest.raises(ValueError, match="2 fee plans"):
        plan_for([FeePlan(effective_from="2026-01"), FeePlan(effective_from="2026-01")], "2026-02")


def test_a_plan_needs_a_period() -> None:
    """effective_from is YYYY-MM."""
    with pytest.raises(ValueError, match="YYYY-MM"):
        FeePlan(effective_from="2026-1")


plans = st.builds(
    FeePlan,
    effective_from=st.just("2026-01"),
    rate=st.decimals(min_value=0, max_value=Decimal("0.2"), places=3),
    threshold=st.integers(min_value=0, max_value=2000),
    per_line_amount=st.decimals(min_value=0, max_value=100, places=2),
)


@given(st.integers(min_value=-(10**6), max_value=10**10), st.integers(min_value=0, max_value=10**6), plans)
def test_fee_follows_the_exact_threshold_comparison(billed: int, lines: int, plan: FeePlan) -> None:
    """The fee is a non-negative int; its rule is per_line exactly when billed < threshold x lines,
    and its amount is the floor of the exact product."""
    fee = merchant_fee(billed, lines, plan)
    assert isinstance(fee.amount, int)
    assert fee.amount >= 0
    if billed <= 0 or lines == 0:
        assert fee == Fee(amount=0, rule="percent")
    elif billed < plan.threshold * lines:
        assert fee == Fee(amount=floor(Fraction(plan.per_line_amount) * lines), rule="per_line")
    else:
        assert fee == Fee(amount=floor(Fraction(plan.rate) * billed), rule="percent")
