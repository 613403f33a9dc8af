"""The double-entry ledger.

Invariant: the postings of every journal entry sum to zero. ``JournalEntry.post`` refuses an
unbalanced entry before anything is written, and ``matomete audit`` re-checks every entry.
Amounts are signed whole yen: debit positive, credit negative.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from models.base import id_factory

if TYPE_CHECKING:
    from models.merchants import Merchant

__all__ = ["JournalEntry", "Posting", "UnbalancedEntry"]


class UnbalancedEntry(ValueError):
    """The postings of an entry do not sum to zero."""


class JournalEntry(Model):
    """One money movement: billed, collected, written off, fee, refund credit, payout."""

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("je"))
    kind = fields.CharField(max_length=32)
    reference = fields.CharField(max_length=64)
    memo = fields.CharField(max_length=500, default="")
    occurred_at = fields.DatetimeField()

    class Meta:
        table = "journal_entries"
        unique_together = (("kind", "reference"),)

    @classmethod
    async def post(
        cls,
        *,
        kind: str,
        reference: str,
        occurred_at: object,
        postings: Sequence[tuple[str, str | None, int]],
        memo: str = "",
    ) -> JournalEntry:
        """Write one balanced entry of ``(account, merchant_id, amount)`` postings."""
        if sum(amount for _, _, amount in postings) != 0:
            raise UnbalancedEntry(f"{kind} {reference}: postings sum to non-zero")
        entry = await cls.create(kind=kind, reference=reference, memo=memo, occurred_at=occurred_at)
        await Posting.bulk_create(
            [
                Posting(entry=entry, account=account, merchant_id=merchant, amount=amount)
                for account, merchant, amount in postings
            ]
        )
        return entry


class Posting(Model):
    """One side of a journal entry on one account (optionally per merchant)."""

    id = fields.BigIntField(primary_key=True)
    entry: fields.ForeignKeyRelation[JournalEntry] = fields.ForeignKeyField(
        "models.JournalEntry", related_name="postings", on_delete=fields.RESTRICT
    )
    account = fields.CharField(max_length=64)
    merchant: fields.ForeignKeyNullableRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="postings", null=True, on_delete=fields.RESTRICT
    )
    amount = fields.BigIntField()

    class Meta:
        table = "postings"
