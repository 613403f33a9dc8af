"""``/ops``: one search box for a line id, a login id, a charge id, a merchant id or name."""

from __future__ import annotations

from aiohttp import web

from api.ops_site.access import StaffPermission, require
from api.site.pages import render

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/ops")
async def home(request: web.Request) -> web.StreamResponse:
    """The search box (results come with the find issue's work)."""
    require(request, StaffPermission.READ)
    return await render(request, "ops/find.html", {"q": request.query.get("q", "").strip()})
