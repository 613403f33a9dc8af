"""A merchant's payout for a period (product.md §7), from figures gathered by the worker.

``net = collected - fee - setup_fee + adjustments``, where ``adjustments`` adds what was
collected late on earlier periods' items, and takes off refunds credited after billing and a
negative balance carried from the previous payout. A negative result pays nothing and is
carried forward to the next payout. The fee is on what was billed in the period, whatever has
been collected of it yet.
"""

from __future__ import annotations

from dataclasses import dataclass

from billing.fees import FeePlan, FeeRule, merchant_fee

__all__ = ["PayoutFigures", "PayoutInput", "compute_payout"]


@dataclass(frozen=True, kw_only=True)
class PayoutInput:
    """What the worker found for one merchant and period (all whole yen)."""

    billed: int
    lines: int
    plan: FeePlan
    setup_fee: int = 0
    collected: int = 0
    late_collected: int = 0
    credits: int = 0
    carried_in: int = 0

    def __post_init__(self) -> None:
        if min(self.billed, self.lines, self.setup_fee, self.collected, self.late_collected) < 0:
            raise ValueError("billed, lines, setup fee and collections are never negative")
        if self.credits > 0 or self.carried_in > 0:
            raise ValueError("credits and a carried balance only ever take money off")


@dataclass(frozen=True, kw_only=True)
class PayoutFigures:
    """The payout's fields, as the API shows them."""

    fee: int
    fee_rule: FeeRule
    setup_fee: int
    collected: int
    adjustments: int
    carried_forward: int
    net: int


def compute_payout(facts: PayoutInput) -> PayoutFigures:
    """The fee by the merchant's plan, the adjustments, and what is paid or carried forward."""
    fee = merchant_fee(facts.billed, facts.lines, facts.plan)
    adjustments = facts.late_collected + facts.credits + facts.carried_in
    balance = facts.collected - fee.amount - facts.setup_fee + adjustments
    return PayoutFigures(
        fee=fee.amount,
        fee_rule=fee.rule,
        setup_fee=facts.setup_fee,
        collected=facts.collected,
        adjustments=adjustments,
        carried_forward=min(balance, 0),
        net=max(balance, 0),
    )
