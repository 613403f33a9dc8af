"""A client that goes away mid-request (issue 14): an info line, never an ``unhandled_error`` 500."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from structlog.testing import capture_logs

from conftest import OpsClient
from models.charges import Charge
from models.merchants import IdempotencyKey
from tests_support import open_shop


async def _events(logs: list[dict[str, Any]], event: str) -> list[dict[str, Any]]:
    """The ``event`` entries, once the server has logged one (it handles the close on its own)."""
    for _ in range(100):
        found = [entry for entry in logs if entry["event"] == event]
        if found:
            return found
        await asyncio.sleep(0.05)
    return []


@pytest.mark.parametrize("cancel_handler", [False, True], ids=["read-fails", "handler-cancelled"])
@pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "unkeyed"])
async def test_a_client_gone_mid_body_is_an_info_line(
    client: Any, ops: OpsClient, keyed: bool, cancel_handler: bool
) -> None:
    """A POST whose client closes the connection before its body is complete logs
    ``client_disconnected`` at info, no ``unhandled_error``, and writes nothing: whether the body's
    read fails (aiohttp's default, as ``matomete web`` runs) or the handler is cancelled."""
    client.server.runner.server.handler_cancellation = cancel_handler  # the test server cancels
    shop = await open_shop(ops)
    key = "Idempotency-Key: gone-1\r\n" if keyed else ""
    head = (
        "POST /v1/charges HTTP/1.1\r\nHost: test\r\n"
        f"Authorization: Bearer {shop.api_key}\r\n{key}"
        "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
    )
    with capture_logs() as logs:
        _, writer = await asyncio.open_connection(client.server.host, client.server.port)
        writer.write(head.encode() + b'{"amount": 5')
        await writer.drain()
        await asyncio.sleep(0.2)  # the server is now waiting for the rest of the body
        writer.close()
        await writer.wait_closed()
        gone = await _events(logs, "client_disconnected")
    assert [entry["log_level"] for entry in gone] == ["info"], logs
    assert not [entry for entry in logs if entry["event"] == "unhandled_error"]
    assert [entry["status"] for entry in logs if entry["event"] == "request"] == [499]
    assert await Charge.all().count() == 0
    assert await IdempotencyKey.all().count() == 0
