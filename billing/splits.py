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
