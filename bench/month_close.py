"""Month close against its raw floor, on the same rows, in the same run.

Makes LINES lines with 5 succeeded charges each in one period (PostgreSQL, COPY), then:
  floor: the plain SQL that writes the same invoices and items (three INSERT ... SELECT),
  close: the platform's close of that period (the operations the close_period and
         merge_invoices actors call: every batch, WORKERS at a time in this one process, as
         billing workers share them out: one `dramatiq` billing process with WORKERS threads
         runs that many batches at once),
and prints both times and their ratio. Prints figures, asserts none.

The database it drops and recreates is MATOMETE_BENCH_DATABASE_URL (default
postgres://postgres@127.0.0.1:5432/matomete_bench); give each checkout its own:

    MATOMETE_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/matomete_bench_close \
        .venv/bin/python bench/month_close.py [--lines 1000000] [--workers 2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
PG = os.environ.get("MATOMETE_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/matomete_bench")
os.environ.setdefault("MATOMETE_BROKER_URL", "memory://")
os.environ["MATOMETE_DATABASE_URL"] = PG  # the worker settings the close reads (batch size and all)
PERIOD = "2026-05"
CHARGES_PER_LINE = 5


async def prepare(lines: int) -> None:
    """An empty migrated database, then the lines, one merchant and the charges, by COPY."""
    import asyncpg

    from models.migrate import apply_migrations
    from settings import Settings

    name = PG.rsplit("/", 1)[1]
    admin = await asyncpg.connect(PG.rsplit("/", 1)[0].replace("postgres://", "postgresql://") + "/postgres")
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    await apply_migrations(Settings(database_url=PG))
    db = await asyncpg.connect(PG.replace("postgres://", "postgresql://"))
    created = datetime(2026, 1, 1, tzinfo=UTC)
    at = datetime(2026, 5, 10, tzinfo=UTC)
    await db.execute(
        "INSERT INTO merchants (id, name, name_kana, status, return_signing_secret, max_charge_amount, setup_fee, "
        "created_at) VALUES ('mer_bench', 'bench', 'ﾍﾞﾝﾁ', 'active', 's', 50000, 0, $1)",
        created,
    )
    await db.copy_records_to_table(
        "lines",
        columns=[
            "line_id",
            "line_type",
            "flets_dot_net",
            "holder_name",
            "base_monthly_fee",
            "status",
            "monthly_limit",
            "created_at",
            "updated_at",
        ],
        records=(
            (f"CAF{n:010d}", "hikari_next", False, "x", 5500, "active", 100000, created, created) for n in range(lines)
        ),
    )
    await db.copy_records_to_table(
        "charges",
        columns=[
            "id",
            "merchant_id",
            "line_id",
            "amount",
            "currency",
            "description",
            "metadata",
            "status",
            "period",
            "billing_status",
            "refunded_amount",
            "created_at",
        ],
        records=(
            (
                f"ch_{n:010d}_{k}",
                "mer_bench",
                f"CAF{n:010d}",
                100 + k,
                "jpy",
                "コンテンツ",
                "{}",
                "succeeded",
                PERIOD,
                "unbilled",
                0,
                at,
            )
            for n in range(lines)
            for k in range(CHARGES_PER_LINE)
        ),
    )
    await db.execute("ANALYZE")
    await db.close()


FLOOR = (
    """INSERT INTO invoices (id, line_id, period, status, total, amount_paid, due_date, created_at)
    SELECT 'inv_' || l.line_id, l.line_id, $1, 'open', 0, 0, DATE '2026-06-30', now() FROM lines l""",
    """INSERT INTO invoice_items (invoice_id, position, kind, merchant_id, description, amount, tax_rate,
                                 collected_amount, collection_status, paid_out_amount)
    SELECT i.id, 0, 'base_fee', NULL, '回線月額料金', l.base_monthly_fee, 0.1, 0, 'open', 0
    FROM invoices i JOIN lines l ON l.line_id = i.line_id""",
    """INSERT INTO invoice_items (invoice_id, position, kind, charge_id, merchant_id, description, amount, tax_rate,
                                 collected_amount, collection_status, paid_out_amount)
    SELECT 'inv_' || c.line_id, ROW_NUMBER() OVER (PARTITION BY c.line_id ORDER BY c.created_at, c.id), 'charge',
           c.id, c.merchant_id, c.description, c.amount, 0.1, 0, 'open', 0
    FROM charges c WHERE c.period = $1""",
)


async def floor() -> float:
    """Seconds for the plain SQL writing the same invoice and item rows."""
    import asyncpg

    db = await asyncpg.connect(PG.replace("postgres://", "postgresql://"))
    await db.execute("CHECKPOINT")  # each measurement starts with no dirty pages left by the one before
    started = time.perf_counter()
    async with db.transaction():
        for statement in FLOOR:
            await (db.execute(statement, PERIOD) if "$1" in statement else db.execute(statement))
    elapsed = time.perf_counter() - started
    await db.execute("TRUNCATE invoice_items, invoices CASCADE")
    await db.execute("VACUUM ANALYZE")
    await db.execute("CHECKPOINT")
    await db.close()
    return elapsed


async def close(lines: int, workers: int) -> tuple[float, float, int]:
    """Seconds for the platform's close of the period, ``workers`` batches at a time; the CPU
    seconds this Python process spent on it; the batches."""
    from models.clock import clock
    from models.invoices import BillingBatch, BillingRun, Invoice
    from models.operations import closing
    from settings import Settings
    from settings.database import close_database, open_database

    settings = Settings(database_url=PG)
    context = await open_database(settings)
    clock.configure(test_clock=False)
    started, cpu = time.perf_counter(), time.process_time()
    run = await closing.start_close(PERIOD)
    await closing.plan_close(run.id, batch_lines=settings.billing_batch_lines)
    batches = await BillingBatch.filter(run_id=run.id).order_by("first_line_id")
    waiting = iter(batches)

    async def worker() -> None:
        for batch in waiting:
            await closing.merge_batch(batch.id)

    await asyncio.gather(*(worker() for _ in range(workers)))
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    done = await BillingRun.get(id=run.id)
    invoices = await Invoice.filter(period=PERIOD).count()
    await close_database(context)
    assert (done.status, invoices) == ("succeeded", lines), (done.status, invoices)  # noqa: S101 - a void run
    return elapsed, cpu, len(batches)


async def main() -> None:
    """Prepare, measure both, print."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=2, help="batches at a time (default 2: one per core here)")
    arguments = parser.parse_args()
    lines, workers = arguments.lines, arguments.workers
    started = time.perf_counter()
    await prepare(lines)
    print(f"prepared {lines:,} lines and {lines * CHARGES_PER_LINE:,} charges in {time.perf_counter() - started:.1f} s")
    raw = await floor()
    print(f"  floor: plain SQL, 3 statements      {raw:8.1f} s", flush=True)
    platform, cpu, batches = await close(lines, workers)
    rows = lines * (1 + CHARGES_PER_LINE) + lines
    print(f"month close of {lines:,} lines x {CHARGES_PER_LINE} charges ({rows:,} invoice and item rows), PostgreSQL")
    print(f"  close: {batches} batches, {workers} at a time {platform:8.1f} s  (taxes, charge.billed events, ledger)")
    print(f"         the workers' Python spent {cpu:.1f} s of CPU in it")
    print(f"  ratio close / floor = {platform / raw:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
