"""``/ops/billing``: the month closes (billing runs) with their progress, and the form that starts
the close of an ended month (the operation of ``POST /ops/v1/billing/close``); one run's page
reloads itself every two seconds while the run is running and lists its failed batches."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.ops_site.access import StaffPermission, acting, reason_of, require
from api.site.pages import render, see_other
from billing.errors import Conflict, InvalidRequest, NotFound
from billing.periods import period_of, previous_period, valid_period
from billing.states import RunStatus
from models.base import fits_id_column
from models.clock import clock
from models.invoices import BillingBatch, BillingRun
from models.operations.closing import recent_runs, start_close

__all__ = ["period_of_form", "routes"]

routes = web.RouteTableDef()
RUNS_SHOWN = 50
FAILED_BATCHES_SHOWN = 100
REFRESH_SECONDS = 2


def period_of_form(period: str) -> str:
    """``period`` when it is a month as YYYY-MM; ``InvalidRequest`` (``period_invalid``) otherwise."""
    if not valid_period(period):
        raise InvalidRequest("period must be YYYY-MM.", param="period", code="period_invalid")
    return period


async def _billing_page(request: web.Request, *, status: int = 200, **context: object) -> web.Response:
    last_month = previous_period(period_of(await clock.now()))
    page: dict[str, Any] = {
        "runs": await recent_runs(RUNS_SHOWN),
        "form": {"period": last_month},
        "errors": {},
        **context,
    }
    return await render(request, "ops/billing.html", page, status=status)


@routes.get("/ops/billing")
async def list_runs(request: web.Request) -> web.StreamResponse:
    """The latest billing runs, newest first, and (for billing staff) the close form."""
    require(request, StaffPermission.READ)
    return await _billing_page(request)


@routes.post("/ops/billing/close")
async def close_month(request: web.Request) -> web.StreamResponse:
    """Start the close of an ended month; a period not ended, malformed, running or closed is named."""
    require(request, StaffPermission.MONEY)
    form = await request.post()
    period = str(form.get("period", "")).strip()
    try:
        run = await start_close(period_of_form(period), actor=acting(request), reason=reason_of(form), once=True)
    except (InvalidRequest, Conflict) as problem:
        errors = {problem.param or "period": problem.code}
        return await _billing_page(request, status=problem.status, form={"period": period[:7]}, errors=errors)
    return see_other(f"/ops/billing/runs/{run.id}")


@routes.get("/ops/billing/runs/{id:[A-Za-z0-9_]+}")
async def show_run(request: web.Request) -> web.StreamResponse:
    """One run: batches done of total, lines, invoices, total billed; its failed batches."""
    require(request, StaffPermission.READ)
    run_id = request.match_info["id"]
    run = await BillingRun.get_or_none(id=run_id) if fits_id_column(run_id) else None
    if run is None:
        raise NotFound("No such billing run.", param="id")
    failed = (
        await BillingBatch.filter(run_id=run.id, failed_at__not_isnull=True)
        .order_by("first_line_id")
        .limit(FAILED_BATCHES_SHOWN)
    )
    running = run.status == RunStatus.RUNNING
    page = {"run": run, "failed": failed, "refresh": REFRESH_SECONDS if running else None}
    return await render(request, "ops/billing_run.html", page)
