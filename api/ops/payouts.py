"""Merchant payouts as finance runs them (product.md §7, §11)."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import Field

from api.http import Body, json_response
from api.keys import SETTINGS
from api.merchant.lists import list_query, page
from api.ops.table import operator, ops_routes
from api.routes import PERIOD_PATTERN
from billing.errors import InvalidRequest
from billing.periods import valid_period
from models.operations import payouts
from models.payouts import Payout

__all__: list[str] = []


class GenerateRequest(Body):
    """The closed period to pay out."""

    period: Annotated[str, Field(pattern=f"^{PERIOD_PATTERN}$", examples=["2026-11"])]


@ops_routes.route(
    "POST",
    "/payouts/generate",
    summary="Generate a period's payouts",
    body=GenerateRequest,
    status=202,
    errors=(400, 401, 409),
)
async def generate(request: web.Request, body: GenerateRequest) -> web.Response:
    """Queue one payout per merchant for a closed period; generating again adds nothing."""
    await payouts.request_payouts(body.period, actor=operator(request))
    return json_response({"period": body.period, "status": "queued"}, status=202)


@ops_routes.route(
    "GET",
    "/payouts",
    summary="List payouts (period filter)",
    query=list_query(period={"type": "string", "pattern": f"^{PERIOD_PATTERN}$"}),
    errors=(400, 401, 404, 422),
)
async def list_payouts(request: web.Request) -> web.Response:
    """Payouts, newest first."""
    query: Any = Payout.all()
    if "period" in request.query:
        if not valid_period(request.query["period"]):
            raise InvalidRequest("period must be YYYY-MM.", param="period")
        query = query.filter(period=request.query["period"])
    return json_response(await page(request.query, query, view=Payout.to_api, filters=("period",)))


@ops_routes.route("POST", "/payouts/{id}/paid", summary="Record a payout as transferred", errors=(400, 401, 404, 409))
async def mark_paid(request: web.Request) -> web.Response:
    """Finance confirms the transfer went out; ``payout.paid`` tells the merchant."""
    payout = await payouts.mark_paid(request.match_info["id"], actor=operator(request))
    return json_response(payout.to_api())


@ops_routes.route(
    "GET",
    "/payouts/files/{period}",
    summary="The Zengin 総合振込 file of a period's payouts",
    errors=(400, 401, 404, 409),
    media_type="application/octet-stream",
)
async def transfer_file(request: web.Request) -> web.Response:
    """120-byte records in the bank's character set: header, one record per payee, trailer, end."""
    period = request.match_info["period"]
    data = await payouts.transfer_file_for(period, request.app[SETTINGS].zengin_payer)
    return web.Response(
        body=data,
        content_type="application/octet-stream",
        headers={"Content-Disposition": f'attachment; filename="sogofurikomi-{period}.txt"'},
    )
