"""Events (product.md §8): every change a merchant cares about, newest first."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel

from api.http import json_response
from api.merchant.lists import list_of, list_query, page
from api.merchant.table import merchant_of, merchant_routes, owned
from billing.errors import InvalidRequest
from models.events import EVENT_TYPES, Event

__all__ = ["event_view"]


class EventOut(BaseModel):
    """The event object: ``data.object`` is the object as the API showed it then."""

    id: str
    object: str
    type: str
    created: int
    data: dict[str, Any]


def event_view(event: Event) -> dict[str, Any]:
    """The event object of the merchant API (and the body of its webhooks)."""
    return {
        "id": event.id,
        "object": "event",
        "type": event.type,
        "created": int(event.created_at.timestamp()),
        "data": event.data,
    }


@merchant_routes.route("GET", "/events/{id}", summary="Retrieve an event", response=EventOut)
async def get_event(request: web.Request) -> web.Response:
    """One of this merchant's events."""
    return json_response(event_view(await owned(request, Event, "event")))


@merchant_routes.route(
    "GET",
    "/events",
    summary="List events (newest first; type filter)",
    response=list_of(EventOut),
    query=list_query(type={"type": "string", "enum": list(EVENT_TYPES)}),
    errors=(400, 401, 404, 422),
)
async def list_events(request: web.Request) -> web.Response:
    """This merchant's events, newest first."""
    query: Any = Event.filter(merchant_id=merchant_of(request).id)
    event_type = request.query.get("type")
    if event_type is not None:
        if event_type not in EVENT_TYPES:
            raise InvalidRequest(f"type must be one of {', '.join(EVENT_TYPES)}.", param="type")
        query = query.filter(type=event_type)
    return json_response(await page(request.query, query, view=event_view, filters=("type",)))
