"""Apply the schema: Tortoise's built-in migrations, on PostgreSQL and SQLite alike."""

from __future__ import annotations

from tortoise import Tortoise
from tortoise.migrations.api import migrate

from settings import Settings
from settings.database import tortoise_config

__all__ = ["apply_migrations"]


async def apply_migrations(settings: Settings) -> None:
    """Bring the database to the latest migration; applying twice changes nothing."""
    try:
        await migrate(config=tortoise_config(settings))
    finally:
        await Tortoise.close_connections()
