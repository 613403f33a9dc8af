"""SQLite table rebuilds (AlterField, RemoveField, constraints) keep indexes, triggers and rows.

These run on a SQLite file of their own in both passes: the rebuild exists only on SQLite.
"""

from __future__ import annotations

import asyncio
import functools
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from live_schema import read_sqlite_schema, schema_differences
from test_schema import expected_rules
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.migrations import executor
from tortoise.migrations.schema_editor import SqliteSchemaEditor
from tortoise.transactions import in_transaction

from models.invoices import Invoice, InvoiceItem, ItemKind
from models.lines import Line, LineSession, LineType
from models.migrate import apply_migrations
from models.schema_editor import RebuildKeepingSqliteSchemaEditor, RebuildRefusedError
from settings import Settings
from settings.database import close_database, open_database, tortoise_config

NOW = datetime(2026, 1, 15, tzinfo=UTC)


@functools.cache
def _template() -> Path:
    """A SQLite file with every migration applied, made once and copied for each test."""
    path = Path(tempfile.mkdtemp(prefix="matomete-rebuild-")) / "template.sqlite3"
    asyncio.run(apply_migrations(Settings(database_url=f"sqlite://{path}")))
    return path


@asynccontextmanager
async def migrated_sqlite() -> AsyncIterator[tuple[str, BaseDBAsyncClient]]:
    """A fresh SQLite file with every migration applied, the ORM open on it."""
    path = str(Path(tempfile.mkdtemp(prefix="matomete-rebuild-")) / "db.sqlite3")
    shutil.copyfile(_template(), path)
    settings = Settings(database_url=f"sqlite://{path}")
    context = await open_database(settings, process_wide=False)
    try:
        with context:
            yield path, connections.get("default")
    finally:
        await close_database(context)


async def _invoice_with_an_item() -> Invoice:
    line = await Line.create(
        line_id="CAF0000000001",
        line_type=LineType.B_FLETS,
        holder_name="x",
        base_monthly_fee=5500,
        created_at=NOW,
        updated_at=NOW,
    )
    invoice = await Invoice.create(line=line, period="2026-01", total=5500, due_date=date(2026, 2, 27), created_at=NOW)
    await InvoiceItem.create(
        invoice=invoice,
        position=1,
        kind=ItemKind.BASE_FEE,
        description="base fee",
        amount=5500,
        tax_rate=Decimal("0.1"),
    )
    return invoice


def run(scenario: Callable[[], Coroutine[None, None, None]]) -> None:
    """Run an async scenario on a loop of its own (the ORM context stays inside it)."""
    _template()
    asyncio.run(scenario())


def test_an_alter_field_rebuild_keeps_unique_indexes_triggers_and_referring_rows() -> None:
    """After AlterField rebuilds ``invoices``, the schema is whole, its items remain, and a
    second invoice for the line and period or a negative ``amount_paid`` is refused."""

    async def scenario() -> None:
        async with migrated_sqlite() as (path, connection):
            invoice = await _invoice_with_an_item()
            editor = RebuildKeepingSqliteSchemaEditor(connection, atomic=False)

            await editor.alter_field(Invoice, Invoice, "amount_paid")

            assert schema_differences(expected_rules(), read_sqlite_schema(path)) == []
            assert await InvoiceItem.filter(invoice_id=invoice.id).count() == 1
            with pytest.raises(IntegrityError):
                await Invoice.create(
                    line_id=invoice.line_id, period="2026-01", total=1, due_date=date(2026, 2, 27), created_at=NOW
                )
            with pytest.raises(IntegrityError, match="invoices_paid_not_negative"):
                await Invoice.filter(id=invoice.id).update(amount_paid=-1)

    run(scenario)


def test_tortoise_own_rebuild_loses_them() -> None:
    """Tortoise 1.1's own SQLite editor loses the unique keys and check triggers (why ours exists)."""

    async def scenario() -> None:
        async with migrated_sqlite() as (path, connection):
            await SqliteSchemaEditor(connection, atomic=False).alter_field(Invoice, Invoice, "amount_paid")

            assert schema_differences(expected_rules(), read_sqlite_schema(path)) == [
                "missing: check invoices invoices_paid_not_negative: amount_paid >= 0",
                "missing: unique invoices (line_id, period)",
            ]

    run(scenario)


def test_a_rebuild_of_a_referred_table_inside_a_transaction_is_refused() -> None:
    """Inside a transaction SQLite keeps foreign keys on, so rebuilding ``invoices`` (which items
    refer to) is refused rather than deleting or failing on their rows; nothing changes."""

    async def scenario() -> None:
        async with migrated_sqlite() as (path, connection):
            await _invoice_with_an_item()
            editor = RebuildKeepingSqliteSchemaEditor(connection, atomic=True)

            async def rebuild_in_a_transaction() -> None:
                async with in_transaction() as transaction:
                    editor.client = transaction
                    await editor.alter_field(Invoice, Invoice, "amount_paid")

            with pytest.raises(RebuildRefusedError, match="atomic = False"):
                await rebuild_in_a_transaction()

            assert schema_differences(expected_rules(), read_sqlite_schema(path)) == []
            assert await InvoiceItem.all().count() == 1

    run(scenario)


def test_a_rebuild_of_a_table_no_one_refers_to_runs_inside_a_transaction() -> None:
    """``line_sessions`` may be rebuilt inside an atomic migration, keeping both its indexes."""

    async def scenario() -> None:
        async with migrated_sqlite() as (path, connection):
            editor = RebuildKeepingSqliteSchemaEditor(connection, atomic=True)
            async with in_transaction() as transaction:
                editor.client = transaction
                await editor.alter_field(LineSession, LineSession, "first_address")

            assert schema_differences(expected_rules(), read_sqlite_schema(path)) == []

    run(scenario)


def test_a_removed_column_takes_its_index_and_a_trigger_naming_it_stops_the_rebuild() -> None:
    """Removing a column drops the indexes on it and keeps the rest; removing one a check
    trigger reads is refused, naming the trigger."""

    async def scenario() -> None:
        async with migrated_sqlite() as (path, connection):
            editor = RebuildKeepingSqliteSchemaEditor(connection, atomic=False)

            await editor.remove_field(LineSession, LineSession._meta.fields_map["first_address"])
            assert schema_differences(expected_rules(), read_sqlite_schema(path)) == [
                "missing: index line_sessions (ended_at, first_address)"
            ]
            with pytest.raises(RebuildRefusedError, match="invoices_paid_not_negative"):
                await editor.remove_field(Invoice, Invoice._meta.fields_map["amount_paid"])

    run(scenario)


def test_migrations_build_the_keeping_editor_for_sqlite() -> None:
    """Once the Tortoise config is built, the migration executor makes our editor for SQLite."""
    tortoise_config(Settings(database_url="sqlite:///tmp/matomete-unused.sqlite3"))

    assert executor.SqliteSchemaEditor is RebuildKeepingSqliteSchemaEditor  # type: ignore[attr-defined]
