"""The test clock (product.md §12): one clock for all code, moved only forward."""

from __future__ import annotations

from datetime import datetime, timedelta

from conftest import OpsClient
from models.clock import clock


async def test_clock_moves_forward_and_every_reader_sees_it(ops: OpsClient) -> None:
    """After a move, clock.now() (what all code reads) is at the new time, and time keeps flowing."""
    status, body = await ops.post("/ops/v1/clock", json={"now": "2030-12-01T00:10:00+09:00"})
    assert status == 200
    target = datetime.fromisoformat("2030-12-01T00:10:00+09:00")
    assert datetime.fromisoformat(body["now"]) == target
    now = await clock.now()
    assert target <= now < target + timedelta(seconds=5)
    status, read = await ops.get("/ops/v1/clock")
    assert status == 200
    assert read["test_clock"] is True
    assert datetime.fromisoformat(read["now"]) >= target


async def test_clock_never_goes_backwards(ops: OpsClient) -> None:
    """A move into the past is refused with 409 and the clock stays where it was."""
    await ops.post("/ops/v1/clock", json={"now": "2031-01-01T00:00:00+09:00"})
    status, answer = await ops.post("/ops/v1/clock", json={"now": "2030-01-01T00:00:00+09:00"})
    assert status == 409
    assert answer["error"]["param"] == "now"
    assert await clock.now() >= datetime.fromisoformat("2031-01-01T00:00:00+09:00")


async def test_clock_input_is_checked(ops: OpsClient) -> None:
    """A time without a UTC offset, or not a time at all, is a 400 naming `now`."""
    for value in ("2031-01-01T00:00:00", "tomorrow", 12345, None):
        status, answer = await ops.post("/ops/v1/clock", json={"now": value})
        assert status == 400, value
        assert answer["error"]["param"] == "now"


async def test_clock_cannot_move_when_the_test_clock_is_off(aiohttp_client, settings) -> None:
    """Without MATOMETE_TEST_CLOCK the move endpoint does not exist (404) and time is the system's."""
    from api.app import create_app

    client = await aiohttp_client(create_app(settings.replace(test_clock=False)))
    ops = OpsClient(client)
    status, answer = await ops.post("/ops/v1/clock", json={"now": "2040-01-01T00:00:00+09:00"})
    assert status == 404
    assert answer["error"]["code"] == "test_clock_off"
    assert abs((await clock.now() - clock.system_now()).total_seconds()) < 5
