"""A merchant's payouts and their statement lines (product.md §7, §11)."""

from __future__ import annotations

from aiohttp import web

from api.http import json_response
from api.merchant.lists import list_query, page
from api.merchant.table import merchant_of, merchant_routes, owned
from models.payouts import Payout, PayoutLine

__all__: list[str] = []


@merchant_routes.route(
    "GET", "/payouts", summary="List payouts (newest first)", query=list_query(), errors=(400, 401, 404, 422)
)
async def list_payouts(request: web.Request) -> web.Response:
    """This merchant's payouts."""
    query = Payout.filter(merchant_id=merchant_of(request).id)
    return json_response(await page(request.query, query, view=Payout.to_api))


@merchant_routes.route("GET", "/payouts/{id}", summary="Retrieve a payout with its statement")
async def get_payout(request: web.Request) -> web.Response:
    """One payout and every statement line: collected items, late collections, credits, fees."""
    payout = await owned(request, Payout, "payout")
    lines = await PayoutLine.filter(payout_id=payout.id).order_by("id")
    statement = [
        {
            "kind": line.kind,
            "item": line.item_id,  # type: ignore[attr-defined]
            "description": line.description,
            "amount": line.amount,
        }
        for line in lines
    ]
    return json_response({**payout.to_api(), "statement": statement})
