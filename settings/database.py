"""The Tortoise configuration built from ``Settings``: one app, ``models``, and its migrations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from tortoise import Tortoise
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.context import TortoiseContext

from models import MODEL_MODULES
from models.schema_editor import use_rebuild_keeping_editor
from settings import Settings

__all__ = ["close_database", "connected", "keep_session", "open_database", "tortoise_config"]


async def keep_session(_connection: Any) -> None:
    """What the pool does to a connection given back, after asyncpg has rolled back any
    transaction left open: nothing more. No process sets session state (no SET, LISTEN, session
    advisory lock or cursor outside a transaction), so asyncpg's default reset query would be one
    more round trip on every request for nothing."""


def tortoise_config(settings: Settings) -> dict[str, Any]:
    """The dict ``Tortoise.init(config=...)`` and the migration tool both take.

    Building it also makes SQLite migrations rebuild tables without losing their indexes,
    triggers, or other tables' rows (``models.schema_editor``).
    """
    use_rebuild_keeping_editor()
    if settings.is_sqlite:
        credentials: dict[str, Any] | str = {
            "engine": "tortoise.backends.sqlite",
            "credentials": {
                "file_path": settings.database_url.removeprefix("sqlite://"),
                # WAL lets the relay and the workers read while the web process writes.
                "journal_mode": "WAL",
                "journal_size_limit": 16384,
            },
        }
    else:
        # asyncpg's pool: Tortoise's default of 5 connections queues a busy web process's requests.
        separator = "&" if "?" in settings.database_url else "?"
        credentials = expand_db_url(f"{settings.database_url}{separator}maxsize={settings.database_pool_size}")
        credentials["credentials"]["reset"] = keep_session
    return {
        "connections": {"default": credentials},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "models.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def open_database(settings: Settings, *, process_wide: bool = True) -> TortoiseContext:
    """Connect Tortoise and return its context.

    Tortoise 1.x keeps connections in a ContextVar. The web process's handlers (and, under
    ``matomete up``, the in-process actors) run in tasks that do not inherit it, so there the
    context is also the process-wide fallback; a RabbitMQ worker sets it per message instead.
    """
    return await Tortoise.init(config=tortoise_config(settings), _enable_global_fallback=process_wide)


async def close_database(context: TortoiseContext) -> None:
    """Close what ``open_database`` opened."""
    await context.close_connections()


@asynccontextmanager
async def connected(settings: Settings) -> AsyncIterator[TortoiseContext]:
    """The database open for the block, and closed after it whatever happens."""
    context = await open_database(settings)
    try:
        yield context
    finally:
        await close_database(context)


def __getattr__(name: str) -> Any:
    """``settings.database.TORTOISE_ORM`` for Tortoise's own CLI (``tortoise -c ...``),
    built from the environment only when that CLI asks for it."""
    if name == "TORTOISE_ORM":
        from settings import load_settings

        return tortoise_config(load_settings())
    raise AttributeError(name)
