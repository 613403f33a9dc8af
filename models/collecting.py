"""Recording what the carrier collected on a line invoice (product.md §6), and the dunning
states that follow from time: ``overdue`` after the due date, ``uncollectible`` when written off.

A payment is spread over the invoice's items by ``billing.splits.spread_payment`` (largest
remainder, credits netted); a merchant item collected in full turns its charge ``collected``.
Everything happens in the caller's transaction, with the invoice row locked.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from billing.errors import Conflict, InvalidRequest
from billing.periods import JST
from billing.splits import spread_payment
from billing.zengin_records import DebitResult
from models.charges import BillingStatus, Charge
from models.events import Event
from models.invoices import Collection, CollectionAllocation, Invoice, InvoiceItem, InvoiceStatus, ItemKind
from models.ledger import JournalEntry

__all__ = [
    "WRITE_OFF_AFTER",
    "apply_collection",
    "debit_reference",
    "import_debit_results",
    "mark_overdue",
    "settle_by_credits",
    "write_off",
]

WRITE_OFF_AFTER = timedelta(days=90)
OPEN_STATES = (InvoiceStatus.OPEN, InvoiceStatus.PARTIALLY_PAID, InvoiceStatus.OVERDUE)


def _status_after_payment(invoice: Invoice, today: date) -> InvoiceStatus:
    if invoice.amount_paid >= invoice.total:
        return InvoiceStatus.PAID
    if today > invoice.due_date:
        return InvoiceStatus.OVERDUE
    return InvoiceStatus.PARTIALLY_PAID if invoice.amount_paid else InvoiceStatus.OPEN


async def apply_collection(  # noqa: PLR0913 - one keyword per fact of the payment
    invoice_id: str,
    *,
    amount: int,
    paid_at: datetime,
    source: str,
    reference: str,
    now: datetime,
    param: str = "invoice_id",
) -> Collection:
    """Record ``amount`` paid on an invoice; refused above what is owed or on a written-off bill."""
    invoice = await Invoice.select_for_update().get_or_none(id=invoice_id)
    if invoice is None:
        raise InvalidRequest(f"No invoice {invoice_id}.", param=param, code="invoice_unknown")
    if invoice.status == InvoiceStatus.UNCOLLECTIBLE:
        raise Conflict(f"Invoice {invoice_id} was written off.", param=param, code="invoice_written_off")
    owed = invoice.total - invoice.amount_paid
    if amount > owed:
        raise InvalidRequest(
            f"{amount} yen is more than the {owed} yen owed on {invoice_id}.",
            param=param.replace("invoice_id", "amount"),
            code="amount_exceeds_balance",
        )
    items = await _positive_items(invoice.id)
    parts = spread_payment(
        amount,
        [item.amount - item.collected_amount for item in items],
        invoice_total=invoice.total,
        positive_total=sum(item.amount for item in items),
        paid_before=invoice.amount_paid,
    )
    collection = await Collection.create(
        invoice=invoice, amount=amount, paid_at=paid_at, source=source, source_reference=reference, created_at=now
    )
    await _collect(collection, items, parts)
    await JournalEntry.post(
        kind="collected",
        reference=collection.id,
        occurred_at=now,
        postings=[("cash:collections", None, amount), ("receivable:lines", None, -amount)],
    )
    invoice.amount_paid += amount
    invoice.status = _status_after_payment(invoice, now.astimezone(JST).date())
    await invoice.save(update_fields=["amount_paid", "status"])
    return collection


async def settle_by_credits(invoice_ids: list[str], *, now: datetime) -> None:
    """Bills that credits bring to nothing (or below) are settled as they are issued: the credits
    paid every positive item on them in full. So each such item is collected, recorded as a
    collection of 0 yen (``source`` "credits") whose allocations say which, and its charge turns
    ``collected``; no money moved, so no journal entry."""
    for invoice_id in invoice_ids:
        invoice = await Invoice.select_for_update().get(id=invoice_id)
        items = [item for item in await _positive_items(invoice.id) if item.collected_amount < item.amount]
        if not items:
            continue
        collection = await Collection.create(
            invoice=invoice, amount=0, paid_at=now, source="credits", source_reference=invoice.id, created_at=now
        )
        await _collect(collection, items, [item.amount - item.collected_amount for item in items])


async def _positive_items(invoice_id: str) -> list[InvoiceItem]:
    """The items a payment can fall on (the base fee and the charges), locked, in bill order."""
    return (
        await InvoiceItem.select_for_update()
        .filter(invoice_id=invoice_id, kind__in=[ItemKind.BASE_FEE, ItemKind.CHARGE])
        .order_by("position")
    )


async def _collect(collection: Collection, items: list[InvoiceItem], parts: list[int]) -> None:
    """Add each part to its item, with the allocation that records it; charges whose item is
    collected in full turn ``collected``, with ``charge.collected``."""
    await CollectionAllocation.bulk_create(
        [
            CollectionAllocation(collection=collection, item=item, amount=part)
            for item, part in zip(items, parts, strict=True)
            if part
        ]
    )
    finished: list[str] = []
    for item, part in zip(items, parts, strict=True):
        if not part:
            continue
        item.collected_amount += part
        item.collection_status = "collected" if item.collected_amount >= item.amount else "partial"
        await item.save(update_fields=["collected_amount", "collection_status"])
        if item.collection_status == "collected" and item.charge_id:
            finished.append(item.charge_id)
    charges = await Charge.filter(id__in=finished)
    await Charge.filter(id__in=finished).update(billing_status=BillingStatus.COLLECTED)
    for charge in charges:
        charge.billing_status = BillingStatus.COLLECTED
    await Event.record_many("charge.collected", [(charge.merchant_id, charge.to_api()) for charge in charges])


async def _post_write_off(invoice: Invoice, open_items: list[InvoiceItem], now: datetime) -> None:
    """The line will not pay the rest: each merchant loses what was not collected of its items,
    the carrier the remainder (its own fee, and any credit the merchants already carried)."""
    unpaid = invoice.total - invoice.amount_paid
    if unpaid <= 0:
        return
    by_merchant: dict[str, int] = {}
    for item in open_items:
        if item.merchant_id:
            by_merchant[item.merchant_id] = by_merchant.get(item.merchant_id, 0) + item.amount - item.collected_amount
    postings: list[tuple[str, str | None, int]] = [("receivable:lines", None, -unpaid)]
    postings += [("payable:merchant", merchant, lost) for merchant, lost in sorted(by_merchant.items())]
    postings.append(("loss:bad_debt", None, unpaid - sum(by_merchant.values())))
    await JournalEntry.post(kind="written_off", reference=invoice.id, occurred_at=now, postings=postings)


async def mark_overdue(now: datetime) -> int:
    """Scheduler job: unpaid invoices whose due date has passed (in Tokyo) become ``overdue``."""
    today = now.astimezone(JST).date()
    return await Invoice.filter(
        status__in=[InvoiceStatus.OPEN, InvoiceStatus.PARTIALLY_PAID], due_date__lt=today
    ).update(status=InvoiceStatus.OVERDUE)


async def write_off(now: datetime) -> int:
    """Scheduler job: an invoice still overdue 90 days after its due date is ``uncollectible``;
    its charges not collected in full turn ``uncollectible`` too."""
    cutoff = now.astimezone(JST).date() - WRITE_OFF_AFTER
    invoices = await Invoice.select_for_update(skip_locked=True).filter(
        status=InvoiceStatus.OVERDUE, due_date__lt=cutoff
    )
    for invoice in invoices:
        invoice.status = InvoiceStatus.UNCOLLECTIBLE
        await invoice.save(update_fields=["status"])
        open_items = InvoiceItem.filter(
            invoice_id=invoice.id,
            kind__in=[ItemKind.BASE_FEE, ItemKind.CHARGE],
            collection_status__in=["open", "partial"],
        )
        await _post_write_off(invoice, await open_items, now)
        charge_ids = [i for i in await open_items.values_list("charge_id", flat=True) if i]
        await open_items.update(collection_status="uncollectible")
        charges = await Charge.filter(id__in=charge_ids)
        await Charge.filter(id__in=charge_ids).update(billing_status=BillingStatus.UNCOLLECTIBLE)
        for charge in charges:
            charge.billing_status = BillingStatus.UNCOLLECTIBLE
        await Event.record_many("charge.uncollectible", [(c.merchant_id, c.to_api()) for c in charges])
    return len(invoices)


def debit_reference(line_id: str, period: str) -> str:
    """The 顧客番号 a direct-debit request carries for a line's bill: the line id and the period's
    digits (19 Zengin characters), so a result names its invoice without a lookup table."""
    return line_id + period.replace("-", "")


async def import_debit_results(results: list[DebitResult], *, now: datetime) -> dict[str, int]:
    """Apply a 口座振替 result file: each debited record (code 0) is a collection; other codes
    record nothing (the bill stays open, then overdue). All or nothing: an unknown 顧客番号
    refuses the file. A record imported before counts once."""
    summary = {"debited": 0, "already_imported": 0, "not_debited": 0}
    for index, result in enumerate(results, start=1):
        reference = result.customer_number.strip()
        line_id, digits = reference[:13], reference[13:]
        invoice = await Invoice.get_or_none(line_id=line_id, period=f"{digits[:4]}-{digits[4:]}")
        if len(reference) != 19 or invoice is None:
            raise InvalidRequest(
                f"record {index + 1}: no invoice for 顧客番号 {reference!r}.", param="file", code="invoice_unknown"
            )
        if not result.debited:
            summary["not_debited"] += 1
            continue
        if await Collection.exists(source="zengin", source_reference=reference):
            summary["already_imported"] += 1
            continue
        await apply_collection(
            invoice.id, amount=result.amount, paid_at=now, source="zengin", reference=reference, now=now, param="file"
        )
        summary["debited"] += 1
    return summary
