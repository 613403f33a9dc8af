"""The operator console ``/ops`` (サポートセンタ, product.md §10): carrier staff sign in, find a
line, an ID, a charge or a merchant, act on them by role, run the money (billing runs,
collections, payouts) and watch the platform's vital signs.

Handlers only parse, authorise (``access.require``), call the operations in
``models.operations`` with the staff member as the audit log's actor, and render.
"""

from __future__ import annotations

from aiohttp import web

from api.ops_site import auth, billing, collections, find, lines, merchants, payouts, staff, system
from api.ops_site.access import load_operator
from api.site.sessions import Site
from models.operations.site_users import OPS_SITE

__all__ = ["ROUTES", "SITE"]

SITE = Site(
    name=OPS_SITE,
    prefix="/ops",
    load_user=load_operator,
    public_paths=frozenset({"/ops/login"}),
    excluded_prefixes=("/ops/v1",),
)
ROUTES: list[web.RouteTableDef] = [
    auth.routes,
    find.routes,
    lines.routes,
    merchants.routes,
    billing.routes,
    collections.routes,
    payouts.routes,
    system.routes,
    staff.routes,
]
