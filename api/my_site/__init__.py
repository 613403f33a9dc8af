"""The subscriber's my page ``/my`` (product.md §10).

A subscriber signs in with their carrier ID under a purchase's own rules (the same lock, and
only from the ID's own line), then sees what the ID bought this month and before, by merchant
and against its limit, its line bill's items that are its own, its subscriptions (with a cancel
step) and its password. Every query is scoped to the signed-in ID; every action calls the
shared operations in ``models.operations``.
"""

from __future__ import annotations

from aiohttp import web

from api.my_site import auth, pages
from api.site.sessions import Site
from models.operations.site_users import MY_SITE
from models.operations.subscribers import load_subscriber

__all__ = ["ROUTES", "SITE"]

SITE = Site(name=MY_SITE, prefix="/my", load_user=load_subscriber, public_paths=frozenset({"/my/login"}))
ROUTES: list[web.RouteTableDef] = [auth.routes, pages.routes]
