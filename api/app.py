"""The application factory: ``create_app(settings)`` builds every surface of the web process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

import queues
from api import health
from api.keys import BROKER_PROBE, SETTINGS
from api.middlewares import error_middleware, request_id_middleware
from api.ops import ops_app
from models.clock import clock
from settings import Settings
from settings.database import close_database, open_database

__all__ = ["create_app"]

MAX_BODY_BYTES = 1024 * 1024


def _database_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def database(_app: web.Application) -> AsyncIterator[None]:
        context = await open_database(settings)
        yield
        await close_database(context)

    return database


def create_app(settings: Settings, *, broker_probe: Callable[[], bool] | None = None) -> web.Application:
    """The aiohttp application for ``settings``; the database opens on start-up, closes on exit."""
    clock.configure(test_clock=settings.test_clock)
    app = web.Application(
        middlewares=[request_id_middleware, error_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    app[BROKER_PROBE] = broker_probe or queues.broker_probe(settings)
    app.cleanup_ctx.append(_database_ctx(settings))
    app.add_routes(health.routes)
    app.add_subapp("/ops/v1", ops_app(settings))
    return app
