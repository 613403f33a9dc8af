"""``/demo/return``: a stand-in merchant return page for ``matomete up``, so a newcomer can
walk a whole purchase in a browser. It checks the signature exactly as a merchant would."""

from __future__ import annotations

from aiohttp import web

from api.site.pages import render
from billing.signing import verify_return
from models.charges import Charge
from models.merchants import Merchant
from models.subscriptions import Subscription

__all__ = ["routes"]

routes = web.RouteTableDef()


@routes.get("/demo/return")
async def demo_return(request: web.Request) -> web.Response:
    """Show the status the platform sent back, and whether its signature verifies."""
    query = request.query
    object_id = query.get("charge") or query.get("subscription") or ""
    target = await Charge.get_or_none(id=object_id) or await Subscription.get_or_none(id=object_id)
    merchant = await Merchant.get_or_none(id=target.merchant_id) if target else None
    params = {k: query[k] for k in ("charge", "subscription", "status", "signature") if k in query}
    verified = merchant is not None and verify_return(params, merchant.return_signing_secret)
    return await render(
        request, "demo_return.html", {"object_id": object_id, "status": query.get("status", ""), "verified": verified}
    )
