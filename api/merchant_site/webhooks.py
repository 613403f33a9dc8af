"""``/merchant/webhooks``: the merchant's webhook endpoints, each endpoint's delivery log, and
what a developer does to them (add, replay a delivery, rotate the secret, switch off and on,
delete), each through the operation ``/v1`` uses (``models.operations.webhooks``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.keys import SETTINGS
from api.merchant_site.access import Permission, acting, require
from api.merchant_site.pager import page_links
from api.paging import keyset_page
from api.site.pages import render, see_other
from billing.errors import Conflict, InvalidRequest
from models.events import EVENT_TYPES, STANDARD, DeliveryAttempt, Event, WebhookDelivery, WebhookEndpoint
from models.operations import webhooks

__all__ = ["routes"]

routes = web.RouteTableDef()
DELIVERIES_SHOWN = 50
# The types a merchant may ask for; ``webhook_endpoint.disabled`` is sent whatever is chosen.
CHOOSABLE_EVENTS = [event_type for event_type in EVENT_TYPES if event_type != "webhook_endpoint.disabled"]


def _allow_insecure(request: web.Request) -> bool:
    """Whether http and internal addresses are allowed (a merchant testing locally)."""
    return request.app[SETTINGS].webhooks_allow_insecure


async def _endpoints_page(request: web.Request, *, status: int = 200, **context: object) -> web.Response:
    staff = require(request, Permission.DEVELOP)
    endpoints = (
        await WebhookEndpoint.filter(merchant_id=staff.merchant.id, kind=STANDARD, deleted_at=None)
        .order_by("created_at", "id")
        .limit(webhooks.MAX_ENDPOINTS)
    )
    page = {
        "endpoints": endpoints,
        "event_types": CHOOSABLE_EVENTS,
        "form": {"url": "", "events": ["*"]},
        "errors": {},
        "deleted": request.query.get("done") == "deleted",
        **context,
    }
    return await render(request, "merchant/webhooks.html", page, status=status)


async def _deliveries(request: web.Request, endpoint: WebhookEndpoint) -> dict[str, Any]:
    """One page of the endpoint's delivery log, with each delivery's event and latest attempt."""
    found = await keyset_page(
        WebhookDelivery.filter(endpoint_id=endpoint.id),
        after=request.query.get("after"),
        before=request.query.get("before"),
        limit=DELIVERIES_SHOWN,
    )
    ids = [delivery.id for delivery in found.rows]
    events = {event.id: event for event in await Event.filter(id__in=[d.event_id for d in found.rows])}
    latest: dict[str, DeliveryAttempt] = {}
    for attempt in await DeliveryAttempt.filter(delivery_id__in=ids).order_by("attempted_at", "id"):
        latest[attempt.delivery_id] = attempt  # type: ignore[attr-defined]  # ordered: the last one wins
    rows = [
        {"delivery": delivery, "event": events.get(delivery.event_id), "last": latest.get(delivery.id)}
        for delivery in found.rows
    ]
    return {"deliveries": rows, **page_links(request, found)}


async def _endpoint_page(
    request: web.Request, endpoint: WebhookEndpoint, *, status: int = 200, **context: object
) -> web.Response:
    page = {
        "endpoint": endpoint,
        "secret": None,
        "created": False,
        "errors": {},
        "done": request.query.get("done", ""),
        **await _deliveries(request, endpoint),
        **context,
    }
    return await render(request, "merchant/webhook.html", page, status=status)


async def _endpoint_of(request: web.Request) -> WebhookEndpoint:
    """The path's endpoint, if it is the signed-in merchant's and not deleted (404 otherwise); a
    CAMARA sink's too (its log is read and replayed here; editing it is refused as not found)."""
    staff = require(request, Permission.DEVELOP)
    return await webhooks.find_endpoint(staff.merchant.id, request.match_info["id"], any_kind=True)


@routes.get("/merchant/webhooks")
async def list_endpoints(request: web.Request) -> web.StreamResponse:
    """The merchant's endpoints and the form to add one."""
    return await _endpoints_page(request)


@routes.post("/merchant/webhooks")
async def add_endpoint(request: web.Request) -> web.StreamResponse:
    """Add an endpoint; its signing secret is shown on the answer, once."""
    staff = require(request, Permission.DEVELOP)
    form = await request.post()
    url = str(form.get("url", "")).strip()
    chosen = [str(value) for value in form.getall("events", [])]
    values = {"url": url, "events": chosen}
    if not chosen:
        return await _endpoints_page(request, status=400, form=values, errors={"events": "required"})
    try:
        events = webhooks.event_types(chosen)
    except ValueError:
        return await _endpoints_page(request, status=400, form=values, errors={"events": "invalid_value"})
    if not url:
        return await _endpoints_page(request, status=400, form=values, errors={"url": "required"})
    try:
        endpoint, secret = await webhooks.create_endpoint(
            staff.merchant.id, url=url, events=events, allow_insecure=_allow_insecure(request), actor=acting(request)
        )
    except (InvalidRequest, Conflict) as problem:  # a bad URL; the 17th endpoint
        return await _endpoints_page(
            request, status=problem.status, form=values, errors={problem.param or "url": problem.code}
        )
    return await _endpoint_page(request, endpoint, status=201, secret=secret, created=True)


@routes.get("/merchant/webhooks/{id}")
async def show_endpoint(request: web.Request) -> web.StreamResponse:
    """One endpoint and its delivery log, newest first."""
    return await _endpoint_page(request, await _endpoint_of(request))


@routes.post("/merchant/webhooks/{id}/deliveries/{delivery_id}/replay")
async def replay_delivery(request: web.Request) -> web.StreamResponse:
    """Send one delivery again, under the same ``webhook-id``."""
    endpoint = await _endpoint_of(request)
    try:
        await webhooks.redeliver(
            endpoint.merchant_id, endpoint.id, request.match_info["delivery_id"], actor=acting(request)
        )
    except Conflict as problem:
        return await _endpoint_page(request, endpoint, status=problem.status, errors={"endpoint": problem.code})
    return see_other(f"/merchant/webhooks/{endpoint.id}?done=replayed")


@routes.post("/merchant/webhooks/{id}/rotate")
async def rotate_secret(request: web.Request) -> web.StreamResponse:
    """A new signing secret, shown on the answer once; the old one signs too for 24 hours."""
    endpoint = await _endpoint_of(request)
    rotated, secret = await webhooks.rotate_secret(endpoint.merchant_id, endpoint.id, actor=acting(request))
    return await _endpoint_page(request, rotated, secret=secret)


@routes.post("/merchant/webhooks/{id}/enabled")
async def switch_endpoint(request: web.Request) -> web.StreamResponse:
    """Switch the endpoint off (nothing is sent) or on again (its failure count cleared)."""
    endpoint = await _endpoint_of(request)
    enabled = (await request.post()).get("enabled") == "1"
    await webhooks.update_endpoint(
        endpoint.merchant_id,
        endpoint.id,
        url=None,
        events=None,
        enabled=enabled,
        allow_insecure=_allow_insecure(request),
        actor=acting(request),
    )
    return see_other(f"/merchant/webhooks/{endpoint.id}")


@routes.post("/merchant/webhooks/{id}/delete")
async def delete_endpoint(request: web.Request) -> web.StreamResponse:
    """Delete the endpoint: nothing more is sent to it."""
    endpoint = await _endpoint_of(request)
    await webhooks.delete_endpoint(endpoint.merchant_id, endpoint.id, actor=acting(request))
    return see_other("/merchant/webhooks?done=deleted")
