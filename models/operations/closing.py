"""Closing a month (product.md §5), as the operator, the CLI, the scheduler and the billing
workers drive it.

``start_close`` opens a billing run for a period that has ended and sends ``close_period``;
``plan_close`` cuts the lines into batches of a few thousand and sends one ``merge_invoices``
per batch; ``merge_batch`` writes one batch's invoices, items, taxes, billed charges, events and
ledger entry with the set-based statements of ``models.close_sql``, in ONE transaction, and
marks the batch done in it. So a batch is all or nothing: a worker killed half-way leaves it as
it was, and its redelivery (or a second close of the period) adds only what is missing; the
unique keys each statement names make "at most once" true whatever happens.

The money rules are ``billing/``'s, applied in Python between the statements: each bill's taxes
(``billing.tax.invoice_taxes``), its status at issue (``billing.invoices.status_after_close``),
the billed ledger entry (``billing.ledger.billed_postings``) and every run status change
(``billing.states.advance``). Messages name their actors (``models.outbox``'s ``CLOSE_PERIOD``
and ``MERGE_INVOICES``): this module never imports ``workers/``.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Any

import structlog
from tortoise.transactions import in_transaction

from billing.errors import Conflict, InvalidRequest, NotFound
from billing.invoices import status_after_close
from billing.ledger import billed_postings
from billing.periods import last_day, next_period, period_end, period_of, period_start, previous_period, valid_period
from billing.states import (
    BillingStatus,
    ChargeStatus,
    InvoiceStatus,
    RunStatus,
    SubscriptionStatus,
    advance,
    sources_of,
)
from billing.tax import TaxLine, invoice_taxes, rate_on
from models import close_sql
from models.audit_log import Actor, audit
from models.charges import Charge, Refund
from models.clock import clock
from models.events import STANDARD, Event, WebhookEndpoint
from models.invoices import BillingBatch, BillingRun, ItemKind
from models.ledger import JournalEntry
from models.lines import Line
from models.operations.collections import settle_by_credits
from models.outbox import CLOSE_PERIOD, MERGE_INVOICES, send
from models.sql import Dialect, execute, stamp
from models.subscriptions import Subscription
from settings import load_settings

__all__ = [
    "PeriodNotEnded",
    "UnknownBatch",
    "UnknownRun",
    "close_due_periods",
    "fail_batch",
    "fail_run",
    "merge_batch",
    "plan_close",
    "recent_runs",
    "start_close",
]

log = structlog.get_logger("matomete.operations.closing")
ID_CHUNK = 5000  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits
_BILLABLE = sources_of(BillingStatus.BILLED)
_OPEN_OR_DONE = (RunStatus.RUNNING.value, RunStatus.SUCCEEDED.value)
# Item kinds as plain strings: compared once per returned row, a million times in a close.
_BASE_FEE, _CHARGE, _CREDIT = ItemKind.BASE_FEE.value, ItemKind.CHARGE.value, ItemKind.CREDIT.value


class PeriodNotEnded(Conflict):
    """A period is closed only once it is over by the platform's clock."""

    code = "period_not_ended"


class UnknownRun(NotFound):
    """No billing run has this id (a message for a run that does not exist: permanent)."""

    code = "billing_run_unknown"


class UnknownBatch(NotFound):
    """No billing batch has this id (a message for a batch that does not exist: permanent)."""

    code = "billing_batch_unknown"


async def _locked_run(run_id: str) -> BillingRun:
    """The run ``run_id``, locked; ``UnknownRun`` (permanent for the actors) when none has it."""
    run = await BillingRun.select_for_update().get_or_none(id=run_id)
    if run is None:
        raise UnknownRun(f"No billing run {run_id}.", param="run_id")
    return run


async def _locked_batch(batch_id: int) -> BillingBatch:
    """The batch ``batch_id``, locked; ``UnknownBatch`` (permanent for the actors) when none has it."""
    batch = await BillingBatch.select_for_update().get_or_none(id=batch_id)
    if batch is None:
        raise UnknownBatch(f"No billing batch {batch_id}.", param="batch_id")
    return batch


async def start_close(
    period: str, *, actor: Actor | None = None, reason: str | None = None, once: bool = False
) -> BillingRun:
    """Open a billing run for ``period`` and send ``close_period`` for it, in one transaction;
    refused while the period has not ended (``PeriodNotEnded``) or while a run of it is running,
    and, with ``once`` (the console), once a run of it has succeeded (``period_closed``). A person
    who asks (``actor``) is written to the audit log with their ``reason``."""
    if not valid_period(period):
        raise InvalidRequest("period must be YYYY-MM.", param="period")
    now = await clock.now()
    if now < period_end(period):
        raise PeriodNotEnded(f"{period} has not ended yet.", param="period")
    async with in_transaction():
        runs = await BillingRun.select_for_update().filter(period=period, status__in=_OPEN_OR_DONE)
        running = next((run for run in runs if run.status == RunStatus.RUNNING), None)
        if running is not None:
            raise Conflict(f"A close of {period} is running: {running.id}.", param="period", code="close_running")
        if once and runs:
            raise Conflict(f"{period} is closed already: {runs[0].id}.", param="period", code="period_closed")
        run = await BillingRun.create(period=period, status=RunStatus.RUNNING, started_at=now)
        await send(CLOSE_PERIOD, run.id)
        if actor is not None:
            await audit(actor, "billing.close", "billing_run", run.id, period=period, **_why(reason))
    return run


def _why(reason: str | None) -> dict[str, str]:
    """The reason a person gave, for the audit entry (none for the scheduler or the ops token)."""
    return {"reason": reason} if reason else {}


async def recent_runs(limit: int) -> list[BillingRun]:
    """The ``limit`` billing runs started last, newest first (the console's list)."""
    return await BillingRun.all().order_by("-started_at", "-id").limit(limit)


async def plan_close(run_id: str, *, batch_lines: int | None = None) -> None:
    """Cut the lines into batches of ``batch_lines`` (the settings' ``billing_batch_lines`` when
    not given) and send one ``merge_invoices`` per batch, once per run; a run with no line
    succeeds at once. ``UnknownRun`` for an id no run has."""
    size = batch_lines if batch_lines is not None else load_settings().billing_batch_lines
    async with in_transaction():
        run = await _locked_run(run_id)
        if run.status != RunStatus.RUNNING or run.batches_total:
            return
        dialect = Dialect.for_connection()
        chunks = await execute(close_sql.plan_batches(dialect), {"size": size})
        batches = [
            await BillingBatch.create(run=run, first_line_id=chunk["first_line"], last_line_id=chunk["last_line"])
            for chunk in chunks
        ]
        run.batches_total = len(batches)
        if not batches:
            run.status, run.finished_at = advance(run.status, RunStatus.SUCCEEDED), await clock.now()
        await run.save(update_fields=["batches_total", "status", "finished_at"])
        for batch in batches:
            await send(MERGE_INVOICES, batch.id)
    log.info("close_planned", run_id=run_id, period=run.period, batches=len(batches))


async def fail_run(run_id: str, error: str) -> None:
    """``close_period`` used every retry on a run: the run, still unplanned (planning is one
    transaction), turns ``failed`` and ``error`` is logged, so it stops reading ``running`` and
    the period can be closed again. A run planned or ended meanwhile is left as it is;
    ``UnknownRun`` for an id no run has."""
    now = await clock.now()
    async with in_transaction():
        run = await _locked_run(run_id)
        if run.status != RunStatus.RUNNING or run.batches_total:
            return
        run.status, run.finished_at = advance(run.status, RunStatus.FAILED), now
        await run.save(update_fields=["status", "finished_at"])
    log.error("close_failed", run_id=run_id, period=run.period, error=error[:500])


async def merge_batch(batch_id: int) -> dict[str, int] | None:
    """Write one batch's bills and mark it done, in one transaction; what it wrote (lines,
    invoices, total, charges), or ``None`` for a batch already done (a redelivery).
    ``UnknownBatch`` for an id no batch has."""
    async with in_transaction():
        batch = await _locked_batch(batch_id)
        if batch.done_at is not None:
            return None
        run = await BillingRun.get(id=batch.run_id)
        written = await _merge(run, batch.first_line_id, batch.last_line_id)
        now = await clock.now()
        batch.done_at = now
        await batch.save(update_fields=["done_at"])
        # FOR NO KEY UPDATE: the batch's invoices hold a key-share lock on the run (their foreign
        # key), as do those of every batch running beside it; FOR UPDATE would deadlock them.
        run = await BillingRun.select_for_update(no_key=True).get(id=run.id)
        run.batches_done += 1
        run.lines += written["lines"]
        run.invoices += written["invoices"]
        run.total_billed += written["total"]
        if run.batches_done >= run.batches_total:
            run.status, run.finished_at = advance(run.status, RunStatus.SUCCEEDED), now
        await run.save(update_fields=["batches_done", "lines", "invoices", "total_billed", "status", "finished_at"])
    log.info("batch_merged", run_id=run.id, batch_id=batch_id, **written)
    return written


async def fail_batch(batch_id: int, error: str) -> None:
    """A batch that failed its every retry: the batch keeps ``error`` and its run turns
    ``failed``, so it stops reading ``running``. Nothing of the batch was written (it is one
    transaction); closing the period again adds only what is missing. A batch done or failed
    already is left as it is; ``UnknownBatch`` for an id no batch has."""
    now = await clock.now()
    async with in_transaction():
        batch = await _locked_batch(batch_id)
        if batch.done_at is not None or batch.failed_at is not None:
            return
        batch.failed_at, batch.error = now, error[:500]
        await batch.save(update_fields=["failed_at", "error"])
        run = await BillingRun.select_for_update(no_key=True).get(id=batch.run_id)
        if run.status == RunStatus.RUNNING:
            run.status, run.finished_at = advance(run.status, RunStatus.FAILED), now
            await run.save(update_fields=["status", "finished_at"])
    log.error("batch_failed", run_id=batch.run_id, batch_id=batch_id, error=batch.error)


async def _merge(run: BillingRun, first: str, last: str) -> dict[str, int]:
    """One batch: the statements of ``close_sql`` in order, the rules of ``billing/`` between."""
    dialect = Dialect.for_connection()
    period = run.period
    params: dict[str, Any] = {
        "period": period,
        "first": first,
        "last": last,
        "run": run.id,
        "now": await clock.now(),
        "due": last_day(next_period(period)),
        "start": period_start(period),
        "end": period_end(period),
        "rate": rate_on(last_day(period)),
        "stamp": stamp(),
        "no": False,
        "yes": True,
    }
    lock = close_sql.lock_unbilled_charges(dialect)
    if lock is not None:
        await execute(lock, params)
    created = await execute(close_sql.insert_invoices(dialect), params)
    written = {str(row["id"]): int(row["total"]) for row in created}
    added = await execute(close_sql.insert_base_fees(dialect), params)
    added += await execute(close_sql.insert_charge_items(dialect), params)
    added += await execute(close_sql.insert_credit_items(dialect), params)
    charges = [str(row["charge_id"]) for row in added if row["kind"] == _CHARGE]
    credited = {str(row["refund_id"]) for row in added if row["kind"] == _CREDIT}
    await _mark_credited(dialect, params, billed=set(charges), credited=credited)
    if added:
        await _bill_charges(dialect, {**params, "charges": charges})
        settled = await _settle_totals(dialect, added, written)
        await settle_by_credits(settled, now=params["now"])
        await _post_billed(params, added, reference=f"{run.id}:{first}")
        await _fan_out_billed(params["now"], added)
    # What this run billed in the batch's range: the bills it wrote, which hold exactly the items it added.
    total = sum(int(row["amount"]) for row in added if row["invoice_id"] in written)
    return {"lines": len(written), "invoices": len(written), "total": total, "charges": len(charges)}


def _refunded_before_billing(row: dict[str, Any], period: str) -> bool:
    """A refund of a charge of ``period`` refunded in full before it was ever billed: nothing is
    left to bill or to give back, so the refund is accounted for."""
    return (
        row["period"] == period
        and row["status"] == ChargeStatus.SUCCEEDED
        and row["billing_status"] in _BILLABLE
        and int(row["refunded_amount"]) >= int(row["amount"])
    )


async def _mark_credited(dialect: Dialect, params: dict[str, Any], *, billed: set[str], credited: set[str]) -> None:
    """Refunds now accounted for are ``credited``: those credited on a bill, those netted from a
    charge this close billed, and those refunded in full before billing. So the refunds waiting
    stay few; each is marked by id."""
    waiting = await execute(close_sql.waiting_refunds(dialect), params)
    done = [
        str(row["id"])
        for row in waiting
        if row["id"] in credited or row["charge_id"] in billed or _refunded_before_billing(row, params["period"])
    ]
    if done:
        await execute(close_sql.mark_refunds_credited(dialect), {**params, "done": done})
        await _record_credited(done)


async def _record_credited(done: list[str]) -> None:
    """A ``refund.credited`` event per refund now accounted for (a CAMARA refund's sink hears of
    it as refund-in-bill), a few at a time."""
    for start in range(0, len(done), ID_CHUNK):
        refunds = await Refund.filter(id__in=done[start : start + ID_CHUNK])
        charges = {refund.charge_id for refund in refunds}  # type: ignore[attr-defined]
        merchants = dict(await Charge.filter(id__in=list(charges)).values_list("id", "merchant_id"))
        await Event.record_many(
            "refund.credited",
            [(str(merchants[refund.charge_id]), refund.to_api()) for refund in refunds],  # type: ignore[attr-defined]
        )


async def _settle_totals(dialect: Dialect, added: list[dict[str, Any]], written: dict[str, int]) -> list[str]:
    """Each touched bill's total and taxes from its items, by ``billing.tax.invoice_taxes``, and
    its status by ``billing.invoices.status_after_close``; only bills whose figures differ from
    what they hold are updated. Returns the bills the close settled (credits brought them to
    nothing).

    A bill this batch wrote (``written``: id → the total it was written with) holds exactly the
    items it ``added``; an earlier close's bill is read back (its items' sums per rate)."""
    items: dict[str, list[tuple[int, Decimal]]] = defaultdict(list)
    rates: dict[Any, Decimal] = {}  # the driver's rate values (a few) as Decimals, converted once each
    for row in added:
        invoice_id = row["invoice_id"]
        if invoice_id in written:
            rate = rates.get(row["tax_rate"])
            if rate is None:
                rate = rates[row["tax_rate"]] = Decimal(str(row["tax_rate"]))
            items[invoice_id].append((int(row["amount"]), rate))
    held = [(invoice_id, total, InvoiceStatus.OPEN.value) for invoice_id, total in written.items()]
    earlier = sorted({str(row["invoice_id"]) for row in added} - written.keys())
    if earlier:
        for row in await execute(close_sql.item_sums(dialect), {"earlier": earlier}):
            items[str(row["invoice_id"])].append((int(row["amount"]), Decimal(str(row["tax_rate"]))))
        held += [
            (str(row["id"]), int(row["total"]), str(row["status"]))
            for row in await execute(close_sql.read_invoices(dialect), {"earlier": earlier})
        ]
    taxes: dict[str, list[TaxLine]] = {invoice_id: invoice_taxes(lines) for invoice_id, lines in items.items()}
    changed: list[tuple[str, int, str]] = []
    settled: list[str] = []
    for invoice_id, total, status in held:
        figure = sum(line.taxable_total for line in taxes.get(invoice_id, ()))
        issued = status_after_close(status, figure)
        if issued != status:
            settled.append(invoice_id)
        if figure != total or issued != status:
            changed.append((invoice_id, figure, issued.value))
    if changed:
        await execute(
            close_sql.update_invoice_totals(dialect),
            dialect.row_values("v", close_sql.INVOICE_COLUMNS, changed),
        )
    rows = [(invoice, line.rate, line.taxable_total, line.tax) for invoice, lines in taxes.items() for line in lines]
    await execute(close_sql.upsert_invoice_taxes(dialect), dialect.row_values("v", close_sql.TAX_COLUMNS, rows))
    return sorted(settled)


async def _bill_charges(dialect: Dialect, params: dict[str, Any]) -> None:
    """The charges this close put on a bill turn ``billed``, each with its ``charge.billed``
    event, set-based (a close bills millions): one statement on PostgreSQL, two on SQLite."""
    await execute(close_sql.move_charges_to_billed(dialect), params)
    events = close_sql.billed_events(dialect)
    if events is not None:
        await execute(events, params)


async def _fan_out_billed(now: datetime, added: list[dict[str, Any]]) -> None:
    """The batch's ``charge.billed`` events, handed to the webhook endpoints of their merchants
    (loaded only for merchants that have an endpoint)."""
    merchants = {row["merchant_id"] for row in added if row["kind"] == _CHARGE}
    listening = set(
        await WebhookEndpoint.filter(
            merchant_id__in=merchants, kind=STANDARD, enabled=True, deleted_at=None
        ).values_list("merchant_id", flat=True)
    )
    chosen = [str(row["charge_id"]) for row in added if row["kind"] == _CHARGE and row["merchant_id"] in listening]
    for start in range(0, len(chosen), ID_CHUNK):
        events = await Event.filter(type="charge.billed", object_id__in=chosen[start : start + ID_CHUNK])
        await Event.fan_out("charge.billed", events, now=now)


async def _post_billed(params: dict[str, Any], added: list[dict[str, Any]], *, reference: str) -> None:
    """One balanced ledger entry for what this close added to the batch's bills
    (``billing.ledger.billed_postings``)."""
    base_fees = 0
    payable: dict[str, int] = defaultdict(int)
    for row in added:
        if row["kind"] == _BASE_FEE:
            base_fees += int(row["amount"])
        else:
            payable[str(row["merchant_id"])] += int(row["amount"])
    await JournalEntry.post(
        kind="billed",
        reference=reference,
        occurred_at=params["now"],
        postings=billed_postings(base_fees=base_fees, payable=payable),
        memo=f"close {params['period']}",
    )


async def _periods_due(now: datetime) -> list[str]:
    """The ended periods the scheduler has to see closed, oldest first: from the period after
    the latest one closed (or, before any close succeeded, the earliest period with a run), up
    to the month just ended. Before any close at all, from the earliest period a line or a
    charge was created in, or else the month just ended: never from a distant past."""
    last = previous_period(period_of(now))
    runs = await BillingRun.filter(period__lte=last).values_list("period", "status")
    closed = [str(period) for period, status in runs if status == RunStatus.SUCCEEDED]
    if closed:
        first = next_period(max(closed))
    elif runs:
        first = min(str(period) for period, _ in runs)
    else:
        first = min([last, *await _first_data_periods()])
    periods: list[str] = []
    while first <= last:
        periods.append(first)
        first = next_period(first)
    return periods


async def _first_data_periods() -> list[str]:
    """The periods of the earliest line and the earliest charge, where there are any (read only
    until the first close: afterwards the runs say where to start)."""
    found: list[str] = []
    lines = await Line.all().order_by("created_at").limit(1).values_list("created_at", flat=True)
    found += [period_of(created) for created in lines]  # type: ignore[arg-type]
    charges = Charge.filter(period__not_isnull=True).order_by("period").limit(1)
    found += [str(period) for period in await charges.values_list("period", flat=True)]
    return found


async def close_due_periods(now: datetime) -> int:
    """Scheduler job: close every ended period not closed yet, oldest first, ONE at a time: the
    next one starts only once the one before has succeeded, so each month's bills are written
    (and its refunds credited) before the next month's, however many month ends the scheduler
    missed. A run still running makes it wait; a failed run (its batch logged ``batch_failed``
    and the run reads ``failed``) holds the periods after it until an operator mends the cause
    and closes that period again. Returns the closes it started (0 or 1)."""
    for period in await _periods_due(now):
        statuses = {str(status) for status in await BillingRun.filter(period=period).values_list("status", flat=True)}
        if RunStatus.SUCCEEDED in statuses:
            continue
        if RunStatus.RUNNING in statuses:
            return 0
        if RunStatus.FAILED in statuses:
            return 0
        if await _renewals_pending(period):
            log.debug("close_waits_for_renewals", period=period)  # asked again every tick: not an info line each time
            return 0
        await start_close(period)
        return 1
    return 0


async def _renewals_pending(period: str) -> bool:
    """Whether a renewal that belongs to ``period`` or before may still succeed: one being
    decided, or an active subscription not yet charged for the months up to ``period``. A renewal
    is billed in the month it renews (product.md §5), so the close of that month waits for it (a
    scheduler that missed month ends creates and decides the renewals of each month in turn)."""
    deciding = await Charge.exists(
        status=ChargeStatus.PROCESSING, subscription_id__not_isnull=True, renewal_period__lte=period
    )
    return deciding or await Subscription.exists(status=SubscriptionStatus.ACTIVE, current_period__lt=period)
