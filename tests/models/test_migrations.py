"""The schema is built by Tortoise's migrations alone, on PostgreSQL and SQLite alike."""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from pathlib import Path

import pytest
from tortoise import connections
from tortoise.context import TortoiseContext
from tortoise.exceptions import IntegrityError
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
