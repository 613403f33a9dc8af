"""The test clock (product.md §12): read it always, move it only under ``MATOMETE_TEST_CLOCK=1``."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import AwareDatetime, BaseModel

from api.http import Body, json_response
from api.keys import SETTINGS
from api.ops.table import ops_routes
from billing.errors import Conflict, NotFound, Unprocessable
from billing.periods import LAST_CLOCK_YEAR, clock_in_range
from models.clock import ClockBackwards, clock

__all__: list[str] = []


class ClockMove(Body):
    """Where to move the clock: an ISO 8601 time with its UTC offset."""

    now: AwareDatetime


class ClockOut(BaseModel):
    """The platform's time."""

    now: datetime
    test_clock: bool


@ops_routes.route("GET", "/clock", summary="Read the platform clock", response=ClockOut)
async def read_clock(request: web.Request) -> web.Response:
    """What every process of the platform takes to be now."""
    return json_response({"now": await clock.now(), "test_clock": request.app[SETTINGS].test_clock})


@ops_routes.route(
    "POST",
    "/clock",
    summary="Move the test clock",
    body=ClockMove,
    response=ClockOut,
    errors=(400, 401, 404, 409, 422),
    description=f"Forward only (409 backwards), before the year {LAST_CLOCK_YEAR + 1} in Japan (422 beyond), "
    "and only under MATOMETE_TEST_CLOCK=1 (404 otherwise).",
)
async def move_clock(request: web.Request, body: ClockMove) -> web.Response:
    """Move the test clock forward; refused backwards, and absent unless the test clock is on."""
    if not request.app[SETTINGS].test_clock:
        raise NotFound("The test clock is off (MATOMETE_TEST_CLOCK=1 turns it on).", code="test_clock_off")
    if not clock_in_range(body.now):
        raise Unprocessable(
            f"now must be before the year {LAST_CLOCK_YEAR + 1} (the calendar's reach).",
            param="now",
            code="clock_out_of_range",
        )
    try:
        now = await clock.move_to(body.now)
    except ClockBackwards as error:
        raise Conflict(str(error), param="now", code="clock_backwards") from None
    return json_response({"now": now, "test_clock": True})
