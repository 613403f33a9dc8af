"""Charges (都度課金): create, retrieve, list, cancel (product.md §3, §11)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from api.http import Body, json_response
from api.keys import SETTINGS
from api.merchant.fields import Amount, Description, Metadata, Reference, ReturnUrl
from api.merchant.lists import list_of, list_query, page
from api.merchant.table import acting_merchant, merchant_of, merchant_routes, owned, with_status
from billing.states import ChargeStatus
from models.charges import Charge
from models.operations import charges
from models.operations.charges import PurchaseRequest

__all__ = ["PurchaseCreate", "purchase_of"]

STATUSES = frozenset(status.value for status in ChargeStatus)


class PurchaseCreate(Body):
    """What a charge and a subscription are created with."""

    amount: Amount
    description: Description
    return_url: ReturnUrl
    merchant_reference: Reference | None = None
    metadata: Metadata | None = None


class ChargeCreate(PurchaseCreate):
    """A one-off purchase to be confirmed by the subscriber."""


class ChargeOut(BaseModel):
    """The charge object."""

    id: str
    object: str
    status: str
    amount: int
    currency: str
    description: str
    merchant_reference: str | None
    metadata: dict[str, str]
    return_url: str | None
    confirmation_url: str | None
    failure_code: str | None
    billing_status: str | None
    subscription: str | None
    refunded_amount: int
    payout_id: str | None
    created: int


def purchase_of(body: PurchaseCreate) -> PurchaseRequest:
    """The operation's request from the API body."""
    return PurchaseRequest(
        amount=body.amount,
        description=body.description,
        return_url=body.return_url,
        merchant_reference=body.merchant_reference,
        metadata=body.metadata or {},
    )


@merchant_routes.route(
    "POST",
    "/charges",
    summary="Create a charge",
    body=ChargeCreate,
    response=ChargeOut,
    status=201,
    errors=(400, 401, 409, 422),
    description="An amount above the merchant's own maximum (max_charge_amount) answers 422 amount_too_large.",
)
async def create_charge(request: web.Request, body: ChargeCreate) -> web.Response:
    """A charge in ``requires_confirmation``; send the subscriber to its ``confirmation_url``."""
    charge = await charges.create_charge(
        merchant_of(request), purchase_of(body), base_url=request.app[SETTINGS].base_url
    )
    return json_response(charge.to_api(), status=201)


@merchant_routes.route("GET", "/charges/{id}", summary="Retrieve a charge", response=ChargeOut)
async def get_charge(request: web.Request) -> web.Response:
    """One of this merchant's charges."""
    return json_response((await owned(request, Charge, "charge")).to_api())


@merchant_routes.route(
    "GET",
    "/charges",
    summary="List charges (newest first; status, created[...] filters)",
    response=list_of(ChargeOut),
    query=list_query(status={"type": "string", "enum": sorted(STATUSES)}),
    errors=(400, 401, 404, 422),
)
async def list_charges(request: web.Request) -> web.Response:
    """This merchant's charges, newest first."""
    query = with_status(request, Charge.filter(merchant_id=merchant_of(request).id), STATUSES)
    return json_response(await page(request.query, query, view=Charge.to_api, filters=("status",)))


@merchant_routes.route(
    "POST",
    "/charges/{id}/cancel",
    summary="Cancel an unconfirmed charge",
    response=ChargeOut,
    errors=(400, 401, 404, 409),
)
async def cancel_charge(request: web.Request) -> web.Response:
    """Only a charge still waiting for the subscriber can be canceled."""
    charge = await charges.cancel_charge(
        merchant_of(request).id, request.match_info["id"], actor=acting_merchant(request)
    )
    return json_response(charge.to_api())
