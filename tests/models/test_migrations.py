"""The schema is built by Tortoise's migrations alone, on PostgreSQL and SQLite alike."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
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
