"""``/ops/payouts?period=YYYY-MM``: a period's merchant payouts with their figures (product.md §7,
§11); billing staff generate them (``request_payouts``), record a transfer as paid
(``mark_paid``), each with a reason for the audit log, and download the period's Zengin 総合振込
file (the bytes of ``GET /ops/v1/payouts/files/{period}``)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from tortoise.functions import Count, Sum

from api.keys import SETTINGS
from api.merchant_site.pager import page_links
from api.ops_site.access import StaffPermission, acting, reason_of, require
from api.ops_site.billing import period_of_form
from api.paging import keyset_page
from api.site.pages import render, see_other
from billing.errors import Conflict, InvalidRequest
from billing.periods import period_of, previous_period, valid_period
from billing.states import RunStatus
from models.clock import clock
from models.invoices import BillingRun
from models.merchants import Merchant
from models.operations import payouts as payout_ops
from models.payouts import Payout

__all__ = ["routes"]

routes = web.RouteTableDef()
PAGE_SIZE = 100
PERIODS_SHOWN = 12
DONE = frozenset({"generated", "paid"})


async def _default_period() -> str:
    """The latest period with payouts, else the latest closed one, else last month."""
    latest = await Payout.all().order_by("-period").first().values_list("period", flat=True)
    if latest:
        return str(latest)
    closed = (
        await BillingRun.filter(status=RunStatus.SUCCEEDED).order_by("-period").first().values_list("period", flat=True)
    )
    return str(closed) if closed else previous_period(period_of(await clock.now()))


async def _periods() -> list[str]:
    """The latest closed periods, newest first, to pick from."""
    closed = await BillingRun.filter(status=RunStatus.SUCCEEDED).order_by("-period").values_list("period", flat=True)
    return list(dict.fromkeys(str(period) for period in closed))[:PERIODS_SHOWN]


async def _payouts_page(request: web.Request, period: str, *, status: int = 200, **context: object) -> web.Response:
    page: dict[str, Any] = {
        "period": period,
        "periods": await _periods(),
        "payouts": [],
        "names": {},
        "totals": None,
        "closed": False,
        "previous_url": None,
        "next_url": None,
        "errors": {},
        "done": "",
        **context,
    }
    if valid_period(period):
        query = Payout.filter(period=period)
        found = await keyset_page(
            query, after=request.query.get("after"), before=request.query.get("before"), limit=PAGE_SIZE
        )
        merchant_ids = {payout.merchant_id for payout in found.rows}
        names = dict(await Merchant.filter(id__in=merchant_ids).values_list("id", "name")) if merchant_ids else {}
        totals = await query.annotate(count=Count("id"), net=Sum("net"), billed=Sum("billed")).values(
            "count", "net", "billed"
        )
        page.update(
            payouts=found.rows,
            names=names,
            totals=totals[0] if totals and totals[0]["count"] else None,
            closed=await BillingRun.exists(period=period, status=RunStatus.SUCCEEDED),
            **page_links(request, found, period=period),
        )
    return await render(request, "ops/payouts.html", page, status=status)


@routes.get("/ops/payouts")
async def list_payouts(request: web.Request) -> web.StreamResponse:
    """The payouts of ``period`` (the latest with payouts when none is given)."""
    require(request, StaffPermission.READ)
    period = request.query.get("period", "").strip() or await _default_period()
    done = request.query.get("done", "")
    if not valid_period(period):
        return await _payouts_page(request, period[:7], status=400, errors={"period": "period_invalid"})
    return await _payouts_page(request, period, done=done if done in DONE else "")


@routes.post("/ops/payouts/generate")
async def generate(request: web.Request) -> web.StreamResponse:
    """Ask for a closed period's payouts (the payouts worker makes them); asking again adds nothing."""
    require(request, StaffPermission.MONEY)
    form = await request.post()
    period = str(form.get("period", "")).strip()
    try:
        await payout_ops.request_payouts(period_of_form(period), actor=acting(request), reason=reason_of(form))
    except (InvalidRequest, Conflict) as problem:
        errors = {"generate": problem.code}
        return await _payouts_page(request, period[:7], status=problem.status, errors=errors)
    return see_other(f"/ops/payouts?period={period}&done=generated")


@routes.post("/ops/payouts/{id:[A-Za-z0-9_]+}/paid")
async def mark_paid(request: web.Request) -> web.StreamResponse:
    """Record that a payout's transfer went out (``payout.paid`` tells the merchant)."""
    require(request, StaffPermission.MONEY)
    payout_id = request.match_info["id"]
    form = await request.post()
    shown = str(form.get("period", "")).strip()
    try:
        payout = await payout_ops.mark_paid(payout_id, actor=acting(request), reason=reason_of(form))
    except (InvalidRequest, Conflict) as problem:
        period = shown if valid_period(shown) else await _default_period()
        errors = {f"payout-{payout_id}": problem.code}
        return await _payouts_page(request, period, status=problem.status, errors=errors)
    return see_other(f"/ops/payouts?period={payout.period}&done=paid")


@routes.get("/ops/payouts/files/{period}")
async def transfer_file(request: web.Request) -> web.StreamResponse:
    """The period's Zengin 総合振込 file, as an attachment (the ops API's bytes)."""
    require(request, StaffPermission.MONEY)
    period = request.match_info["period"]
    if not valid_period(period):
        return await _payouts_page(request, period[:7], status=400, errors={"period": "period_invalid"})
    try:
        data = await payout_ops.transfer_file_for(period, request.app[SETTINGS].zengin_payer)
    except (InvalidRequest, Conflict) as problem:
        return await _payouts_page(request, period, status=problem.status, errors={"file": problem.code})
    return web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="sogofurikomi-{period}.txt"'},
    )
