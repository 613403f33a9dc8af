"""Refunds: full or partial, at most what is not yet refunded (product.md §3)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, Field

from api.http import Body, json_response
from api.merchant.fields import Amount
from api.merchant.lists import list_of, list_query, page
from api.merchant.table import acting_merchant, merchant_of, merchant_routes
from api.routes import ID_SHAPE
from billing.errors import InvalidRequest
from models.charges import Refund
from models.operations import charges
from models.operations.charges import not_found

__all__ = ["refund_view"]


class RefundCreate(Body):
    """Give back all (no amount) or part of a succeeded charge."""

    charge: Annotated[str, Field(pattern=r"^[A-Za-z0-9_]{1,64}$", description="The charge's id")]
    amount: Amount | None = None
    reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None


class RefundOut(BaseModel):
    """The refund object."""

    id: str
    object: str
    charge: str
    amount: int
    reason: str | None
    status: str
    created: int


def refund_view(refund: Refund) -> dict[str, Any]:
    """The refund object of the merchant API."""
    return refund.to_api()


@merchant_routes.route(
    "POST",
    "/refunds",
    summary="Refund a charge",
    body=RefundCreate,
    response=RefundOut,
    status=201,
    errors=(400, 401, 404, 409),
)
async def create_refund(request: web.Request, body: RefundCreate) -> web.Response:
    """A refund of an unbilled charge lowers what is billed; of a billed one, it becomes a credit
    on the line's next invoice and an adjustment on the merchant's next payout."""
    refund = await charges.refund_charge(
        merchant_of(request).id, body.charge, amount=body.amount, reason=body.reason, actor=acting_merchant(request)
    )
    return json_response(refund_view(refund), status=201)


@merchant_routes.route("GET", "/refunds/{id}", summary="Retrieve a refund", response=RefundOut)
async def get_refund(request: web.Request) -> web.Response:
    """One of this merchant's refunds."""
    refund_id = request.match_info["id"]
    refund = await Refund.get_or_none(id=refund_id, charge__merchant_id=merchant_of(request).id)
    if refund is None:
        raise not_found("refund", refund_id)
    return json_response(refund_view(refund))


@merchant_routes.route(
    "GET",
    "/refunds",
    summary="List refunds (newest first; charge filter)",
    response=list_of(RefundOut),
    query=list_query(charge={"type": "string", "pattern": f"^{ID_SHAPE}$"}),
    errors=(400, 401, 404, 422),
)
async def list_refunds(request: web.Request) -> web.Response:
    """This merchant's refunds, newest first."""
    query: Any = Refund.filter(charge__merchant_id=merchant_of(request).id)
    if "charge" in request.query:
        if not re.fullmatch(ID_SHAPE, request.query["charge"]):
            raise InvalidRequest("charge must be a charge's id.", param="charge")
        query = query.filter(charge_id=request.query["charge"])
    return json_response(await page(request.query, query, view=refund_view, filters=("charge",)))
