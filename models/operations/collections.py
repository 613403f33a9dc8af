"""What the carrier collected on line invoices (product.md §6), and the dunning states that
follow from time: ``overdue`` after the due date, ``uncollectible`` when written off.

A payment is spread over the invoice's items by ``billing.splits.spread_payment`` (largest
remainder, credits netted); a merchant item collected in full turns its charge ``collected``.
Statuses come from ``billing.invoices`` and ``billing.states``, ledger entries from
``billing.ledger``. Each operation runs in the caller's transaction with the invoice locked,
or opens its own.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from tortoise.transactions import in_transaction

from billing.errors import Conflict, InvalidRequest, NotFound
from billing.invoices import WRITE_OFF_AFTER, item_collection_status, status_after_payment
from billing.ledger import collected_postings, written_off_postings
from billing.periods import JST
from billing.splits import spread_payment
from billing.states import BillingStatus, InvoiceStatus, advance, sources_of
from billing.zengin_records import DebitResult
from models.audit_log import Actor, audit
from models.base import fits_id_column
from models.charges import Charge
from models.clock import clock
from models.events import Event
from models.invoices import Collection, CollectionAllocation, Invoice, InvoiceItem, ItemKind
from models.ledger import JournalEntry

__all__ = [
    "PaymentRow",
    "apply_collection",
    "debit_reference",
    "import_debit_results",
    "mark_overdue",
    "recent_collections",
    "record_collections",
    "settle_by_credits",
    "write_off",
]

REFERENCE_LENGTH = 19  # a line id (13) and the period's six digits


@dataclass(frozen=True, kw_only=True)
class PaymentRow:
    """One payment the carrier reports on one invoice; ``reference`` makes a resent row count once."""

    invoice_id: str
    amount: int
    paid_at: datetime
    reference: str | None = None


async def record_collections(rows: list[PaymentRow]) -> list[Collection]:
    """Record payments, all or none: any bad row refuses them all, naming it (``rows.N``). A row
    sent again with its ``reference`` is recorded once."""
    now = await clock.now()
    done = []
    async with in_transaction():
        for index, row in enumerate(rows):
            reference = row.reference or f"api-{uuid.uuid4()}"
            existing = await Collection.get_or_none(source="api", source_reference=reference)
            if existing is not None:
                done.append(existing)
                continue
            done.append(
                await apply_collection(
                    row.invoice_id,
                    amount=row.amount,
                    paid_at=row.paid_at,
                    source="api",
                    reference=reference,
                    now=now,
                    param=f"rows.{index}.invoice_id",
                )
            )
    return done


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
    invoice = await Invoice.select_for_update().get_or_none(id=invoice_id) if fits_id_column(invoice_id) else None
    if invoice is None:
        raise NotFound(f"No invoice {invoice_id}.", param=param, code="invoice_unknown")
    if invoice.status == InvoiceStatus.UNCOLLECTIBLE:
        raise Conflict(f"Invoice {invoice_id} was written off.", param=param, code="invoice_written_off")
    owed = invoice.total - invoice.amount_paid
    if amount > owed:
        raise Conflict(  # what is owed is the invoice's state, not the request's shape
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
        kind="collected", reference=collection.id, occurred_at=now, postings=collected_postings(amount)
    )
    invoice.amount_paid += amount
    invoice.status = status_after_payment(
        invoice.status,
        total=invoice.total,
        amount_paid=invoice.amount_paid,
        due=invoice.due_date,
        today=now.astimezone(JST).date(),
    )
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
        item.collection_status = item_collection_status(item.collected_amount, item.amount)
        await item.save(update_fields=["collected_amount", "collection_status"])
        if item.collection_status == "collected" and item.charge_id:
            finished.append(item.charge_id)
    await _move_charges(finished, BillingStatus.COLLECTED, "charge.collected")


async def _move_charges(charge_ids: list[str], target: BillingStatus, event_type: str) -> None:
    """The charges' billing moves to ``target`` (from the states the machine allows), each with
    its event."""
    if not charge_ids:
        return
    movable = Charge.filter(id__in=charge_ids, billing_status__in=sources_of(target))
    charges = await movable
    await movable.update(billing_status=target)
    for charge in charges:
        charge.billing_status = advance(charge.billing_status, target)
    await Event.record_many(event_type, [(charge.merchant_id, charge.to_api()) for charge in charges])


async def mark_overdue(now: datetime) -> int:
    """Scheduler job: unpaid invoices whose due date has passed (in Tokyo) become ``overdue``."""
    today = now.astimezone(JST).date()
    unpaid = [status for status in sources_of(InvoiceStatus.OVERDUE) if status != InvoiceStatus.OVERDUE]
    async with in_transaction():
        return await Invoice.filter(status__in=unpaid, due_date__lt=today).update(status=InvoiceStatus.OVERDUE)


async def write_off(now: datetime) -> int:
    """Scheduler job: an invoice still overdue 90 days after its due date is ``uncollectible``;
    its charges not collected in full turn ``uncollectible`` too, and the loss is posted."""
    cutoff = now.astimezone(JST).date() - WRITE_OFF_AFTER
    async with in_transaction():
        invoices = await Invoice.select_for_update(skip_locked=True).filter(
            status=InvoiceStatus.OVERDUE, due_date__lt=cutoff
        )
        for invoice in invoices:
            invoice.status = advance(invoice.status, InvoiceStatus.UNCOLLECTIBLE)
            await invoice.save(update_fields=["status"])
            open_items = InvoiceItem.filter(
                invoice_id=invoice.id,
                kind__in=[ItemKind.BASE_FEE, ItemKind.CHARGE],
                collection_status__in=["open", "partial"],
            )
            await _post_write_off(invoice, await open_items, now)
            charge_ids = [str(i) for i in await open_items.values_list("charge_id", flat=True) if i]
            await open_items.update(collection_status="uncollectible")
            await _move_charges(charge_ids, BillingStatus.UNCOLLECTIBLE, "charge.uncollectible")
    return len(invoices)


async def _post_write_off(invoice: Invoice, open_items: list[InvoiceItem], now: datetime) -> None:
    unpaid = invoice.total - invoice.amount_paid
    if unpaid <= 0:
        return
    lost: dict[str, int] = {}
    for item in open_items:
        if item.merchant_id:
            lost[item.merchant_id] = lost.get(item.merchant_id, 0) + item.amount - item.collected_amount
    await JournalEntry.post(
        kind="written_off",
        reference=invoice.id,
        occurred_at=now,
        postings=written_off_postings(unpaid=unpaid, lost_by_merchant=lost),
    )


def debit_reference(line_id: str, period: str) -> str:
    """The 顧客番号 a direct-debit request carries for a line's bill: the line id and the period's
    digits (19 Zengin characters), so a result names its invoice without a lookup table."""
    return line_id + period.replace("-", "")


def _invoice_key(reference: str) -> tuple[str, str] | None:
    """The (line id, period) a 顧客番号 names: ``debit_reference`` read back; None when it cannot be one."""
    if len(reference) != REFERENCE_LENGTH:
        return None
    return reference[:13], f"{reference[13:17]}-{reference[17:]}"


async def import_debit_results(
    results: list[DebitResult],
    *,
    now: datetime,
    actor: Actor | None = None,
    reason: str | None = None,
    file_id: str = "",
) -> dict[str, int]:
    """Apply a 口座振替 result file: each debited record (code 0) is a collection; other codes
    record nothing (the bill stays open, then overdue). All or nothing: an unknown 顧客番号
    refuses the file. A record imported before counts once. The invoices and the records imported
    before are found with one query each for the whole file, not one per record. A person who
    imports it (``actor``, the console) is written to the audit log with ``reason`` and the
    file's ``file_id`` (its digest). Call it in a transaction: a refusal then applies nothing."""
    references = [result.customer_number.strip() for result in results]
    wanted = {key for key in map(_invoice_key, references) if key is not None}
    invoices: dict[tuple[str, str], Invoice] = {}
    if wanted:
        found = await Invoice.filter(
            line_id__in={line for line, _ in wanted}, period__in={period for _, period in wanted}
        )
        invoices = {(invoice.line_id, invoice.period): invoice for invoice in found}
    imported = {
        str(reference)
        for reference in await Collection.filter(source="zengin", source_reference__in=set(references)).values_list(
            "source_reference", flat=True
        )
    }
    summary = {"debited": 0, "already_imported": 0, "not_debited": 0}
    for index, (result, reference) in enumerate(zip(results, references, strict=True), start=1):
        key = _invoice_key(reference)
        invoice = invoices.get(key) if key is not None else None
        if invoice is None:
            raise InvalidRequest(
                f"record {index + 1}: no invoice for 顧客番号 {reference!r}.", param="file", code="invoice_unknown"
            )
        if not result.debited:
            summary["not_debited"] += 1
            continue
        if reference in imported:
            summary["already_imported"] += 1
            continue
        await apply_collection(
            invoice.id, amount=result.amount, paid_at=now, source="zengin", reference=reference, now=now, param="file"
        )
        imported.add(reference)
        summary["debited"] += 1
    if actor is not None:
        details = {**summary, "records": len(results), **({"reason": reason} if reason else {})}
        await audit(actor, "collections.import", "debit_result_file", file_id or "-", **details)
    return summary


async def recent_collections(limit: int) -> list[dict[str, object]]:
    """The ``limit`` collections recorded last, newest first, each with its invoice's line and
    period (the console's list)."""
    rows: list[dict[str, object]] = (
        await Collection.all()
        .order_by("-created_at", "-id")
        .limit(limit)
        .values(
            "id",
            "amount",
            "paid_at",
            "source",
            "source_reference",
            "created_at",
            "invoice_id",
            "invoice__line_id",
            "invoice__period",
        )
    )
    return rows
