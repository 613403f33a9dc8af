"""/healthz and /readyz: alive, and ready only while the database and the broker answer."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest

from conftest import AMQP_URL


async def test_healthz_answers(client) -> None:
    """The process is alive: /healthz is 200 and carries a request id."""
    response = await client.get("/healthz")
    assert response.status == 200
    assert response.headers["X-Request-Id"].startswith("req_")


async def test_readyz_checks_database_and_broker(client) -> None:
    """With both reachable, /readyz is 200 and names both checks."""
    response = await client.get("/readyz")
    assert response.status == 200
    assert (await response.json())["checks"] == {"database": "ok", "broker": "ok"}


async def test_offered_request_id_is_echoed(client) -> None:
    """A caller's sane X-Request-Id is kept, so logs can be joined across systems."""
    response = await client.get("/healthz", headers={"X-Request-Id": "upstream-1234567"})
    assert response.headers["X-Request-Id"] == "upstream-1234567"


async def test_unknown_json_path_answers_the_error_object(client) -> None:
    """Even a 404 under /ops/v1 is the error object, not an HTML page."""
    response = await client.get("/ops/v1/nothing-here", headers={"Authorization": "Bearer x"})
    assert response.status in (401, 404)
    assert "error" in await response.json()


class Gate:
    """A TCP forwarder to RabbitMQ that the test can close and open: the broker 'goes down'
    for the application exactly as a network failure would make it."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.server: asyncio.Server | None = None
        self.port = 0
        self.links: set[asyncio.StreamWriter] = set()

    async def open(self) -> None:
        """Accept connections (on the same port after a close)."""
        self.server = await asyncio.start_server(self._link, "127.0.0.1", self.port)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        """Refuse new connections and cut the open ones."""
        assert self.server is not None
        self.server.close()
        for writer in list(self.links):
            writer.close()
        await self.server.wait_closed()

    async def _link(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        self.links.update((writer, upstream_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, upstream_writer), pipe(upstream_reader, writer))


@pytest.fixture
async def gate() -> AsyncIterator[Gate]:
    """A closable path to the real RabbitMQ."""
    parts = urlsplit(AMQP_URL)
    forwarder = Gate(parts.hostname or "127.0.0.1", parts.port or 5672)
    await forwarder.open()
    yield forwarder
    with contextlib.suppress(Exception):
        await forwarder.close()


@pytest.mark.services
async def test_readyz_turns_503_while_the_broker_is_down(aiohttp_client, settings, gate: Gate) -> None:
    """Broker unreachable: /readyz answers 503 naming the broker; reachable again: 200."""
    from api.app import create_app

    parts = urlsplit(AMQP_URL)
    via_gate = AMQP_URL.replace(f"{parts.hostname}:{parts.port or 5672}", f"127.0.0.1:{gate.port}")
    client = await aiohttp_client(create_app(settings.replace(broker_url=via_gate)))
    assert (await client.get("/readyz")).status == 200
    await gate.close()
    down = await client.get("/readyz")
    assert down.status == 503
    assert (await down.json())["checks"] == {"database": "ok", "broker": "down"}
    await gate.open()
    assert (await client.get("/readyz")).status == 200


@pytest.mark.services
async def test_readyz_turns_503_while_the_database_is_down(aiohttp_client, settings) -> None:
    """A database that does not answer makes /readyz 503 naming the database."""
    from api.app import create_app

    dead = settings.replace(database_url="postgres://postgres@127.0.0.1:1/matomete_test")
    client = await aiohttp_client(create_app(dead))
    response = await client.get("/readyz")
    assert response.status == 503
    assert (await response.json())["checks"]["database"] == "down"
