"""The merchant site's home page ``/merchant``: this month so far, daily sales and refunds over
the last 60 days, and each closed month's billed → collected → paid out, as SVG charts."""

from __future__ import annotations

from aiohttp import web

from api.merchant_site import figures
from api.merchant_site.access import Permission, require
from api.site.charts import Group, grouped_bars
from api.site.pages import render
from models.clock import clock

__all__ = ["routes"]

routes = web.RouteTableDef()
DAILY_LABEL_EVERY = 7  # a label a week keeps 60 days readable on a phone


@routes.get("/merchant")
async def home(request: web.Request) -> web.StreamResponse:
    """This month so far and the charts; every role may read it."""
    staff = require(request, Permission.READ)
    merchant_id = staff.merchant.id
    now = await clock.now()
    days = await figures.daily_figures(merchant_id, now)
    months = await figures.closed_months(merchant_id)
    daily = grouped_bars(
        [Group(d.day.isoformat(), (d.sales, d.refunded), tick=f"{d.day.month}/{d.day.day}") for d in days],
        ("sales", "refunds"),
        label_every=DAILY_LABEL_EVERY,
    )
    monthly = grouped_bars(
        [Group(m.period, (m.billed, m.collected, m.paid_out or 0)) for m in months], ("billed", "collected", "paid")
    )
    page = {
        "month": await figures.month_so_far(merchant_id, now, days),
        "days": figures.DAYS,
        "daily": daily,
        "monthly": monthly,
        "months": list(reversed(months)),  # the table reads newest first
    }
    return await render(request, "merchant/home.html", page)
