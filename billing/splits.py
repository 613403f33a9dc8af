"""Spreading a payment over an invoice's items (product.md §6): largest-remainder rounding.

Each item with a positive amount gets ``amount * weight / total`` yen, where ``total`` is the sum
of the positive weights: first the floor of that share, then the yen left over go one each to
the items with the largest remainders, ties to the earlier item. The parts always add up to the
payment, and each is the floor or the ceiling of its exact share.

Items with a zero or negative amount (credit items for refunds) get nothing: a payment is
money in, and only what was charged can receive it. The credits have already lowered the
invoice total, which is why a payment can reach the sum of the positive items only on an
invoice without credits. A payment larger than that sum is still spread in proportion.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["allocate"]


def allocate(amount: int, weights: Sequence[int]) -> list[int]:
    """``amount`` yen split over ``weights`` in proportion to their positive values.

    ``ValueError`` for a negative amount, or a positive amount with no positive weight to take it.
    """
    if amount < 0:
        raise ValueError(f"a payment to allocate is never negative, not {amount}")
    positive = [max(weight, 0) for weight in weights]
    total = sum(positive)
    if amount == 0:
        return [0] * len(positive)
    if total == 0:
        raise ValueError("no item with a positive amount can take the payment")
    parts: list[int] = []
    remainders: list[int] = []
    for weight in positive:
        part, remainder = divmod(amount * weight, total)
        parts.append(part)
        remainders.append(remainder)
    left_over = amount - sum(parts)
    by_remainder = sorted(range(len(parts)), key=lambda index: (-remainders[index], index))
    for index in by_remainder[:left_over]:
        parts[index] += 1
    return parts


def collected_share(paid: int, invoice_total: int, positive_total: int) -> int:
    """How much of an invoice's positive items counts as collected once ``paid`` has come in.

    Credit items (refunds of charges billed before) lower the invoice total but are the
    merchant's adjustment, not the line's: a line paying its whole (reduced) total has paid
    every positive item in full. So the positive items are collected in proportion:
    ``floor(paid * positive_total / invoice_total)``, all of them once ``paid >= invoice_total``.
    """
    if paid < 0 or invoice_total < 0 or positive_total < invoice_total:
        raise ValueError("paid and the totals are non-negative, and credits only lower an invoice")
    if invoice_total == 0 or paid >= invoice_total:
        return positive_total
    return paid * positive_total // invoice_total


def spread_payment(
    payment: int, remaining: Sequence[int], *, invoice_total: int, positive_total: int, paid_before: int
) -> list[int]:
    """What a new ``payment`` adds to each positive item's collected amount.

    The increment of ``collected_share`` is split over what each item still has uncollected
    (largest remainder), so parts never exceed an item's remainder, never go negative, and
    the invoice paid in full leaves every positive item collected exactly.
    """
    before = collected_share(paid_before, invoice_total, positive_total)
    after = collected_share(paid_before + payment, invoice_total, positive_total)
    if after - before > sum(max(r, 0) for r in remaining):
        raise ValueError("the items have less left to collect than the payment covers")
    return allocate(after - before, remaining) if after > before else [0] * len(remaining)
