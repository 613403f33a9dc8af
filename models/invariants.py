"""``matomete audit``: the invariants that keep every yen traceable, checked against the data.

1. every succeeded charge of a closed period is on exactly one invoice;
2. every invoice's total equals its items, and its tax lines its items per rate;
3. what an invoice records as paid is what was collected on it, never more than it owes;
4. every payout's statement adds up to what it pays (and carries): collected - fee - setup fee
   + adjustments;
5. every journal entry sums to zero, and has postings.
Each check returns the ids that break it (a few, for a person to look at).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from models.sql import execute

__all__ = ["Check", "run_audit"]

SAMPLE = 5


@dataclass
class Check:
    """One invariant and what breaks it."""

    name: str
    breaks: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when nothing breaks it."""
        return not self.breaks


async def _ids(template: str, period: str | None) -> list[str]:
    """The ids a check's statement finds (``models.sql`` placeholders), the first few."""
    rows: list[dict[str, Any]] = await execute(template, {"period": period})
    return [str(row["id"]) for row in rows[:SAMPLE]]


def _in_period(column: str, period: str | None) -> str:
    return f" AND {column} = %(period)s" if period else ""


async def run_audit(period: str | None = None) -> list[Check]:
    """Every check, for one period or for all."""
    return [
        Check(
            "succeeded charges of closed periods are billed, each on exactly one invoice",
            await _ids(
                """SELECT c.id FROM charges c
            WHERE c.status = 'succeeded'
              AND c.period IN (SELECT r.period FROM billing_runs r WHERE r.status = 'succeeded')
              AND ((c.billing_status = 'unbilled' AND c.amount > c.refunded_amount
                    AND NOT EXISTS (SELECT 1 FROM invoice_items x WHERE x.charge_id = c.id))
                OR (c.billing_status <> 'unbilled'
                    AND (SELECT COUNT(*) FROM invoice_items x WHERE x.charge_id = c.id) <> 1))"""
                + _in_period("c.period", period),
                period,
            ),
        ),
        Check(
            "invoice totals equal their items, and their taxes their items per rate",
            await _ids(
                """SELECT i.id FROM invoices i
            WHERE (i.total <> (SELECT COALESCE(SUM(x.amount), 0) FROM invoice_items x WHERE x.invoice_id = i.id)
               OR (SELECT COALESCE(SUM(t.taxable_total), 0) FROM invoice_taxes t WHERE t.invoice_id = i.id)
                  <> i.total)"""
                + _in_period("i.period", period),
                period,
            ),
        ),
        Check(
            "paid = collected, and never more than the invoice owes",
            await _ids(
                """SELECT i.id FROM invoices i
            WHERE (i.amount_paid <> (SELECT COALESCE(SUM(c.amount), 0) FROM collections c WHERE c.invoice_id = i.id)
               OR (i.total > 0 AND i.amount_paid > i.total)
               OR (SELECT COALESCE(SUM(a.amount), 0) FROM collection_allocations a
                   JOIN invoice_items x ON x.id = a.item_id WHERE x.invoice_id = i.id)
                  <> (SELECT COALESCE(SUM(x.collected_amount), 0) FROM invoice_items x WHERE x.invoice_id = i.id))"""
                + _in_period("i.period", period),
                period,
            ),
        ),
        Check(
            "each payout = collected - fee - setup fee + adjustments, as its statement adds up",
            await _ids(
                """SELECT p.id FROM payouts p
            WHERE p.net + p.carried_forward <> p.collected - p.fee - p.setup_fee + p.adjustments
               OR p.net + p.carried_forward <> (SELECT COALESCE(SUM(l.amount), 0) FROM payout_lines l
                                                WHERE l.payout_id = p.id)
               OR p.net < 0 OR p.carried_forward > 0"""
                + _in_period("p.period", period),
                period,
            ),
        ),
        Check(
            "every journal entry sums to zero and has postings",
            await _ids(
                """SELECT e.id FROM journal_entries e
            WHERE NOT EXISTS (SELECT 1 FROM postings p WHERE p.entry_id = e.id)
               OR (SELECT SUM(p.amount) FROM postings p WHERE p.entry_id = e.id) <> 0""",
                None,
            ),
        ),
    ]
