"""The migrated schema holds exactly the expected keys, foreign key rules, checks and triggers.

One list, ``expected_schema.txt``, for both backends: ``live_schema.py`` reads the database and
writes each rule in one form for SQLite and PostgreSQL (CHECK constraints on PostgreSQL and
their trigger pairs on SQLite compare equal), so a migration that loses a unique key, a foreign
key rule, a check or a trigger on either backend fails here, naming what went missing.
"""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

from live_schema import read_schema, schema_differences, scratch_database

from conftest import BACKEND
from models.migrate import apply_migrations
from settings import Settings

EXPECTED_FILE = Path(__file__).with_name("expected_schema.txt")


def expected_rules() -> set[str]:
    """The lines of ``expected_schema.txt`` without comments and blank lines."""
    lines = (line.strip() for line in EXPECTED_FILE.read_text(encoding="utf-8").splitlines())
    return {line for line in lines if line and not line.startswith("#")}


def assert_schema_matches(live: set[str]) -> None:
    """Fail, naming each missing and each extra rule, unless ``live`` is the expected list."""
    problems = schema_differences(expected_rules(), live)
    assert not problems, "the schema differs from tests/models/expected_schema.txt:\n" + "\n".join(problems)


def test_migrated_schema_is_the_expected_list(migrated: str) -> None:
    """After every migration the database has exactly the rules of expected_schema.txt."""
    assert_schema_matches(asyncio.run(read_schema(migrated)))


def _damage_sqlite(url: str) -> None:
    with sqlite3.connect(url.removeprefix("sqlite://")) as connection:
        (index,) = connection.execute(
            "SELECT il.name FROM pragma_index_list('invoices') il WHERE il.[unique] AND il.origin <> 'pk'"
        ).fetchone()
        connection.execute(f'DROP INDEX "{index}"')
        connection.execute('DROP TRIGGER "invoices_paid_not_negative_update"')
        # SQLite cannot alter a foreign key; edit the stored definition, as a bad rebuild would.
        connection.execute("PRAGMA writable_schema = ON")
        restrict = '"merchant_id" VARCHAR(32) REFERENCES "merchants" ("id") ON DELETE RESTRICT'
        connection.execute(
            "UPDATE sqlite_master SET sql = replace(sql, ?, ?) WHERE type = 'table' AND name = 'invoice_items'",
            [restrict, restrict.replace("RESTRICT", "CASCADE")],
        )
        connection.execute("PRAGMA writable_schema = OFF")


async def _damage_postgres(url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        unique = await connection.fetchval(
            "SELECT conname FROM pg_constraint WHERE conrelid = 'invoices'::regclass AND contype = 'u'"
        )
        await connection.execute(f'ALTER TABLE invoices DROP CONSTRAINT "{unique}"')
        await connection.execute("ALTER TABLE invoices DROP CONSTRAINT invoices_paid_not_negative")
        await connection.execute(
            "ALTER TABLE invoice_items DROP CONSTRAINT invoice_items_merchant_id_fkey, "
            "ADD CONSTRAINT invoice_items_merchant_id_fkey FOREIGN KEY (merchant_id) "
            "REFERENCES merchants (id) ON DELETE CASCADE"
        )
    finally:
        await connection.close()


def test_the_comparison_names_a_lost_unique_key_check_and_rule() -> None:
    """A dropped unique index, a dropped check (trigger) and a CASCADE rule are each named."""

    async def damaged_schema() -> set[str]:
        async with scratch_database() as url:
            await apply_migrations(Settings(database_url=url))
            assert not schema_differences(expected_rules(), await read_schema(url))
            if url.startswith("sqlite://"):
                _damage_sqlite(url)
            else:
                await _damage_postgres(url)
            return await read_schema(url)

    problems = schema_differences(expected_rules(), asyncio.run(damaged_schema()))

    extra_trigger = [] if BACKEND == "services" else ["extra:   trigger invoices invoices_paid_not_negative_insert"]
    assert problems == [
        "missing: check invoices invoices_paid_not_negative: amount_paid >= 0",
        "missing: foreign key invoice_items (merchant_id) -> merchants (id) on delete RESTRICT",
        "missing: unique invoices (line_id, period)",
        "extra:   foreign key invoice_items (merchant_id) -> merchants (id) on delete CASCADE",
        *extra_trigger,
    ]
