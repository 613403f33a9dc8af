"""The ledger postings of every money movement (product.md §5–§7, architecture rule 7).

A posting is ``(account, merchant_id or None, amount)`` in signed whole yen: debit positive,
credit negative. Every function here answers a balanced entry (its postings sum to zero), never
an empty one; ``JournalEntry.post`` writes them and refuses an unbalanced one.

Accounts: ``receivable:lines`` (what the lines owe), ``payable:merchant`` (what is owed on to
each merchant), ``cash:collections`` and ``cash:payouts`` (the carrier's bank), and the
carrier's ``revenue:base_fee``, ``revenue:merchant_fee``, ``revenue:setup_fee`` and
``loss:bad_debt``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

__all__ = [
    "Posting",
    "balanced",
    "billed_postings",
    "collected_postings",
    "fee_postings",
    "payout_postings",
    "written_off_postings",
]

Posting = tuple[str, str | None, int]


def balanced(postings: Iterable[Posting]) -> bool:
    """True when the postings sum to zero."""
    return sum(amount for _, _, amount in postings) == 0


def billed_postings(*, base_fees: int, payable: Mapping[str, int]) -> list[Posting]:
    """What a close added to bills: the lines owe it all; their base fees are the carrier's
    revenue; the rest (charges less credits) is owed on to each merchant."""
    postings: list[Posting] = [("receivable:lines", None, base_fees + sum(payable.values()))]
    if base_fees:
        postings.append(("revenue:base_fee", None, -base_fees))
    postings += [("payable:merchant", merchant, -amount) for merchant, amount in sorted(payable.items())]
    return postings


def collected_postings(amount: int) -> list[Posting]:
    """The carrier collected ``amount`` on a line's bill."""
    return [("cash:collections", None, amount), ("receivable:lines", None, -amount)]


def written_off_postings(*, unpaid: int, lost_by_merchant: Mapping[str, int]) -> list[Posting]:
    """A bill written off with ``unpaid`` yen still owed: each merchant loses what was not
    collected of its items, the carrier the remainder (its own fee, and any credit the merchants
    already carried)."""
    postings: list[Posting] = [("receivable:lines", None, -unpaid)]
    postings += [("payable:merchant", merchant, lost) for merchant, lost in sorted(lost_by_merchant.items())]
    postings.append(("loss:bad_debt", None, unpaid - sum(lost_by_merchant.values())))
    return postings


def fee_postings(merchant_id: str, *, fee: int, setup_fee: int) -> list[Posting]:
    """The carrier keeps its fee and the setup fee out of what it owes the merchant."""
    return [
        ("payable:merchant", merchant_id, fee + setup_fee),
        ("revenue:merchant_fee", None, -fee),
        ("revenue:setup_fee", None, -setup_fee),
    ]


def payout_postings(merchant_id: str, net: int) -> list[Posting]:
    """The carrier transferred ``net`` to the merchant."""
    return [("payable:merchant", merchant_id, net), ("cash:payouts", None, -net)]
