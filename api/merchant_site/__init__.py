"""The merchant data management site ``/merchant`` (データ管理サイト, product.md §10).

Merchant staff sign in and see their own purchases, subscriptions, payouts, webhooks, API keys
and users. Every action calls the shared operations in ``models.operations``; every query is
scoped to the signed-in user's merchant; roles are enforced by ``access.require``.
Each module holds one part of the site and its routes; ``ROUTES`` collects them.
"""

from __future__ import annotations

from aiohttp import web

from api.merchant_site import api_keys, auth, home, payouts, purchases, subscriptions, users, webhooks
from api.merchant_site.access import load_staff
from api.site.sessions import Site
from models.operations.site_users import MERCHANT_SITE

__all__ = ["ROUTES", "SITE"]

SITE = Site(
    name=MERCHANT_SITE,
    prefix="/merchant",
    load_user=load_staff,
    public_paths=frozenset({"/merchant/login", "/merchant/login/otp"}),
    extra_checks=(auth.totp_enrolment_detour,),
)
ROUTES: list[web.RouteTableDef] = [
    auth.routes,
    home.routes,
    purchases.routes,
    payouts.routes,
    users.routes,
    subscriptions.routes,
    webhooks.routes,
    api_keys.routes,
]
