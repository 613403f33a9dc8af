"""Webhook endpoints (product.md §8): create, list, retrieve, update, delete, rotate the secret,
the delivery log, and replaying an event."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AfterValidator, BaseModel, Field

from api.http import Body, json_response
from api.keys import SETTINGS
from api.merchant.events import EventOut, event_view
from api.merchant.fields import url_field
from api.merchant.lists import list_of, list_query, page
from api.merchant.table import acting_merchant, merchant_of, merchant_routes
from models.events import EVENT_TYPES, STANDARD, DeliveryAttempt, WebhookDelivery, WebhookEndpoint
from models.operations import webhooks

__all__: list[str] = []

EVENT_TYPES_AND_ALL = (*EVENT_TYPES, "*")

EventType = Literal[EVENT_TYPES_AND_ALL]  # type: ignore[valid-type]
EventTypes = Annotated[
    list[EventType],
    Field(min_length=1, max_length=len(EVENT_TYPES) + 1, description='The event types to send ("*": all of them)'),
    AfterValidator(webhooks.event_types),
]
Url = Annotated[
    str,
    url_field(
        webhooks.MAX_URL_LENGTH,
        "Where events are posted: https, to a host that resolves to public addresses only "
        "(http and internal addresses only where the platform allows them for local testing)",
    ),
]


class EndpointCreate(Body):
    """Where to send events, and which (``["*"]`` for all)."""

    url: Url
    events: EventTypes


class EndpointUpdate(Body):
    """Change the URL, the event types, or switch the endpoint off and on."""

    url: Url | None = None
    events: EventTypes | None = None
    enabled: bool | None = None


class EndpointOut(BaseModel):
    """A webhook endpoint; ``secret`` (``whsec_...``) only when just created or rotated."""

    id: str
    object: str
    url: str
    events: list[str]
    enabled: bool
    disabled_reason: str | None
    created: int
    secret: str | None = None


def _insecure(request: web.Request) -> bool:
    """Whether http and internal addresses are allowed (a merchant testing locally)."""
    return request.app[SETTINGS].webhooks_allow_insecure


@merchant_routes.route(
    "POST",
    "/webhook_endpoints",
    summary="Create a webhook endpoint",
    body=EndpointCreate,
    response=EndpointOut,
    status=201,
    errors=(400, 401, 409),
    description=f"At most {webhooks.MAX_ENDPOINTS} endpoints per merchant: one more answers 409 too_many_endpoints.",
)
async def create_endpoint(request: web.Request, body: EndpointCreate) -> web.Response:
    """A new endpoint; its signing secret is in this answer only."""
    endpoint, secret = await webhooks.create_endpoint(
        merchant_of(request).id,
        url=body.url,
        events=body.events,
        allow_insecure=_insecure(request),
        actor=acting_merchant(request),
    )
    return json_response(endpoint.to_api(secret=secret), status=201)


@merchant_routes.route(
    "GET",
    "/webhook_endpoints",
    summary="List webhook endpoints",
    response=list_of(EndpointOut),
    query=list_query(),
    errors=(400, 401, 404, 422),
)
async def list_endpoints(request: web.Request) -> web.Response:
    """This merchant's endpoints, newest first."""
    query: Any = WebhookEndpoint.filter(merchant_id=merchant_of(request).id, kind=STANDARD, deleted_at=None)
    return json_response(await page(request.query, query, view=WebhookEndpoint.to_api))


@merchant_routes.route("GET", "/webhook_endpoints/{id}", summary="Retrieve a webhook endpoint", response=EndpointOut)
async def get_endpoint(request: web.Request) -> web.Response:
    """One endpoint (without its secret)."""
    return json_response((await webhooks.find_endpoint(merchant_of(request).id, request.match_info["id"])).to_api())


@merchant_routes.route(
    "POST", "/webhook_endpoints/{id}", summary="Update a webhook endpoint", body=EndpointUpdate, response=EndpointOut
)
async def update_endpoint(request: web.Request, body: EndpointUpdate) -> web.Response:
    """Only the fields given change; enabling again clears the failure count."""
    endpoint = await webhooks.update_endpoint(
        merchant_of(request).id,
        request.match_info["id"],
        url=body.url,
        events=body.events,
        enabled=body.enabled,
        allow_insecure=_insecure(request),
        actor=acting_merchant(request),
    )
    return json_response(endpoint.to_api())


@merchant_routes.route("DELETE", "/webhook_endpoints/{id}", summary="Delete a webhook endpoint")
async def delete_endpoint(request: web.Request) -> web.Response:
    """Nothing more is sent to it; its delivery log stays readable for the records."""
    endpoint = await webhooks.delete_endpoint(
        merchant_of(request).id, request.match_info["id"], actor=acting_merchant(request)
    )
    return json_response({"id": endpoint.id, "object": "webhook_endpoint", "deleted": True})


@merchant_routes.route(
    "POST", "/webhook_endpoints/{id}/rotate_secret", summary="Rotate the signing secret", response=EndpointOut
)
async def rotate_secret(request: web.Request) -> web.Response:
    """A new secret (shown once); for 24 hours deliveries carry both signatures."""
    endpoint, secret = await webhooks.rotate_secret(
        merchant_of(request).id, request.match_info["id"], actor=acting_merchant(request)
    )
    return json_response(endpoint.to_api(secret=secret))


async def _delivery_view(delivery: WebhookDelivery) -> dict[str, Any]:
    attempts = await DeliveryAttempt.filter(delivery_id=delivery.id).order_by("attempted_at", "id")
    return {
        "id": delivery.id,
        "object": "webhook_delivery",
        "event": delivery.event_id,
        "status": delivery.status,
        "attempt_count": delivery.attempts,
        "next_attempt_at": int(delivery.next_attempt_at.timestamp()) if delivery.next_attempt_at else None,
        "attempts": [
            {
                "attempted_at": int(a.attempted_at.timestamp()),
                "status_code": a.status_code,
                "duration_ms": a.duration_ms,
                "error": a.error,
            }
            for a in attempts
        ],
        "created": int(delivery.created_at.timestamp()),
    }


class AttemptOut(BaseModel):
    """One attempt to deliver: when, the endpoint's status code (if it answered), how long, what failed."""

    attempted_at: int
    status_code: int | None
    duration_ms: int | None
    error: str | None


class DeliveryOut(BaseModel):
    """An event's delivery to one endpoint and every attempt at it."""

    id: str
    object: Literal["webhook_delivery"]
    event: str
    status: str
    attempt_count: int
    next_attempt_at: int | None
    attempts: list[AttemptOut]
    created: int


@merchant_routes.route(
    "GET",
    "/webhook_endpoints/{id}/deliveries",
    summary="List an endpoint's deliveries",
    response=list_of(DeliveryOut),
    query=list_query(),
    errors=(400, 401, 404, 422),
)
async def list_deliveries(request: web.Request) -> web.Response:
    """Each delivery to this endpoint with every attempt: time, status code, duration, error."""
    endpoint = await webhooks.find_endpoint(merchant_of(request).id, request.match_info["id"])
    listing = await page(request.query, WebhookDelivery.filter(endpoint_id=endpoint.id), view=lambda d: d)
    listing["data"] = [await _delivery_view(delivery) for delivery in listing["data"]]
    return json_response(listing)


@merchant_routes.route(
    "POST",
    "/events/{id}/redeliver",
    summary="Send an event to the endpoints again",
    response=EventOut,
    status=202,
    description="Accepted: the webhooks worker sends it (the answer is the event).",
)
async def redeliver_event(request: web.Request) -> web.Response:
    """Every enabled endpoint that wants the event gets it again, under the same ``webhook-id``."""
    event = await webhooks.redeliver_event(
        merchant_of(request).id, request.match_info["id"], actor=acting_merchant(request)
    )
    return json_response(event_view(event), status=202)
