"""The rules of a line's bill over its life (product.md §5, §6): its status when a close issues
or changes it, after each payment, once its due date passes, and when it is written off; and
the collection state of each of its items.
"""

from __future__ import annotations

from datetime import date, timedelta

from billing.states import InvoiceStatus, advance

__all__ = [
    "WRITE_OFF_AFTER",
    "item_collection_status",
    "status_after_close",
    "status_after_payment",
    "status_when_due",
    "write_off_due",
]

WRITE_OFF_AFTER = timedelta(days=90)


def status_after_close(current: InvoiceStatus | str, total: int) -> InvoiceStatus:
    """A bill the close leaves at nothing owed (credits bring it to 0 or below) is ``paid`` as
    it is issued; any other keeps its status."""
    status = InvoiceStatus(current)
    if status == InvoiceStatus.OPEN and total <= 0:
        return advance(status, InvoiceStatus.PAID)
    return status


def status_after_payment(
    current: InvoiceStatus | str, *, total: int, amount_paid: int, due: date, today: date
) -> InvoiceStatus:
    """``paid`` once everything is paid; else ``overdue`` past the due date; else
    ``partially_paid`` once anything is paid."""
    if amount_paid >= total:
        target = InvoiceStatus.PAID
    elif today > due:
        target = InvoiceStatus.OVERDUE
    else:
        target = InvoiceStatus.PARTIALLY_PAID if amount_paid else InvoiceStatus.OPEN
    if target == InvoiceStatus(current):
        return target
    return advance(current, target)


def status_when_due(current: InvoiceStatus | str, *, due: date, today: date) -> InvoiceStatus:
    """An unpaid bill (open or partly paid) past its due date, in Tokyo, is ``overdue``."""
    status = InvoiceStatus(current)
    if status in (InvoiceStatus.OPEN, InvoiceStatus.PARTIALLY_PAID) and today > due:
        return advance(status, InvoiceStatus.OVERDUE)
    return status


def write_off_due(current: InvoiceStatus | str, *, due: date, today: date) -> bool:
    """An ``overdue`` bill is written off (``uncollectible``) 90 days after its due date."""
    return InvoiceStatus(current) == InvoiceStatus.OVERDUE and due < today - WRITE_OFF_AFTER


def item_collection_status(collected: int, amount: int) -> str:
    """An item is ``collected`` once collected in full, ``partial`` before, ``open`` untouched."""
    if collected >= amount:
        return "collected"
    return "partial" if collected else "open"
