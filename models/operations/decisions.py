"""Waking the pages that wait for a confirmation's decision, instead of having them poll.

The auth worker's deciding transaction announces its charge (PostgreSQL ``NOTIFY`` on
``matomete_decided``, which is delivered when, and only if, the transaction commits). Each web
process listens on one connection of its own (outside the pool: ``LISTEN`` is session state)
and wakes the requests waiting for that charge. A request registers before it reads the status
again, so a decision committed in between still wakes it. On SQLite (the embedded mode: one
process) a waiter re-reads the charge every 0.2 s instead. Whatever fails (no listener, a lost
connection), a wait ends at its timeout and the caller reads the status as before: the wait
page's refresh stays the fallback.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from typing import Any

import structlog

from billing.states import ChargeStatus
from models.charges import Charge

__all__ = ["CHANNEL", "DecisionWaiters", "announce_decided"]

CHANNEL = "matomete_decided"
POLL_SECONDS = 0.2  # SQLite, or while the listener is down
RECONNECT_SECONDS = 5.0

log = structlog.get_logger("matomete.decisions")

Wait = Callable[[float], Awaitable[bool]]


async def announce_decided(charge_id: str) -> None:
    """Inside the deciding transaction: wake whoever waits for ``charge_id`` once it commits."""
    connection = Charge._meta.db
    if connection.capabilities.dialect == "postgres":
        await connection.execute_query("SELECT pg_notify($1, $2)", [CHANNEL, charge_id])


class DecisionWaiters:
    """One web process's waiters, by charge id, and its listening connection (PostgreSQL)."""

    def __init__(self, database_url: str) -> None:
        self._url = database_url if database_url.startswith(("postgres://", "postgresql://")) else None
        self._waiting: dict[str, set[asyncio.Event]] = {}
        self._connection: Any = None
        self._connecting = asyncio.Lock()
        self._next_attempt = 0.0

    async def close(self) -> None:
        """Stop listening."""
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed():
            with suppress(Exception):
                await connection.close(timeout=2)

    @asynccontextmanager
    async def waiting(self, charge_id: str) -> AsyncIterator[Wait]:
        """Registered for ``charge_id`` for the block: read the status, then ``await wait(s)``,
        which answers True when woken by a decision, False after ``s`` seconds."""
        listening = await self._listening()
        event = asyncio.Event()
        self._waiting.setdefault(charge_id, set()).add(event)

        async def wait(seconds: float) -> bool:
            if listening:
                with suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), seconds)
                return event.is_set()
            return await _poll(charge_id, seconds)

        try:
            yield wait
        finally:
            waiters = self._waiting.get(charge_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiting[charge_id]

    async def _listening(self) -> bool:
        """Whether a listener is up (connecting it, at most every few seconds after a failure)."""
        if self._url is None:
            return False
        if self._connection is not None and not self._connection.is_closed():
            return True
        async with self._connecting:
            if self._connection is not None and not self._connection.is_closed():
                return True
            if time.monotonic() < self._next_attempt:
                return False
            self._next_attempt = time.monotonic() + RECONNECT_SECONDS
            import asyncpg

            try:
                connection = await asyncpg.connect(self._url, timeout=5)
                await connection.add_listener(CHANNEL, self._decided)
            except (OSError, asyncpg.PostgresError, TimeoutError) as error:
                log.warning("decision_listener_unavailable", error=type(error).__name__)
                return False
            self._connection = connection
            return True

    def _decided(self, _connection: Any, _pid: int, _channel: str, charge_id: str) -> None:
        for event in self._waiting.get(charge_id, ()):
            event.set()


async def _poll(charge_id: str, seconds: float) -> bool:
    """Re-read the charge until it is no longer being decided, or ``seconds`` pass."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not await Charge.filter(id=charge_id, status=ChargeStatus.PROCESSING).exists():
            return True
        await asyncio.sleep(min(POLL_SECONDS, max(0.0, deadline - time.monotonic())))
    return False
