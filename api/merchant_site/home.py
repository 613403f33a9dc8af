"""The merchant site's home page ``/merchant``."""

from __future__ import annotations

from aiohttp import web

from api.merchant_site.access import Permission, require
from api.site.pages import render

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/merchant")
async def home(request: web.Request) -> web.StreamResponse:
    """This month so far and the charts."""
    require(request, Permission.READ)
    return await render(request, "merchant/home.html", {})
