"""The route table of the merchant API ``/v1``, and what a request knows about its merchant."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, TypeVar

from aiohttp import web
from tortoise.models import Model

from api.routes import RouteTable
from billing.errors import InvalidRequest, NotFound
from models.merchants import Merchant

__all__ = ["MERCHANT", "merchant_of", "merchant_routes", "owned", "with_status"]

M = TypeVar("M", bound=Model)

merchant_routes = RouteTable(
    title="Matomete merchant API",
    prefix="/v1",
    security_description="Authorization: Bearer <API key> (sk_live_...), issued by the carrier",
)
MERCHANT = web.RequestKey("merchant", Merchant)


def merchant_of(request: web.Request) -> Merchant:
    """The merchant whose API key signed this request."""
    return request[MERCHANT]


def not_found(kind: str, object_id: str, param: str = "id") -> NotFound:
    """Another merchant's object answers exactly like a missing one."""
    return NotFound(f"No such {kind}: {object_id}.", param=param)


async def owned(request: web.Request, model: type[M], kind: str, *, lock: bool = False, **also: Any) -> M:
    """The ``{id}`` of the path, if it is this merchant's ``model`` (and matches ``also``); else 404."""
    object_id = request.match_info["id"]
    query: Any = model.select_for_update() if lock else model
    found: M | None = await query.get_or_none(id=object_id, merchant_id=merchant_of(request).id, **also)
    if found is None:
        raise not_found(kind, object_id)
    return found


def with_status(request: web.Request, query: Any, statuses: Collection[str]) -> Any:
    """``query`` narrowed to the ``status`` query parameter, if given and known."""
    status = request.query.get("status")
    if status is None:
        return query
    if status not in statuses:
        raise InvalidRequest(f"status must be one of {', '.join(sorted(statuses))}.", param="status")
    return query.filter(status=status)
