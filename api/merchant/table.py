"""The route table of the merchant API ``/v1``, and what a request knows about its merchant."""

from __future__ import annotations

from aiohttp import web

from api.routes import RouteTable
from billing.errors import NotFound
from models.merchants import Merchant

__all__ = ["MERCHANT", "merchant_of", "merchant_routes"]

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
