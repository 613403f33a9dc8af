"""The my page's own pages: this month by merchant against the ID's limit, a past month with the
ID's items on its line's bill, and the ID's subscriptions with a confirmed cancel."""

from __future__ import annotations

from aiohttp import web

from api.my_site.access import account_of, acting
from api.site.pages import render, see_other
from billing.periods import period_of, previous_period, valid_period
from models.clock import clock
from models.lines import Line
from models.operations import subscribers
from models.operations.charges import cancel_subscription

__all__ = ["routes"]

routes = web.RouteTableDef()
MONTHS_LISTED = 12


def _recent_periods(current: str) -> list[str]:
    """The months before ``current``, newest first: the history page's links."""
    periods = [previous_period(current)]
    while len(periods) < MONTHS_LISTED:
        periods.append(previous_period(periods[-1]))
    return periods


@routes.get("/my")
async def home(request: web.Request) -> web.StreamResponse:
    """This month so far: the ID's charges by merchant, its limit and what is left of it."""
    account = account_of(request)
    period = period_of(await clock.now())
    month = await subscribers.my_month(account, period)
    line = await Line.get(line_id=account.line_id)
    return await render(
        request,
        "my/home.html",
        {
            "month": month,
            "account": account,
            "left": max(0, account.monthly_limit - month.spent),
            "line_limit": line.monthly_limit,
            "periods": _recent_periods(period),
        },
    )


@routes.get("/my/history")
async def history(request: web.Request) -> web.StreamResponse:
    """A past month: the ID's charges by merchant and, once the month is closed, the ID's own items
    on its line's bill. A malformed or future month is named (400)."""
    account = account_of(request)
    current = period_of(await clock.now())
    period = request.query.get("period", "").strip() or previous_period(current)
    context = {"period": period, "periods": _recent_periods(current), "month": None, "bill": None}
    if not valid_period(period):
        return await render(request, "my/history.html", {**context, "error": "invalid_period"}, status=400)
    if period > current:
        return await render(request, "my/history.html", {**context, "error": "period_in_future"}, status=400)
    month = await subscribers.my_month(account, period)
    bill = await subscribers.my_bill(account, period)
    return await render(request, "my/history.html", {**context, "error": None, "month": month, "bill": bill})


@routes.get("/my/subscriptions")
async def subscriptions(request: web.Request) -> web.StreamResponse:
    """The ID's subscriptions still renewing, each with a cancel button."""
    account = account_of(request)
    return await render(
        request,
        "my/subscriptions.html",
        {"subscriptions": await subscribers.my_subscriptions(account), "canceled": request.query.get("canceled")},
    )


@routes.get("/my/subscriptions/{id}/cancel")
async def cancel_confirmation(request: web.Request) -> web.StreamResponse:
    """The confirmation step: what stops, and that this month is not refunded."""
    subscription = await subscribers.find_my_subscription(account_of(request), request.match_info["id"])
    return await render(request, "my/cancel.html", {"subscription": subscription})


@routes.post("/my/subscriptions/{id}/cancel")
async def cancel(request: web.Request) -> web.StreamResponse:
    """Cancel one of the ID's own subscriptions (the merchant gets ``subscription.canceled``);
    another ID's answers 404 and nothing changes."""
    account = account_of(request)
    subscription = await cancel_subscription(
        request.match_info["id"], merchant_id=None, account_id=account.id, reason="subscriber", actor=acting(request)
    )
    return see_other(f"/my/subscriptions?canceled={subscription.id}")
