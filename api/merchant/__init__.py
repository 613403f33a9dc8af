"""The merchant API ``/v1`` (product.md §3, §9, §11): charges, subscriptions, refunds, events.

Every request carries ``Authorization: Bearer <API key>``; a merchant sees only its own objects.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from api.keys import SETTINGS
from api.merchant import charges, docs, events, payouts, refunds, subscriptions, webhooks
from api.merchant.idempotency import CLAIMED, claimable, idempotency_middleware, keyed_transaction
from api.merchant.table import MERCHANT, merchant_routes
from api.ratelimit import failed_auth_limit, write_limit
from billing.errors import AuthenticationFailed
from models.operations.merchants import api_key_record, note_key_used
from settings import Settings

__all__ = ["merchant_app"]

_ = (charges, events, payouts, refunds, subscriptions, webhooks)  # importing them declares their routes
PUBLIC_SUFFIXES = ("/openapi.json", "/docs")


@web.middleware
async def api_key_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Find the merchant by its live API key (stored as a SHA-256 digest)."""
    if request.path.endswith(PUBLIC_SUFFIXES):
        return await handler(request)
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not offered:
        raise AuthenticationFailed("An API key is required: Authorization: Bearer sk_live_...", code="missing_api_key")
    live = await api_key_record(offered, claiming=claimable(request))
    if live is None:
        raise AuthenticationFailed("This API key is not valid, or has been revoked.", code="invalid_api_key")
    if live.claim is not None:
        request[CLAIMED] = live.claim
    await note_key_used(live.record)
    request[MERCHANT] = live.merchant
    return await handler(request)


def _merchant_id(request: web.Request) -> str | None:
    merchant = request.get(MERCHANT)
    return merchant.id if merchant is not None else None


def merchant_app(settings: Settings) -> web.Application:
    """The ``/v1`` sub-application."""
    app = web.Application(
        middlewares=[
            failed_auth_limit("api_key_failures"),
            keyed_transaction,
            api_key_auth,
            write_limit("merchant_writes", _merchant_id),
            idempotency_middleware,
        ]
    )
    app[SETTINGS] = settings
    app.add_routes(merchant_routes.routes())
    app.add_routes([web.get("/docs", docs.docs_page)])
    return app
