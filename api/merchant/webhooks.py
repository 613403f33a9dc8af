"""Webhook endpoints (product.md §8): create, list, retrieve, update, delete, rotate the secret,
the delivery log, and replaying an event."""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta
from typing import Annotated, Any

from aiohttp import web
from pydantic import AfterValidator, BaseModel, Field
from tortoise.transactions import in_transaction

from api.http import Body, json_response
from api.keys import SETTINGS
from api.merchant.events import event_view
from api.merchant.lists import page
from api.merchant.table import merchant_of, merchant_routes, not_found, owned
from billing.errors import InvalidRequest
from models.clock import clock
from models.events import DELIVERY_LEASE, EVENT_TYPES, DeliveryAttempt, Event, WebhookDelivery, WebhookEndpoint
from models.outbox import send
from workers.webhooks import UnsafeDestination, check_destination, deliver_webhook, endpoint_view

__all__: list[str] = []

ROTATION_OVERLAP = timedelta(hours=24)
MAX_ENDPOINTS = 16


def _event_types(values: list[str]) -> list[str]:
    for value in values:
        if value != "*" and value not in EVENT_TYPES:
            raise ValueError(f"unknown event type {value!r}")
    return sorted(set(values))


EventTypes = Annotated[list[str], Field(min_length=1, max_length=len(EVENT_TYPES) + 1), AfterValidator(_event_types)]
Url = Annotated[str, Field(min_length=8, max_length=2048)]


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


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


async def _checked_url(request: web.Request, url: str) -> str:
    try:
        await check_destination(url, allow_insecure=request.app[SETTINGS].webhooks_allow_insecure)
    except UnsafeDestination as error:
        raise InvalidRequest(f"url {error}.", param="url") from None
    return url


async def _endpoint(request: web.Request, *, lock: bool = False) -> WebhookEndpoint:
    return await owned(request, WebhookEndpoint, "webhook endpoint", lock=lock, deleted_at=None)


@merchant_routes.route(
    "POST",
    "/webhook_endpoints",
    summary="Create a webhook endpoint",
    body=EndpointCreate,
    response=EndpointOut,
    status=201,
)
async def create_endpoint(request: web.Request, body: EndpointCreate) -> web.Response:
    """A new endpoint; its signing secret is in this answer only."""
    merchant = merchant_of(request)
    url = await _checked_url(request, body.url)
    if await WebhookEndpoint.filter(merchant_id=merchant.id, deleted_at=None).count() >= MAX_ENDPOINTS:
        raise InvalidRequest(f"At most {MAX_ENDPOINTS} endpoints per merchant.", param="url", code="too_many_endpoints")
    secret = new_secret()
    endpoint = await WebhookEndpoint.create(
        merchant=merchant, url=url, events=body.events, secret=secret, created_at=await clock.now()
    )
    return json_response(endpoint_view(endpoint, secret=secret), status=201)


@merchant_routes.route("GET", "/webhook_endpoints", summary="List webhook endpoints")
async def list_endpoints(request: web.Request) -> web.Response:
    """This merchant's endpoints, newest first."""
    query: Any = WebhookEndpoint.filter(merchant_id=merchant_of(request).id, deleted_at=None)
    return json_response(await page(request.query, query, view=endpoint_view))


@merchant_routes.route("GET", "/webhook_endpoints/{id}", summary="Retrieve a webhook endpoint", response=EndpointOut)
async def get_endpoint(request: web.Request) -> web.Response:
    """One endpoint (without its secret)."""
    return json_response(endpoint_view(await _endpoint(request)))


@merchant_routes.route(
    "POST", "/webhook_endpoints/{id}", summary="Update a webhook endpoint", body=EndpointUpdate, response=EndpointOut
)
async def update_endpoint(request: web.Request, body: EndpointUpdate) -> web.Response:
    """Only the fields given change; enabling again clears the failure count."""
    url = await _checked_url(request, body.url) if body.url is not None else None
    async with in_transaction():
        endpoint = await _endpoint(request, lock=True)
        if url is not None:
            endpoint.url = url
        if body.events is not None:
            endpoint.events = body.events
        if body.enabled is not None:
            endpoint.enabled = body.enabled
            if body.enabled:
                endpoint.consecutive_failures, endpoint.disabled_reason = 0, None
        await endpoint.save()
    return json_response(endpoint_view(endpoint))


@merchant_routes.route("DELETE", "/webhook_endpoints/{id}", summary="Delete a webhook endpoint")
async def delete_endpoint(request: web.Request) -> web.Response:
    """Nothing more is sent to it; its delivery log stays readable for the records."""
    async with in_transaction():
        endpoint = await _endpoint(request, lock=True)
        endpoint.deleted_at, endpoint.enabled = await clock.now(), False
        await endpoint.save(update_fields=["deleted_at", "enabled"])
    return json_response({"id": endpoint.id, "object": "webhook_endpoint", "deleted": True})


@merchant_routes.route(
    "POST", "/webhook_endpoints/{id}/rotate_secret", summary="Rotate the signing secret", response=EndpointOut
)
async def rotate_secret(request: web.Request) -> web.Response:
    """A new secret (shown once); for 24 hours deliveries carry both signatures."""
    async with in_transaction():
        endpoint = await _endpoint(request, lock=True)
        secret = new_secret()
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = await clock.now() + ROTATION_OVERLAP
        endpoint.secret = secret
        await endpoint.save(update_fields=["previous_secret", "previous_secret_expires_at", "secret"])
    return json_response(endpoint_view(endpoint, secret=secret))


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


@merchant_routes.route("GET", "/webhook_endpoints/{id}/deliveries", summary="List an endpoint's deliveries")
async def list_deliveries(request: web.Request) -> web.Response:
    """Each delivery to this endpoint with every attempt: time, status code, duration, error."""
    endpoint = await _endpoint(request)
    listing = await page(request.query, WebhookDelivery.filter(endpoint_id=endpoint.id), view=lambda d: d)
    listing["data"] = [await _delivery_view(delivery) for delivery in listing["data"]]
    return json_response(listing)


@merchant_routes.route("POST", "/events/{id}/redeliver", summary="Send an event to the endpoints again")
async def redeliver_event(request: web.Request) -> web.Response:
    """Every enabled endpoint that wants the event gets it again, under the same ``webhook-id``."""
    event_id = request.match_info["id"]
    merchant = merchant_of(request)
    async with in_transaction():
        event = await Event.get_or_none(id=event_id, merchant_id=merchant.id)
        if event is None:
            raise not_found("event", event_id)
        now = await clock.now()
        endpoints = await WebhookEndpoint.filter(merchant_id=merchant.id, enabled=True, deleted_at=None)
        for endpoint in (e for e in endpoints if e.wants(event.type)):
            delivery = await WebhookDelivery.select_for_update().get_or_none(event_id=event.id, endpoint_id=endpoint.id)
            if delivery is None:
                await WebhookDelivery.schedule(event, endpoint, now=now)
                continue
            delivery.status, delivery.attempts, delivery.next_attempt_at = "pending", 0, now + DELIVERY_LEASE
            await delivery.save(update_fields=["status", "attempts", "next_attempt_at"])
            await send(deliver_webhook, delivery.id)
    return json_response(event_view(event), status=202)
