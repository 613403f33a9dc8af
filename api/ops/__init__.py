"""The operator API ``/ops/v1``: provisioning lines, IDs and merchants, and the test clock.

Every request carries ``Authorization: Bearer <MATOMETE_OPS_TOKEN>``.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Handler

from api.keys import SETTINGS
from api.ops import billing, collections, lines, merchants, oauth_clients, payouts, system
from api.ops import clock as clock_routes
from api.ops.table import ops_routes
from api.ratelimit import failed_auth_limit
from billing.errors import AuthenticationFailed
from settings import Settings

__all__ = ["ops_app", "ops_routes"]

_ = (
    billing,
    clock_routes,
    collections,
    lines,
    merchants,
    oauth_clients,
    payouts,
    system,
)  # importing them declares their routes on ops_routes
PUBLIC_SUFFIX = "/openapi.json"  # the contract is public; every operation needs the token


@web.middleware
async def ops_auth(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Let through only requests that carry the ops token."""
    if request.path.endswith(PUBLIC_SUFFIX):
        return await handler(request)
    token = request.app[SETTINGS].ops_token
    scheme, _, offered = request.headers.get("Authorization", "").partition(" ")
    if not token or scheme.lower() != "bearer" or not hmac.compare_digest(offered.encode(), token.encode()):
        raise AuthenticationFailed(
            "A valid ops token is required (Authorization: Bearer ...).", code="invalid_ops_token"
        )
    return await handler(request)


def ops_app(settings: Settings) -> web.Application:
    """The ``/ops/v1`` sub-application."""
    app = web.Application(middlewares=[failed_auth_limit("ops_token_failures"), ops_auth])
    app[SETTINGS] = settings
    app.add_routes(ops_routes.routes())
    return app
