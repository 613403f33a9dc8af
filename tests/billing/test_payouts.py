"""Payout figures (product.md §7): collected less fee, setup fee and adjustments; a negative
balance is carried forward, never paid as a negative transfer."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from billing.fees import FeePlan
from billing.payouts import PayoutInput, compute_payout

PLAN = FeePlan(effective_from="2000-01")


def test_percent_fee_and_first_payout_setup_fee() -> None:
    """Billed 100,000 over 50 lines: 5% is 5,000; 60,000 collected less it and a 30,000 setup fee is 25,000."""
    figures = compute_payout(PayoutInput(billed=100_000, lines=50, plan=PLAN, setup_fee=30_000, collected=60_000))
    assert (figures.fee, figures.fee_rule, figures.net, figures.carried_forward) == (5000, "percent", 25_000, 0)


def test_per_line_fee_under_600_yen_a_line() -> None:
    """Billed 5,000 over 10 lines (500 a line): 31.5 x 10 = 315."""
    figures = compute_payout(PayoutInput(billed=5000, lines=10, plan=PLAN, collected=5000))
    assert (figures.fee, figures.fee_rule, figures.net) == (315, "per_line", 4685)


def test_negative_balance_is_carried_forward() -> None:
    """Little collected and a big refund credit: nothing is paid, the shortfall is carried."""
    figures = compute_payout(PayoutInput(billed=10_000, lines=5, plan=PLAN, collected=1000, credits=-3000))
    assert (figures.fee, figures.adjustments, figures.net, figures.carried_forward) == (500, -3000, 0, -2500)


def test_late_collections_and_carried_balance_adjust() -> None:
    """Late money adds, the carried balance takes off: 0 billed, 4,000 late, -2,500 carried = 1,500."""
    figures = compute_payout(PayoutInput(billed=0, lines=0, plan=PLAN, late_collected=4000, carried_in=-2500))
    assert (figures.fee, figures.adjustments, figures.net) == (0, 1500, 1500)


@given(
    billed=st.integers(0, 10**8),
    lines=st.integers(0, 10**5),
    collected=st.integers(0, 10**8),
    late=st.integers(0, 10**7),
    credits=st.integers(-(10**7), 0),
    carried=st.integers(-(10**7), 0),
    setup=st.integers(0, 10**6),
)
def test_the_payout_always_balances(  # noqa: PLR0913, PLR0917 - one argument per drawn figure
    billed: int,
    lines: int,
    collected: int,
    late: int,
    credits: int,
    carried: int,
    setup: int,
) -> None:
    """Net plus carried_forward = collected - fee - setup fee + adjustments, net >= 0 >= carried_forward."""
    f = compute_payout(
        PayoutInput(
            billed=billed,
            lines=lines,
            plan=PLAN,
            setup_fee=setup,
            collected=collected,
            late_collected=late,
            credits=credits,
            carried_in=carried,
        )
    )
    assert f.net + f.carried_forward == collected - f.fee - setup + f.adjustments
    assert f.net >= 0 >= f.carried_forward
    assert f.net == 0 or f.carried_forward == 0
