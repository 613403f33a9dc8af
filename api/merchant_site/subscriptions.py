"""``/merchant/subscriptions``: the merchant's subscriptions by status, each with its monthly
charges, and cancelling one (admins: money stops) through the same operation as ``/v1``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.merchant_site.access import Permission, acting, require, staff_of
from api.merchant_site.pager import page_links
from api.paging import keyset_page
from api.site.pages import render, see_other
from billing.errors import Conflict
from billing.states import SubscriptionStatus
from models.charges import Charge
from models.operations import charges
from models.subscriptions import Subscription

__all__ = ["routes"]

routes = web.RouteTableDef()
PAGE_SIZE = 50
CHARGES_SHOWN = 24  # two years of months; older ones are a page further
STATUSES = [status.value for status in SubscriptionStatus]


@routes.get("/merchant/subscriptions")
async def list_subscriptions(request: web.Request) -> web.StreamResponse:
    """The merchant's subscriptions, newest first, optionally of one status."""
    staff = require(request, Permission.READ)
    status = request.query.get("status", "")
    page: dict[str, Any] = {"statuses": STATUSES, "status": status, "subscriptions": [], "errors": {}}
    if status and status not in STATUSES:
        page["errors"] = {"status": "invalid_value"}
        return await render(request, "merchant/subscriptions.html", page, status=400)
    query = Subscription.filter(merchant_id=staff.merchant.id)
    if status:
        query = query.filter(status=status)
    found = await keyset_page(
        query, after=request.query.get("after"), before=request.query.get("before"), limit=PAGE_SIZE
    )
    page.update(subscriptions=found.rows, **page_links(request, found, status=status))
    return await render(request, "merchant/subscriptions.html", page)


async def _subscription_page(
    request: web.Request, subscription: Subscription, *, status: int = 200, **context: object
) -> web.Response:
    found = await keyset_page(
        Charge.filter(merchant_id=subscription.merchant_id, subscription_id=subscription.id),
        after=request.query.get("after"),
        before=request.query.get("before"),
        limit=CHARGES_SHOWN,
    )
    page = {
        "subscription": subscription,
        "cancelable": subscription.status in charges.LIVE_SUBSCRIPTIONS,
        "charges": found.rows,
        "errors": {},
        "canceled": request.query.get("done") == "canceled",
        **page_links(request, found),
        **context,
    }
    return await render(request, "merchant/subscription.html", page, status=status)


async def _owned(request: web.Request) -> Subscription:
    merchant_id = staff_of(request).merchant.id
    return await charges.find_owned(
        Subscription, request.match_info["id"], merchant_id=merchant_id, kind="subscription"
    )


@routes.get("/merchant/subscriptions/{id}")
async def show_subscription(request: web.Request) -> web.StreamResponse:
    """One subscription: its fields and its charges, each linking to its purchase page."""
    require(request, Permission.READ)
    return await _subscription_page(request, await _owned(request))


@routes.get("/merchant/subscriptions/{id}/cancel")
async def confirm_cancel(request: web.Request) -> web.StreamResponse:
    """The confirmation step before cancelling: what stops, and the button that stops it."""
    require(request, Permission.REFUND)
    subscription = await _owned(request)
    if subscription.status not in charges.LIVE_SUBSCRIPTIONS:
        return await _subscription_page(
            request, subscription, status=409, errors={"cancel": "subscription_not_cancelable"}
        )
    return await render(request, "merchant/subscription_cancel.html", {"subscription": subscription})


@routes.post("/merchant/subscriptions/{id}/cancel")
async def cancel_subscription(request: web.Request) -> web.StreamResponse:
    """Cancel: no further renewals; the current month is neither refunded nor prorated."""
    staff = require(request, Permission.REFUND)
    subscription_id = request.match_info["id"]
    try:
        await charges.cancel_subscription(
            subscription_id, merchant_id=staff.merchant.id, reason="merchant", actor=acting(request)
        )
    except Conflict as problem:
        return await _subscription_page(
            request, await _owned(request), status=problem.status, errors={"cancel": problem.code}
        )
    return see_other(f"/merchant/subscriptions/{subscription_id}?done=canceled")
