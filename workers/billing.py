"""Queue ``billing``: closing a month (product.md §5).

``start_close`` opens a billing run for a period that has ended; ``close_period`` cuts the lines
into batches of a few thousand and sends one ``merge_invoices`` message per batch; each batch
writes its invoices, items, taxes and the billed charges with set-based SQL in ONE transaction,
and marks itself done in it. So a batch is all or nothing: a worker killed half-way leaves the
batch as it was, and its redelivery (or a second close of the period) adds only what is missing.
The database's unique keys (one invoice per line and period, one item per charge and per
refund) make "at most once" true whatever happens.

Tax is the one money rule here, and it stays in ``billing.tax``: the batch reads each invoice's
total per rate and writes ``tax_included`` of it, rounded once per invoice and rate.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import dramatiq
import structlog
from tortoise import connections
from tortoise.transactions import in_transaction

from billing.errors import Conflict, InvalidRequest
from billing.periods import (
    last_day,
    next_period,
    period_end,
    period_of,
    period_start,
    previous_period,
    valid_period,
)
from billing.tax import rate_on, tax_included
from models.charges import BillingStatus, Charge, Refund
from models.clock import clock
from models.collecting import mark_overdue, write_off
from models.events import Event, WebhookEndpoint
from models.invoices import BillingBatch, BillingRun, InvoiceTax
from models.ledger import JournalEntry
from models.outbox import send
from queues import ACTOR_OPTIONS, worker_settings

__all__ = [
    "close_due_periods",
    "close_period",
    "mark_overdue_invoices",
    "merge_invoices",
    "start_close",
    "write_off_invoices",
]

log = structlog.get_logger("matomete.workers.billing")
PLACEHOLDER = re.compile(r"%\((\w+)(?::([\w\[\]]+))?\)s")
# The line's own fee is billed for a month it existed in and was not terminated before.
BASE_FEE_DUE = (
    "l.base_monthly_fee > 0 AND l.created_at < %(end:timestamptz)s"
    " AND (l.terminated_at IS NULL OR l.terminated_at >= %(start:timestamptz)s)"
)
ITEM_COLUMNS = (
    "(invoice_id, position, kind, charge_id, refund_id, merchant_id, description, amount, tax_rate, "
    "collected_amount, collection_status, paid_out_amount, billing_run_id)"
)
BILLED_STATES = ("billed", "collected", "uncollectible")
ID_CHUNK = 5000  # ids per IN (...) list: well under SQLite's and PostgreSQL's parameter limits


class PeriodNotEnded(Conflict):
    """A period is closed only once it is over by the platform's clock."""

    code = "period_not_ended"


async def start_close(period: str) -> BillingRun:
    """Open a billing run for ``period`` (refused while it has not ended, or while one runs)."""
    if not valid_period(period):
        raise InvalidRequest("period must be YYYY-MM.", param="period")
    now = await clock.now()
    if now < period_end(period):
        raise PeriodNotEnded(f"{period} has not ended yet.", param="period")
    async with in_transaction():
        running = await BillingRun.select_for_update().filter(period=period, status="running").first()
        if running is not None:
            raise Conflict(f"A close of {period} is running: {running.id}.", param="period", code="close_running")
        run = await BillingRun.create(period=period, status="running", started_at=now)
        await send(close_period, run.id)
    return run


def _sql(dialect: str, template: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
    """``%(name)s`` (or ``%(name:type)s``) placeholders as ``$n::type`` (PostgreSQL, one number
    per occurrence so each is typed by its own context) or ``?`` (SQLite), with their values."""
    values: list[Any] = []

    def placeholder(match: re.Match[str]) -> str:
        name, sql_type = match.group(1), match.group(2)
        value = params[name]
        if dialect == "sqlite":
            values.append(str(value) if isinstance(value, Decimal) else value)
            return "?"
        values.append(value)
        return f"${len(values)}::{sql_type}" if sql_type else f"${len(values)}"

    return PLACEHOLDER.sub(placeholder, template), values


async def _execute(template: str, params: Mapping[str, Any]) -> list[dict[str, Any]]:
    connection = connections.get("default")
    sql, values = _sql(connection.capabilities.dialect, template, params)
    rows: list[dict[str, Any]] = await connection.execute_query_dict(sql, values)
    return rows


def _new_id(prefix: str, dialect: str, salt: str) -> str:
    """SQL for a fresh prefixed random id, per dialect."""
    if dialect == "sqlite":
        return f"'{prefix}_' || lower(hex(randomblob(12)))"
    return f"'{prefix}_' || substr(md5(random()::text || clock_timestamp()::text || {salt}), 1, 24)"


@dramatiq.actor(queue_name="billing", **ACTOR_OPTIONS)
async def close_period(run_id: str) -> None:
    """Cut the lines into batches and send one message per batch (once per run)."""
    async with in_transaction():
        run = await BillingRun.select_for_update().get(id=run_id)
        if run.status != "running" or run.batches_total:
            return
        chunks = await _execute(
            """SELECT MIN(line_id) AS first_line, MAX(line_id) AS last_line
            FROM (SELECT line_id, (ROW_NUMBER() OVER (ORDER BY line_id) - 1) / %(size)s AS chunk FROM lines) AS numbered
            GROUP BY chunk ORDER BY first_line""",
            {"size": worker_settings().billing_batch_lines},
        )
        batches = [
            await BillingBatch.create(run=run, first_line_id=chunk["first_line"], last_line_id=chunk["last_line"])
            for chunk in chunks
        ]
        run.batches_total = len(batches)
        if not batches:
            run.status, run.finished_at = "succeeded", await clock.now()
        await run.save(update_fields=["batches_total", "status", "finished_at"])
        for batch in batches:
            await send(merge_invoices, batch.id)
    log.info("close_planned", run_id=run_id, period=run.period, batches=len(batches))


@dramatiq.actor(queue_name="billing", **ACTOR_OPTIONS)
async def merge_invoices(batch_id: int) -> None:
    """Write one batch's invoices with set-based SQL; a redelivered batch finds itself done."""
    async with in_transaction():
        batch = await BillingBatch.select_for_update().get_or_none(id=batch_id)
        if batch is None or batch.done_at is not None:
            return
        run = await BillingRun.get(id=batch.run_id)
        written = await _merge(run, batch.first_line_id, batch.last_line_id)
        now = await clock.now()
        batch.done_at = now
        await batch.save(update_fields=["done_at"])
        run = await BillingRun.select_for_update().get(id=run.id)
        run.batches_done += 1
        run.lines += written["lines"]
        run.invoices += written["invoices"]
        run.total_billed += written["total"]
        if run.batches_done >= run.batches_total:
            run.status, run.finished_at = "succeeded", now
        await run.save(update_fields=["batches_done", "lines", "invoices", "total_billed", "status", "finished_at"])
    log.info("batch_merged", run_id=run.id, batch_id=batch_id, **written)


async def _merge(run: BillingRun, first: str, last: str) -> dict[str, int]:
    dialect = connections.get("default").capabilities.dialect
    period = run.period
    rate = rate_on(last_day(period))
    params: dict[str, Any] = {
        "period": period,
        "first": first,
        "last": last,
        "run": run.id,
        "now": await clock.now(),
        "due": last_day(next_period(period)),
        "start": period_start(period),
        "end": period_end(period),
        "rate": rate,
        "no": False,
        "yes": True,
    }
    batch_invoices = "SELECT id FROM invoices WHERE period = %(period)s AND line_id BETWEEN %(first)s AND %(last)s"
    await _execute(
        f"""INSERT INTO invoices (id, line_id, period, status, total, amount_paid, due_date, billing_run_id, created_at)
        SELECT {_new_id("inv", dialect, "l.line_id")}, l.line_id, %(period:varchar)s, 'open', 0, 0, %(due:date)s,
               %(run:varchar)s, %(now:timestamptz)s
        FROM lines l
        WHERE l.line_id BETWEEN %(first)s AND %(last)s AND (
            ({BASE_FEE_DUE})
            OR EXISTS (SELECT 1 FROM charges c WHERE c.line_id = l.line_id AND c.period = %(period)s
                       AND c.status = 'succeeded' AND c.amount > c.refunded_amount)
            OR EXISTS (SELECT 1 FROM refunds r JOIN charges c ON c.id = r.charge_id
                       WHERE c.line_id = l.line_id AND r.credited = %(no)s AND c.billing_status <> 'unbilled'))
        ON CONFLICT DO NOTHING""",
        params,
    )
    await _execute(
        f"""INSERT INTO invoice_items {ITEM_COLUMNS}
        SELECT i.id, 0, 'base_fee', NULL, NULL, NULL, '回線月額料金', l.base_monthly_fee, %(rate:numeric)s,
               0, 'open', 0, %(run:varchar)s
        FROM invoices i JOIN lines l ON l.line_id = i.line_id
        WHERE i.period = %(period)s AND i.line_id BETWEEN %(first)s AND %(last)s AND {BASE_FEE_DUE}
        ON CONFLICT DO NOTHING""",
        params,
    )
    await _execute(
        f"""INSERT INTO invoice_items {ITEM_COLUMNS}
        SELECT i.id,
               (SELECT COALESCE(MAX(x.position), 0) FROM invoice_items x WHERE x.invoice_id = i.id)
                 + ROW_NUMBER() OVER (PARTITION BY i.id ORDER BY c.created_at, c.id),
               'charge', c.id, NULL, c.merchant_id, c.description, c.amount - c.refunded_amount, %(rate:numeric)s, 0,
               'open', 0, %(run:varchar)s
        FROM charges c JOIN invoices i ON i.line_id = c.line_id AND i.period = %(period)s
        WHERE c.period = %(period)s AND c.status = 'succeeded' AND c.line_id BETWEEN %(first)s AND %(last)s
          AND c.amount > c.refunded_amount
          AND NOT EXISTS (SELECT 1 FROM invoice_items x WHERE x.charge_id = c.id)
        ON CONFLICT DO NOTHING""",
        params,
    )
    await _execute(
        f"""INSERT INTO invoice_items {ITEM_COLUMNS}
        SELECT i.id,
               (SELECT COALESCE(MAX(x.position), 0) FROM invoice_items x WHERE x.invoice_id = i.id)
                 + ROW_NUMBER() OVER (PARTITION BY i.id ORDER BY r.created_at, r.id),
               'credit', NULL, r.id, c.merchant_id, '返金 ' || c.description, -r.amount, original.tax_rate,
               0, 'open', 0, %(run:varchar)s
        FROM refunds r
        JOIN charges c ON c.id = r.charge_id
        JOIN invoice_items original ON original.charge_id = c.id
        JOIN invoices i ON i.line_id = c.line_id AND i.period = %(period)s
        WHERE r.credited = %(no)s AND c.billing_status <> 'unbilled' AND c.line_id BETWEEN %(first)s AND %(last)s
          AND original.invoice_id <> i.id
          AND NOT EXISTS (SELECT 1 FROM invoice_items x WHERE x.refund_id = r.id)
        ON CONFLICT DO NOTHING""",
        params,
    )
    await _execute(
        f"""UPDATE refunds SET credited = %(yes)s WHERE credited = %(no)s AND id IN (
            SELECT x.refund_id FROM invoice_items x
            WHERE x.refund_id IS NOT NULL AND x.invoice_id IN ({batch_invoices}))""",
        params,
    )
    billed_now = (
        f"""SELECT x.charge_id FROM invoice_items x WHERE x.kind = 'charge' AND x.invoice_id IN ({batch_invoices})"""
    )
    on_bills = [row["charge_id"] for row in await _execute(billed_now, params)]
    newly_billed: list[str] = []
    # By explicit ids, a chunk at a time: a subquery here let PostgreSQL pick a plan that scanned
    # every charge once the tables had grown within the close (seen at 700,000 lines).
    for start in range(0, len(on_bills), ID_CHUNK):
        chunk = on_bills[start : start + ID_CHUNK]
        newly_billed += [
            str(charge_id)
            for charge_id in await Charge.filter(id__in=chunk, billing_status=BillingStatus.UNBILLED).values_list(
                "id", flat=True
            )
        ]
        await Refund.filter(charge_id__in=chunk, credited=False).update(credited=True)
        await Charge.filter(id__in=chunk, billing_status=BillingStatus.UNBILLED).update(
            billing_status=BillingStatus.BILLED
        )
    await _execute(
        f"""UPDATE invoices SET total = (SELECT COALESCE(SUM(x.amount), 0) FROM invoice_items x
                                         WHERE x.invoice_id = invoices.id)
        WHERE id IN ({batch_invoices})""",
        params,
    )
    # Credits can bring a bill to nothing: nothing is owed, so it is settled as it is issued.
    await _execute(
        f"UPDATE invoices SET status = 'paid' WHERE status = 'open' AND total <= 0 AND id IN ({batch_invoices})",
        params,
    )
    sums = await _execute(
        f"""SELECT x.invoice_id, x.tax_rate, SUM(x.amount) AS total FROM invoice_items x
        WHERE x.invoice_id IN ({batch_invoices}) GROUP BY x.invoice_id, x.tax_rate""",
        params,
    )
    await _execute(f"DELETE FROM invoice_taxes WHERE invoice_id IN ({batch_invoices})", params)
    await InvoiceTax.bulk_create(
        [
            InvoiceTax(
                invoice_id=row["invoice_id"],
                rate=Decimal(str(row["tax_rate"])),
                taxable_total=int(row["total"]),
                tax=tax_included(int(row["total"]), Decimal(str(row["tax_rate"]))),
            )
            for row in sums
        ],
        batch_size=1000,
    )
    await _post_billed(params, batch_invoices, reference=f"{run.id}:{first}")
    await _record_billed(newly_billed, params)
    mine = await _execute(
        """SELECT COUNT(*) AS invoices, COALESCE(SUM(total), 0) AS total FROM invoices
        WHERE billing_run_id = %(run)s AND line_id BETWEEN %(first)s AND %(last)s""",
        params,
    )
    return {
        "lines": int(mine[0]["invoices"]),
        "invoices": int(mine[0]["invoices"]),
        "total": int(mine[0]["total"]),
        "charges": len(newly_billed),
    }


def _charge_json(dialect: str) -> str:
    """SQL building ``{"object": Charge.to_api()}`` for the charge ``c`` (a test holds them equal)."""
    fields = [
        ("id", "c.id"),
        ("object", "'charge'"),
        ("status", "c.status"),
        ("amount", "c.amount"),
        ("currency", "c.currency"),
        ("description", "c.description"),
        ("merchant_reference", "c.merchant_reference"),
        ("metadata", "c.metadata" if dialect == "postgres" else "json(c.metadata)"),
        ("return_url", "c.return_url"),
        ("confirmation_url", "c.confirmation_url"),
        ("failure_code", "c.failure_code"),
        ("billing_status", "c.billing_status"),
        ("subscription", "c.subscription_id"),
        ("refunded_amount", "c.refunded_amount"),
        ("payout_id", "c.payout_id"),
        ("period", "c.period"),
        (
            "created",
            "FLOOR(EXTRACT(EPOCH FROM c.created_at))::bigint"
            if dialect == "postgres"
            else "CAST(strftime('%s', c.created_at) AS INTEGER)",
        ),
    ]
    pairs = ", ".join(f"'{name}', {expression}" for name, expression in fields)
    if dialect == "postgres":
        return f"json_build_object('object', json_build_object({pairs}))::jsonb"
    return f"json_object('object', json_object({pairs}))"


async def _record_billed(charge_ids: list[str], params: dict[str, Any]) -> None:
    """``charge.billed`` for each charge just billed, written set-based (a close bills millions),
    then handed to the webhook endpoints that want it."""
    dialect = connections.get("default").capabilities.dialect
    for start in range(0, len(charge_ids), ID_CHUNK):
        chunk = charge_ids[start : start + ID_CHUNK]
        if dialect == "postgres":
            chosen, values = "c.id = ANY(%(ids:varchar[])s)", {**params, "ids": chunk}
        else:
            chosen, values = "c.id IN (SELECT value FROM json_each(%(ids)s))", {**params, "ids": json.dumps(chunk)}
        await _execute(
            f"""INSERT INTO events (id, merchant_id, type, object_id, data, created_at)
            SELECT {_new_id("evt", dialect, "c.id")}, c.merchant_id, 'charge.billed', c.id, {_charge_json(dialect)},
                   %(now:timestamptz)s
            FROM charges c WHERE {chosen}""",
            values,
        )
        merchants = await Charge.filter(id__in=chunk).distinct().values_list("merchant_id", flat=True)
        if await WebhookEndpoint.exists(merchant_id__in=list(merchants), enabled=True, deleted_at=None):
            events = await Event.filter(type="charge.billed", object_id__in=chunk)
            await Event.fan_out("charge.billed", events, now=params["now"])


async def _post_billed(params: dict[str, Any], batch_invoices: str, *, reference: str) -> None:
    """One balanced ledger entry for what this close added to the batch's invoices: the lines
    owe it all (receivable); the base fees are the carrier's revenue; the rest is owed on to
    each merchant (charges less credits), all with set-based statements."""
    added = f"FROM invoice_items x WHERE x.billing_run_id = %(run)s AND x.invoice_id IN ({batch_invoices})"
    count = await _execute(f"SELECT COUNT(*) AS n {added}", params)
    if not int(count[0]["n"]):
        return
    entry = await JournalEntry.create(
        kind="billed", reference=reference, memo=f"close {params['period']}", occurred_at=params["now"]
    )
    with_entry = {**params, "entry": entry.id}
    for select in (
        f"SELECT %(entry:varchar)s, 'receivable:lines', NULL, SUM(x.amount) {added} GROUP BY x.billing_run_id",
        f"""SELECT %(entry:varchar)s, 'revenue:base_fee', NULL, -SUM(x.amount) {added} AND x.kind = 'base_fee'
            GROUP BY x.billing_run_id""",
        f"""SELECT %(entry:varchar)s, 'payable:merchant', x.merchant_id, -SUM(x.amount) {added}
            AND x.kind IN ('charge', 'credit') GROUP BY x.merchant_id""",
    ):
        await _execute(f"INSERT INTO postings (entry_id, account, merchant_id, amount) {select}", with_entry)


async def close_due_periods(now: datetime) -> int:
    """Scheduler job: shortly after midnight JST on the 1st, close the month that just ended (once)."""
    previous = previous_period(period_of(now))
    if await BillingRun.exists(period=previous):
        return 0
    await start_close(previous)
    return 1


async def mark_overdue_invoices(now: datetime) -> int:
    """Scheduler job: unpaid invoices past their due date become ``overdue``."""
    async with in_transaction():
        return await mark_overdue(now)


async def write_off_invoices(now: datetime) -> int:
    """Scheduler job: invoices overdue for 90 days become ``uncollectible``, with their charges."""
    async with in_transaction():
        return await write_off(now)
