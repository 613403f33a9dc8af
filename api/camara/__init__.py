"""CAMARA Carrier Billing (product.md §13): ``/carrier-billing/v0.5`` and
``/carrier-billing-refund/v0.3``, each a sub-application with CAMARA's own conventions on its
paths only: the flat ``{status, code, message}`` error body, ``x-correlator`` checked, echoed on
every answer and bound to the log lines, OAuth access tokens with the operation's scope, and a
request limit per aggregator client (429 ``TOO_MANY_REQUESTS``).

Handlers only parse, authorise, call ``models.operations.camara`` and render.
"""

from __future__ import annotations

from aiohttp import web

from api.camara.conventions import camara_middleware
from api.camara.documents import document_route
from api.camara.payments import routes as payment_routes
from api.camara.refunds import routes as refund_routes
from api.keys import SETTINGS
from settings import Settings

__all__ = ["PAYMENTS_PREFIX", "REFUNDS_PREFIX", "camara_apps"]

PAYMENTS_PREFIX = "/carrier-billing/v0.5"
REFUNDS_PREFIX = "/carrier-billing-refund/v0.3"


def camara_apps(settings: Settings) -> list[tuple[str, web.Application]]:
    """The two CAMARA sub-applications and where they are mounted."""
    mounted = []
    apis = (
        (PAYMENTS_PREFIX, payment_routes, "carrier-billing.yaml"),
        (REFUNDS_PREFIX, refund_routes, "carrier-billing-refund.yaml"),
    )
    for prefix, routes, document in apis:
        app = web.Application(middlewares=[camara_middleware])
        app[SETTINGS] = settings
        app.add_routes(routes)
        app.add_routes([document_route(prefix, document)])
        mounted.append((prefix, app))
    return mounted
