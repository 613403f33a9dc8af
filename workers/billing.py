"""Queue ``billing``: closing a month (product.md §5).

``start_close`` opens a billing run for a period that has ended; ``close_period`` cuts the lines
into batches of a few thousand and sends one ``merge_invoices`` message per batch; each batch
writes its invoices, items, taxes and the billed charges with set-based SQL in ONE transaction,
and marks itself done in it. So a batch is all or nothing: a worker killed half-way leaves the
batch as it was, and its redelivery (or a second close of the period) adds only what is missing.
The database's unique keys (one invoice per line and period, one item per charge and per
refund) make "at most once" true whatever happens; each INSERT names the one key it expects to
meet (``ON CONFLICT (key) DO NOTHING``), so any other clash fails the batch loudly instead of
dropping a row, and PostgreSQL checks one index ahead of each row, not every unique one.

Tax is the one money rule here, and it stays in ``billing.tax``: the batch reads each invoice's
total per rate and writes ``tax_included`` of it, rounded once per invoice and rate.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
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
from models.clock import clock
from models.events import Event, WebhookEndpoint
from models.invoices import BillingBatch, BillingRun
from models.ledger import JournalEntry
from models.operations.collections import mark_overdue, settle_by_credits, write_off
from models.outbox import send
from queues import ACTOR_OPTIONS, worker_settings

__all__ = [
    "batch_failed",
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
    per occurrence so each is typed by its own context) or ``?`` (SQLite), with their values.
    On SQLite a list goes as JSON text, read back with ``json_each`` (see ``_one_of``)."""
    values: list[Any] = []

    def placeholder(match: re.Match[str]) -> str:
        name, sql_type = match.group(1), match.group(2)
        value = params[name]
        if dialect == "sqlite":
            if isinstance(value, list):
                value = json.dumps(value)
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


def _one_of(dialect: str, column: str, name: str) -> str:
    """``column`` is one of the ids in the list parameter ``name`` (an index lookup per id,
    whatever the planner thinks of tables that grew within the close)."""
    if dialect == "postgres":
        return f"{column} = ANY(%({name}:varchar[])s)"
    return f"{column} IN (SELECT value FROM json_each(%({name})s))"


def _table(
    dialect: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]
) -> tuple[str, dict[str, Any]]:
    """Rows from Python as a derived table ``v`` with ``columns`` ((name, PostgreSQL type)): one
    array per column (``unnest``) on PostgreSQL, one JSON text on SQLite."""
    if dialect == "postgres":
        arrays = ", ".join(f"%(v_{name}:{sql_type}[])s" for name, sql_type in columns)
        names = ", ".join(name for name, _ in columns)
        values = {f"v_{name}": [row[n] for row in rows] for n, (name, _) in enumerate(columns)}
        return f"(SELECT * FROM unnest({arrays}) AS u({names})) AS v", values
    picks = ", ".join(f"json_extract(value, '$[{n}]') AS {name}" for n, (name, _) in enumerate(columns))
    plain = [[str(value) if isinstance(value, Decimal) else value for value in row] for row in rows]
    return f"(SELECT {picks} FROM json_each(%(v_rows)s)) AS v", {"v_rows": plain}


def _new_id(prefix: str, dialect: str) -> str:
    """SQL for a fresh prefixed id of 24 hex digits: the batch's ``%(stamp)s`` (see ``_stamp``)
    then 13 random ones (52 bits: ten thousand ids sharing a stamp clash once in ~10^8 batches).
    Ids a batch writes sort together and after the batches before, so its index entries go to a
    few pages at the end of the index, not to every page of it (random ids made each batch
    slower than the last once the indexes outgrew the buffer cache)."""
    if dialect == "sqlite":
        return f"'{prefix}_' || %(stamp:varchar)s || substr(lower(hex(randomblob(7))), 1, 13)"
    return f"'{prefix}_' || %(stamp:varchar)s || substr(md5(gen_random_uuid()::text), 1, 13)"


def _stamp() -> str:
    """11 hex digits of the system clock's milliseconds: the time-ordered head of ``_new_id``."""
    return f"{time.time_ns() // 1_000_000:011x}"


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


@dramatiq.actor(queue_name="billing", on_retry_exhausted="batch_failed", **ACTOR_OPTIONS)
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
        # FOR NO KEY UPDATE: the batch's invoices hold a key-share lock on the run (their foreign
        # key), as do those of every batch running beside it; FOR UPDATE would deadlock them.
        run = await BillingRun.select_for_update(no_key=True).get(id=run.id)
        run.batches_done += 1
        run.lines += written["lines"]
        run.invoices += written["invoices"]
        run.total_billed += written["total"]
        if run.batches_done >= run.batches_total:
            run.status, run.finished_at = "succeeded", now
        await run.save(update_fields=["batches_done", "lines", "invoices", "total_billed", "status", "finished_at"])
    log.info("batch_merged", run_id=run.id, batch_id=batch_id, **written)


@dramatiq.actor(queue_name="billing", **ACTOR_OPTIONS)
async def batch_failed(message: dict[str, Any], retries: dict[str, Any]) -> None:
    """A batch that failed its every retry (dead-lettered): the batch and its run are marked
    ``failed``, with the error, so the run stops reading ``running``. Nothing of the batch was
    written (it is one transaction); closing the period again adds only what is missing."""
    batch_id = message["args"][0]
    traceback = (message.get("options", {}).get("traceback") or "").strip().splitlines()
    error = traceback[-1][:500] if traceback else "unknown error"
    now = await clock.now()
    async with in_transaction():
        batch = await BillingBatch.select_for_update().get_or_none(id=batch_id)
        if batch is None or batch.done_at is not None or batch.failed_at is not None:
            return
        batch.failed_at, batch.error = now, error
        await batch.save(update_fields=["failed_at", "error"])
        run = await BillingRun.select_for_update(no_key=True).get(id=batch.run_id)
        if run.status == "running":
            run.status, run.finished_at = "failed", now
            await run.save(update_fields=["status", "finished_at"])
    log.error("batch_failed", run_id=batch.run_id, batch_id=batch_id, error=batch.error, **retries)


async def _merge(run: BillingRun, first: str, last: str) -> dict[str, int]:
    """One batch, set-based. Every statement reaches the big tables through the batch's line
    range or through explicit ids, never through a plan that depends on fresh statistics (the
    tables grow by millions of rows within one close)."""
    dialect = connections.get("default").capabilities.dialect
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
        "stamp": _stamp(),
        "no": False,
        "yes": True,
    }
    in_batch = "i.period = %(period)s AND i.line_id BETWEEN %(first)s AND %(last)s"
    unbilled = (
        "c.line_id BETWEEN %(first)s AND %(last)s AND c.period = %(period)s AND c.status = 'succeeded'"
        " AND c.billing_status = 'unbilled' AND c.amount > c.refunded_amount"
    )
    to_credit = "r.credited = %(no)s AND c.billing_status <> 'unbilled' AND c.line_id BETWEEN %(first)s AND %(last)s"
    # The bill's total is written with it (its fee and charges); the items decide it in the end.
    created = await _execute(
        f"""INSERT INTO invoices (id, line_id, period, status, total, amount_paid, due_date, billing_run_id, created_at)
        SELECT {_new_id("inv", dialect)}, l.line_id, %(period:varchar)s, 'open',
               CASE WHEN {BASE_FEE_DUE} THEN l.base_monthly_fee ELSE 0 END + COALESCE(billable.amount, 0), 0,
               %(due:date)s, %(run:varchar)s, %(now:timestamptz)s
        FROM lines l
        LEFT JOIN (SELECT c.line_id, SUM(c.amount - c.refunded_amount) AS amount FROM charges c
                   WHERE {unbilled} GROUP BY c.line_id) AS billable ON billable.line_id = l.line_id
        WHERE l.line_id BETWEEN %(first)s AND %(last)s AND (
            ({BASE_FEE_DUE}) OR billable.line_id IS NOT NULL
            OR EXISTS (SELECT 1 FROM refunds r JOIN charges c ON c.id = r.charge_id
                       WHERE c.line_id = l.line_id AND {to_credit}))
        ON CONFLICT (line_id, period) DO NOTHING
        RETURNING id, total""",
        params,
    )
    written = {str(row["id"]): int(row["total"]) for row in created}
    added = await _execute(
        f"""INSERT INTO invoice_items {ITEM_COLUMNS}
        SELECT i.id, 0, 'base_fee', NULL, NULL, NULL, '回線月額料金', l.base_monthly_fee, %(rate:numeric)s,
               0, 'open', 0, %(run:varchar)s
        FROM invoices i JOIN lines l ON l.line_id = i.line_id
        WHERE {in_batch} AND {BASE_FEE_DUE}
        ON CONFLICT (invoice_id, position) DO NOTHING
        RETURNING invoice_id, kind, merchant_id, charge_id, refund_id, amount, tax_rate""",
        params,
    )
    # New items go after what a bill already holds: on a bill this run has just written, its base
    # fee (position 0) or nothing; on an earlier close's bill, its last item (one lookup each).
    held = """(CASE WHEN i.billing_run_id = %(run)s THEN 0 ELSE
                  COALESCE((SELECT MAX(x.position) FROM invoice_items x WHERE x.invoice_id = i.id), 0) END)"""
    # Each succeeded charge of the period not billed yet, net of what was refunded before the close.
    added += await _execute(
        f"""INSERT INTO invoice_items {ITEM_COLUMNS}
        SELECT i.id, {held} + ROW_NUMBER() OVER (PARTITION BY i.id ORDER BY c.created_at, c.id),
               'charge', c.id, NULL, c.merchant_id, c.description, c.amount - c.refunded_amount, %(rate:numeric)s, 0,
               'open', 0, %(run:varchar)s
        FROM charges c JOIN invoices i ON i.line_id = c.line_id AND {in_batch}
        WHERE {unbilled}
        ON CONFLICT (charge_id) DO NOTHING
        RETURNING invoice_id, kind, merchant_id, charge_id, refund_id, amount, tax_rate""",
        params,
    )
    # A refund of a charge billed on an earlier bill is a credit on this one, at the charge's rate.
    added += await _execute(
        f"""INSERT INTO invoice_items {ITEM_COLUMNS}
        SELECT i.id,
               (SELECT COALESCE(MAX(x.position), 0) FROM invoice_items x WHERE x.invoice_id = i.id)
                 + ROW_NUMBER() OVER (PARTITION BY i.id ORDER BY r.created_at, r.id),
               'credit', NULL, r.id, c.merchant_id, '返金 ' || c.description, -r.amount, original.tax_rate,
               0, 'open', 0, %(run:varchar)s
        FROM refunds r
        JOIN charges c ON c.id = r.charge_id
        JOIN invoice_items original ON original.charge_id = c.id
        JOIN invoices i ON i.line_id = c.line_id AND {in_batch}
        WHERE {to_credit} AND original.invoice_id <> i.id
        ON CONFLICT (refund_id) DO NOTHING
        RETURNING invoice_id, kind, merchant_id, charge_id, refund_id, amount, tax_rate""",
        params,
    )
    charges = [str(row["charge_id"]) for row in added if row["kind"] == "charge"]
    credited = {str(row["refund_id"]) for row in added if row["kind"] == "credit"}
    await _mark_credited(params, billed=set(charges), credited=credited)
    if added:
        await _bill_charges({**params, "charges": charges})
        settled = await _settle_totals(added, written)
        await settle_by_credits(settled, now=params["now"])
        await _post_billed(params, added, reference=f"{run.id}:{first}")
        await _fan_out_billed(params["now"], added)
    # What this run billed in the batch's range: the bills it wrote, which hold exactly the items it added.
    total = sum(int(row["amount"]) for row in added if row["invoice_id"] in written)
    return {"lines": len(written), "invoices": len(written), "total": total, "charges": len(charges)}


async def _mark_credited(params: dict[str, Any], *, billed: set[str], credited: set[str]) -> None:
    """Refunds now accounted for are ``credited``: those credited on a bill, those netted from a
    charge this close billed, and those of a charge of the period refunded in full before it was
    ever billed (nothing is left to bill or to give back). So the refunds waiting stay few; each
    is marked by id."""
    waiting = await _execute(
        """SELECT r.id, r.charge_id, c.period = %(period)s AND c.status = 'succeeded'
                  AND c.billing_status = 'unbilled' AND c.refunded_amount >= c.amount AS refunded_before
        FROM refunds r JOIN charges c ON c.id = r.charge_id
        WHERE r.credited = %(no)s AND c.line_id BETWEEN %(first)s AND %(last)s""",
        params,
    )
    done = [
        str(row["id"])
        for row in waiting
        if row["id"] in credited or row["charge_id"] in billed or row["refunded_before"]
    ]
    if done:
        dialect = connections.get("default").capabilities.dialect
        await _execute(
            f"UPDATE refunds SET credited = %(yes)s WHERE {_one_of(dialect, 'id', 'done')}", {**params, "done": done}
        )


async def _settle_totals(added: list[dict[str, Any]], written: dict[str, int]) -> list[str]:
    """Each touched bill's total from its items, and its tax per rate by ``billing.tax``
    (rounded once per bill and rate); only figures that differ are written. A bill credits
    bring to nothing is ``paid`` as it is issued: nothing is owed. Returns those bills.

    A bill this batch wrote (``written``: id → the total it was written with) holds exactly
    the items it ``added``; an earlier close's bill is read back from the database."""
    dialect = connections.get("default").capabilities.dialect
    sums: dict[tuple[str, Decimal], int] = {}
    held = [(invoice_id, total, "open") for invoice_id, total in written.items()]
    for row in added:
        if row["invoice_id"] in written:
            key = (str(row["invoice_id"]), Decimal(str(row["tax_rate"])))
            sums[key] = sums.get(key, 0) + int(row["amount"])
    earlier = sorted({str(row["invoice_id"]) for row in added} - written.keys())
    if earlier:
        for row in await _execute(
            f"""SELECT x.invoice_id, x.tax_rate, SUM(x.amount) AS amount FROM invoice_items x
            WHERE {_one_of(dialect, "x.invoice_id", "earlier")} GROUP BY x.invoice_id, x.tax_rate""",
            {"earlier": earlier},
        ):
            sums[(str(row["invoice_id"]), Decimal(str(row["tax_rate"])))] = int(row["amount"])
        held += [
            (str(row["id"]), int(row["total"]), str(row["status"]))
            for row in await _execute(
                f"SELECT id, total, status FROM invoices WHERE {_one_of(dialect, 'id', 'earlier')}",
                {"earlier": earlier},
            )
        ]
    totals: dict[str, int] = {}
    for (invoice_id, _), amount in sums.items():
        totals[invoice_id] = totals.get(invoice_id, 0) + amount
    settling = {invoice_id for invoice_id, _, status in held if status == "open" and totals.get(invoice_id, 0) <= 0}
    changed = [
        (invoice_id, totals.get(invoice_id, 0), "paid" if invoice_id in settling else status)
        for invoice_id, total, status in held
        if total != totals.get(invoice_id, 0) or invoice_id in settling
    ]
    if changed:
        table, values = _table(dialect, [("id", "varchar"), ("total", "bigint"), ("status", "varchar")], changed)
        await _execute(
            f"UPDATE invoices SET total = v.total, status = v.status FROM {table} WHERE invoices.id = v.id", values
        )
    taxes = [(invoice_id, rate, amount, tax_included(amount, rate)) for (invoice_id, rate), amount in sums.items()]
    table, values = _table(
        dialect, [("invoice_id", "varchar"), ("rate", "numeric"), ("taxable_total", "bigint"), ("tax", "bigint")], taxes
    )
    await _execute(
        f"""INSERT INTO invoice_taxes (invoice_id, rate, taxable_total, tax)
        SELECT v.invoice_id, v.rate, v.taxable_total, v.tax FROM {table} WHERE true
        ON CONFLICT (invoice_id, rate) DO UPDATE SET taxable_total = excluded.taxable_total, tax = excluded.tax
        WHERE invoice_taxes.taxable_total <> excluded.taxable_total""",
        values,
    )
    return sorted(settling)


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
            "FLOOR(date_part('epoch', c.created_at))::bigint"
            if dialect == "postgres"
            else "CAST(strftime('%s', c.created_at) AS INTEGER)",
        ),
    ]
    pairs = ", ".join(f"'{name}', {expression}" for name, expression in fields)
    if dialect == "postgres":
        return f"jsonb_build_object('object', jsonb_build_object({pairs}))"
    return f"json_object('object', json_object({pairs}))"


async def _bill_charges(ids: dict[str, Any]) -> None:
    """The charges this close put on a bill turn ``billed``, each with its ``charge.billed``
    event, written set-based (a close bills millions): on PostgreSQL in one statement that
    builds the events from the rows it updates; on SQLite in two."""
    dialect = connections.get("default").capabilities.dialect
    update = (
        f"UPDATE charges SET billing_status = 'billed' WHERE {_one_of(dialect, 'id', 'charges')}"
        " AND billing_status = 'unbilled'"
    )
    events = f"""INSERT INTO events (id, merchant_id, type, object_id, data, created_at)
        SELECT {_new_id("evt", dialect)}, c.merchant_id, 'charge.billed', c.id, {_charge_json(dialect)},
               %(now:timestamptz)s"""
    if dialect == "postgres":
        await _execute(f"WITH c AS ({update} RETURNING *) {events} FROM c", ids)
        return
    await _execute(update, ids)
    await _execute(f"{events} FROM charges c WHERE {_one_of(dialect, 'c.id', 'charges')}", ids)


async def _fan_out_billed(now: datetime, added: list[dict[str, Any]]) -> None:
    """The batch's ``charge.billed`` events, handed to the webhook endpoints of their merchants
    (loaded only for merchants that have an endpoint)."""
    merchants = {row["merchant_id"] for row in added if row["kind"] == "charge"}
    listening = set(
        await WebhookEndpoint.filter(merchant_id__in=merchants, enabled=True, deleted_at=None).values_list(
            "merchant_id", flat=True
        )
    )
    chosen = [str(row["charge_id"]) for row in added if row["kind"] == "charge" and row["merchant_id"] in listening]
    for start in range(0, len(chosen), ID_CHUNK):
        events = await Event.filter(type="charge.billed", object_id__in=chosen[start : start + ID_CHUNK])
        await Event.fan_out("charge.billed", events, now=now)


async def _post_billed(params: dict[str, Any], added: list[dict[str, Any]], *, reference: str) -> None:
    """One balanced ledger entry for what this close added to the batch's bills: the lines owe
    it all (receivable); the base fees are the carrier's revenue; the rest is owed on to each
    merchant (charges less credits)."""
    base_fees = [int(row["amount"]) for row in added if row["kind"] == "base_fee"]
    payable: dict[str, int] = {}
    for row in added:
        if row["kind"] != "base_fee":
            payable[row["merchant_id"]] = payable.get(row["merchant_id"], 0) + int(row["amount"])
    postings: list[tuple[str, str | None, int]] = [("receivable:lines", None, sum(base_fees) + sum(payable.values()))]
    if base_fees:
        postings.append(("revenue:base_fee", None, -sum(base_fees)))
    postings += [("payable:merchant", merchant, -amount) for merchant, amount in sorted(payable.items())]
    await JournalEntry.post(
        kind="billed",
        reference=reference,
        occurred_at=params["now"],
        postings=postings,
        memo=f"close {params['period']}",
    )


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
