"""``/healthz`` (the process is alive) and ``/readyz`` (database and broker reachable)."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web
from tortoise import connections

from api.http import json_response
from api.keys import BROKER_PROBE

__all__ = ["routes"]

log = structlog.get_logger("matomete.health")
routes = web.RouteTableDef()
PROBE_TIMEOUT = 3.0


@routes.get("/healthz")
async def healthz(_request: web.Request) -> web.Response:
    """Alive: the event loop answers."""
    return json_response({"status": "ok"})


async def _database_ok() -> bool:
    try:
        await asyncio.wait_for(connections.get("default").execute_query("SELECT 1"), PROBE_TIMEOUT)
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready", and is logged
        log.warning("readyz_database_down", error=str(exc))
        return False
    return True


@routes.get("/readyz")
async def readyz(request: web.Request) -> web.Response:
    """Ready: a query runs and the broker accepts a connection; 503 otherwise."""
    database = await _database_ok()
    loop = asyncio.get_running_loop()
    try:
        broker = await asyncio.wait_for(loop.run_in_executor(None, request.app[BROKER_PROBE]), PROBE_TIMEOUT + 1)
    except TimeoutError:
        broker = False
    checks = {"database": "ok" if database else "down", "broker": "ok" if broker else "down"}
    ready = database and broker
    return json_response(
        {"status": "ready" if ready else "unavailable", "checks": checks}, status=200 if ready else 503
    )
