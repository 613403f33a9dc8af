"""The schema is built by Tortoise's migrations alone, on PostgreSQL and SQLite alike."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from tortoise import Tortoise, connections
from tortoise.context import TortoiseContext
from tortoise.exceptions import IntegrityError
from tortoise.migrations.api import migrate
from tortoise.migrations.autodetector import MigrationAutodetector

from conftest import BACKEND, DATABASE_URL, TABLES
from models.migrate import apply_migrations
from settings import Settings
from settings.database import close_database, open_database, tortoise_config


async def _make_database() -> tuple[str, str | None]:
    """An empty database of this run's backend: its URL, and the PostgreSQL name to drop after."""
    if BACKEND != "services":
        path = Path(tempfile.mkdtemp(prefix="matomete-migrate-")) / "db.sqlite3"
        return f"sqlite://{path}", None
    import asyncpg

    name = f"matomete_migrate_{uuid.uuid4().hex[:12]}"
    admin_url = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    admin = await asyncpg.connect(admin_url.replace("postgres://", "postgresql://", 1))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return DATABASE_URL.rsplit("/", 1)[0] + f"/{name}", name


async def _drop_database(name: str | None) -> None:
    if name is None:
        return
    import asyncpg

    admin_url = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    admin = await asyncpg.connect(admin_url.replace("postgres://", "postgresql://", 1))
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def _tables(settings: Settings) -> set[str]:
    context = await open_database(settings, process_wide=False)
    try:
        with context:
            if settings.is_sqlite:
                rows = await connections.get("default").execute_query_dict(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
            else:
                rows = await connections.get("default").execute_query_dict(
                    "SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public'"
                )
    finally:
        await close_database(context)
    return {row["name"] for row in rows}


def test_migrations_build_every_table_on_an_empty_database() -> None:
    """Applying the migrations to an empty database creates every model's table; again, nothing."""

    async def scenario() -> None:
        url, name = await _make_database()
        try:
            settings = Settings(database_url=url)
            await apply_migrations(settings)
            await apply_migrations(settings)  # idempotent
            assert set(TABLES) <= await _tables(settings)
        finally:
            await _drop_database(name)

    asyncio.run(scenario())


def test_models_and_migrations_agree() -> None:
    """No model change is waiting for a migration (run `make migrations` when this fails)."""

    async def pending() -> list[str]:
        config = tortoise_config(Settings(database_url="sqlite:///tmp/matomete-drift-check.sqlite3"))
        async with TortoiseContext() as context:
            await context.init(config=config, init_connections=False)
            writers = await MigrationAutodetector(context.apps, config["apps"]).changes()
            return [operation.describe() for writer in writers for operation in writer.operations]

    assert asyncio.run(pending()) == []


MIGRATIONS = sorted(
    path.stem for path in (Path(__file__).parents[2] / "models" / "migrations").glob("[0-9][0-9][0-9][0-9]_*.py")
)
# Each migration is imported in a fresh interpreter state: what ``models.*`` modules did it load?
IMPORT_ALONE = """
import importlib, json, sys
loaded = {}
for name in sys.argv[1:]:
    for module in [m for m in sys.modules if m == "models" or m.startswith("models.")]:
        del sys.modules[module]
    importlib.import_module(f"models.migrations.{name}")
    loaded[name] = sorted(m for m in sys.modules if m == "models" or m.startswith("models."))
print(json.dumps(loaded))
"""


def test_each_migration_imports_on_its_own_and_only_id_defaults_from_models() -> None:
    """A migration imports alone, and from our code only ``models.base`` (id defaults by path),
    never a model module: a model's enum or code changing later must not change a migration."""
    result = subprocess.run(  # noqa: S603 - our own interpreter and our own migration names
        [sys.executable, "-c", IMPORT_ALONE, *MIGRATIONS],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parents[2],
    )
    loaded = json.loads(result.stdout)
    assert len(MIGRATIONS) >= 13
    for name in MIGRATIONS:
        extra = set(loaded[name]) - {"models", "models.base", "models.migrations", f"models.migrations.{name}"}
        assert not extra, f"{name} imports {sorted(extra)}"


async def test_check_constraints_hold_in_the_database(db: Settings) -> None:
    """A negative fee or a sixth slot is refused by the database itself, not only by the API."""
    from models.clock import clock
    from models.lines import Line, LineType

    now = await clock.now()
    with pytest.raises(IntegrityError):
        await Line.create(
            line_id="CAF0000000900",
            line_type=LineType.B_FLETS,
            holder_name="x",
            base_monthly_fee=-1,
            created_at=now,
            updated_at=now,
        )
    line = await Line.create(
        line_id="CAF0000000901",
        line_type=LineType.B_FLETS,
        holder_name="x",
        base_monthly_fee=0,
        created_at=now,
        updated_at=now,
    )
    from models.accounts import SubscriberAccount

    with pytest.raises(IntegrityError):
        await SubscriberAccount.create(
            login_id="sixth", line=line, slot=6, password_hash="x", monthly_limit=1, created_at=now
        )
    await SubscriberAccount.create(
        login_id="first", line=line, slot=1, password_hash="x", monthly_limit=1, created_at=now
    )
    with pytest.raises(IntegrityError):
        await SubscriberAccount.create(
            login_id="same-slot", line=line, slot=1, password_hash="x", monthly_limit=1, created_at=now
        )


ROWS_AT_0011 = (
    (
        "INSERT INTO lines (line_id, line_type, flets_dot_net, holder_name, base_monthly_fee, status, monthly_limit, "
        "created_at, updated_at) VALUES ('CAF0000000001', 'b_flets', FALSE, 'x', 5500, 'active', 100000, "
        "'2026-01-01 00:00:00+00', '2026-01-01 00:00:00+00')"
    ),
    (
        "INSERT INTO merchants (id, name, name_kana, status, return_signing_secret, max_charge_amount, setup_fee, "
        "created_at) VALUES ('mer_1', 'm', 'm', 'active', 's', 50000, 0, '2026-01-01 00:00:00+00')"
    ),
    (
        "INSERT INTO billing_runs (id, period, status, batches_total, batches_done, lines, invoices, total_billed, "
        "started_at) VALUES ('run_1', '2026-01', 'done', 1, 1, 1, 1, 5500, '2026-02-01 00:00:00+00')"
    ),
    (
        "INSERT INTO invoices (id, line_id, period, status, total, amount_paid, due_date, billing_run_id, created_at) "
        "VALUES ('inv_1', 'CAF0000000001', '2026-01', 'open', 5500, 0, '2026-02-27', 'run_1', '2026-02-01 00:00:00+00')"
    ),
    (
        "INSERT INTO invoice_items (id, invoice_id, position, kind, merchant_id, description, amount, tax_rate, "
        "collected_amount, collection_status, paid_out_amount) "
        "VALUES (1, 'inv_1', 1, 'charge', 'mer_1', 'd', 5500, '0.1000', 0, 'open', 0)"
    ),
    (
        "INSERT INTO journal_entries (id, kind, reference, memo, occurred_at) "
        "VALUES ('je_1', 'billed', 'inv_1', '', '2026-02-01 00:00:00+00')"
    ),
    "INSERT INTO postings (id, entry_id, account, merchant_id, amount) VALUES (1, 'je_1', 'payable', 'mer_1', 5500)",
    (
        "INSERT INTO line_sessions (id, line_id, address, network, family, started_at) VALUES "
        "('ls_1', 'CAF0000000001', '10.0.0.1', '10.0.0.1/32', 4, '2026-01-01 00:00:00+00'), "
        "('ls_2', 'CAF0000000001', '2001:db8:12::/56', '2001:db8:12::/56', 6, '2026-01-01 00:00:00+00')"
    ),
)


async def _run_sql(url: str, statements: tuple[str, ...]) -> list[list[tuple[object, ...]]]:
    """Run each statement on ``url`` and return the rows each one answered."""
    if url.startswith("sqlite://"):
        with sqlite3.connect(url.removeprefix("sqlite://")) as connection:
            connection.execute("PRAGMA foreign_keys = ON")
            return [connection.execute(statement).fetchall() for statement in statements]
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        return [[tuple(row) for row in await connection.fetch(statement)] for statement in statements]
    finally:
        await connection.close()


def test_migrating_a_database_with_rows_keeps_them_and_fills_session_bounds() -> None:
    """A database at 0011 with invoices, items, postings and sessions migrates to the latest
    schema with every row kept, each session's bounds filled, and every rule of the list."""
    from live_schema import read_schema, scratch_database
    from test_schema import expected_rules

    from models.lines import address_range

    async def scenario() -> tuple[list[list[tuple[object, ...]]], set[str]]:
        async with scratch_database() as url:
            config = tortoise_config(Settings(database_url=url))
            try:
                await migrate(config=config, target="models.0011_failed_batches")
            finally:
                await Tortoise.close_connections()
            await _run_sql(url, ROWS_AT_0011)
            await apply_migrations(Settings(database_url=url))
            answers = await _run_sql(
                url,
                (
                    "SELECT COUNT(*) FROM invoices",
                    "SELECT COUNT(*) FROM invoice_items WHERE merchant_id = 'mer_1'",
                    "SELECT COUNT(*) FROM postings WHERE merchant_id = 'mer_1'",
                    "SELECT id, first_address, last_address FROM line_sessions ORDER BY id",
                ),
            )
            return answers, await read_schema(url)

    answers, schema = asyncio.run(scenario())

    assert answers[:3] == [[(1,)], [(1,)], [(1,)]]
    assert answers[3] == [
        ("ls_1", *address_range("10.0.0.1/32")),
        ("ls_2", *address_range("2001:db8:12::/56")),
    ]
    assert schema == expected_rules()
