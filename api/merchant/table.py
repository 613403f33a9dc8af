"""The route table of the merchant API ``/v1``, and what a request knows about its merchant."""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any, TypeVar

from aiohttp import web
from tortoise.models import Model

from api.keys import REQUEST_ID
from api.routes import RouteTable
from billing.errors import InvalidRequest
from models.audit_log import Actor
from models.merchants import Merchant
from models.operations.charges import find_owned

__all__ = [
    "IDEMPOTENCY_HEADER",
    "IDEMPOTENCY_KEY",
    "MAX_KEY_LENGTH",
    "MERCHANT",
    "acting_merchant",
    "merchant_of",
    "merchant_routes",
    "owned",
    "with_status",
]

M = TypeVar("M", bound=Model)

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
KEY_PATTERN = f"^[\\x20-\\x7e]{{1,{MAX_KEY_LENGTH}}}$"  # printable ASCII: what a header carries intact
IDEMPOTENCY_KEY = re.compile(KEY_PATTERN)
HEADER_PARAMETER = {
    "name": IDEMPOTENCY_HEADER,
    "in": "header",
    "required": False,
    "description": "Kept 24 hours or more: the same key and body answer the stored response again "
    "(Idempotent-Replayed: true); a different body, or the first request still running, answers 409",
    "schema": {"type": "string", "pattern": KEY_PATTERN},
}


merchant_routes = RouteTable(
    title="Matomete merchant API",
    prefix="/v1",
    security_description="Authorization: Bearer <API key> (sk_live_...), issued by the carrier",
    post_headers=(HEADER_PARAMETER,),
    post_errors=(400, 409),
)
MERCHANT = web.RequestKey("merchant", Merchant)


def merchant_of(request: web.Request) -> Merchant:
    """The merchant whose API key signed this request."""
    return request[MERCHANT]


def acting_merchant(request: web.Request) -> Actor:
    """Who the audit log names for a request signed with a merchant's API key."""
    return Actor(f"merchant:{merchant_of(request).id}", request.get(REQUEST_ID))


async def owned(request: web.Request, model: type[M], kind: str, **also: Any) -> M:
    """The ``{id}`` of the path, if it is this merchant's ``model`` (and matches ``also``); else 404."""
    return await find_owned(model, request.match_info["id"], merchant_id=merchant_of(request).id, kind=kind, **also)


def with_status(request: web.Request, query: Any, statuses: Collection[str]) -> Any:
    """``query`` narrowed to the ``status`` query parameter, if given and known."""
    status = request.query.get("status")
    if status is None:
        return query
    if status not in statuses:
        raise InvalidRequest(f"status must be one of {', '.join(sorted(statuses))}.", param="status")
    return query.filter(status=status)
