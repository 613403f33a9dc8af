"""``/ops/system``: the platform's vital signs for every staff member (queues, outbox,
scheduler, billing runs in progress), and for admins the dead letters of a queue, each of which
can be inspected and requeued with a reason for the audit log."""

from __future__ import annotations

from aiohttp import web

from api.keys import SETTINGS
from api.ops import system as vitals
from api.ops_site.access import StaffPermission, acting, reason_of, require
from api.site.pages import render, see_other
from billing.errors import InvalidRequest, NotFound, ServiceUnavailable

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/ops/system")
async def system(request: web.Request) -> web.StreamResponse:
    """Every queue's depth, consumers and dead letters; the outbox, the scheduler, running closes."""
    require(request, StaffPermission.READ)
    signs = await vitals.vital_signs(request.app[SETTINGS])
    return await render(request, "ops/system.html", {"signs": signs})


async def _dead_letters_page(
    request: web.Request, queue: str, *, status: int = 200, **context: object
) -> web.StreamResponse:
    require(request, StaffPermission.MANAGE)
    vitals.known_queue(queue)
    try:
        letters = await vitals.dead_letters_of(request.app[SETTINGS], queue)
        unreachable = False
    except ServiceUnavailable:
        letters, unreachable, status = [], True, 503
    page = {
        "queue": queue,
        "letters": letters,
        "unreachable": unreachable,
        "requeued": request.query.get("requeued"),
        "error": None,
        "failed_id": None,
        **context,
    }
    return await render(request, "ops/system_dead_letters.html", page, status=status)


@routes.get("/ops/system/dead_letters/{queue}")
async def dead_letters(request: web.Request) -> web.StreamResponse:
    """A queue's dead letters: actor, args, message id, the failure if Dramatiq kept it."""
    return await _dead_letters_page(request, request.match_info["queue"])


@routes.post("/ops/system/dead_letters/{queue}/{message_id}/requeue")
async def requeue(request: web.Request) -> web.StreamResponse:
    """Put a dead letter back on its queue; the reason goes into the audit log with your name."""
    require(request, StaffPermission.MANAGE)
    queue, message_id = request.match_info["queue"], request.match_info["message_id"]
    vitals.known_queue(queue)
    form = await request.post()
    try:
        await vitals.requeue(request.app[SETTINGS], queue, message_id, actor=acting(request), reason=reason_of(form))
    except (InvalidRequest, NotFound, ServiceUnavailable) as problem:
        return await _dead_letters_page(request, queue, status=problem.status, error=problem.code, failed_id=message_id)
    return see_other(f"/ops/system/dead_letters/{queue}?requeued={message_id}")
