"""Charges (都度課金): create, retrieve, list, cancel (product.md §3, §11)."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from tortoise.transactions import in_transaction

from api.http import Body, json_response
from api.keys import SETTINGS
from api.merchant.fields import Amount, Description, Metadata, Reference, ReturnUrl
from api.merchant.lists import page
from api.merchant.table import merchant_of, merchant_routes, owned, with_status
from billing.errors import Conflict, InvalidRequest
from models.charges import Charge, ChargeStatus
from models.clock import clock
from models.merchants import Merchant

__all__ = ["CONFIRMATION_WINDOW", "PurchaseCreate", "awaiting_confirmation", "check_amount", "confirmation_token"]

CONFIRMATION_WINDOW = timedelta(minutes=30)
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


def check_amount(merchant: Merchant, amount: int) -> None:
    """The merchant's own per-charge maximum (default 50,000 yen)."""
    if amount > merchant.max_charge_amount:
        raise InvalidRequest(
            f"amount is above this merchant's maximum of {merchant.max_charge_amount} yen.",
            param="amount",
            code="amount_too_large",
        )


def confirmation_token() -> str:
    """The unguessable part of a confirmation URL."""
    return secrets.token_urlsafe(24)


async def awaiting_confirmation(request: web.Request, body: PurchaseCreate) -> dict[str, Any]:
    """The fields of a new charge or subscription waiting for the subscriber's answer."""
    merchant = merchant_of(request)
    check_amount(merchant, body.amount)
    now = await clock.now()
    token = confirmation_token()
    return {
        "merchant": merchant,
        "amount": body.amount,
        "description": body.description,
        "return_url": body.return_url,
        "merchant_reference": body.merchant_reference,
        "metadata": body.metadata or {},
        "confirmation_token": token,
        "confirmation_url": f"{request.app[SETTINGS].base_url}/confirm/{token}",
        "created_at": now,
        "expires_at": now + CONFIRMATION_WINDOW,
    }


@merchant_routes.route(
    "POST",
    "/charges",
    summary="Create a charge",
    body=ChargeCreate,
    response=ChargeOut,
    status=201,
    errors=(400, 401, 409),
)
async def create_charge(request: web.Request, body: ChargeCreate) -> web.Response:
    """A charge in ``requires_confirmation``; send the subscriber to its ``confirmation_url``."""
    charge = await Charge.create(**await awaiting_confirmation(request, body))
    return json_response(charge.to_api(), status=201)


@merchant_routes.route("GET", "/charges/{id}", summary="Retrieve a charge", response=ChargeOut)
async def get_charge(request: web.Request) -> web.Response:
    """One of this merchant's charges."""
    return json_response((await owned(request, Charge, "charge")).to_api())


@merchant_routes.route("GET", "/charges", summary="List charges (newest first; status, created[...] filters)")
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
    async with in_transaction():
        charge = await owned(request, Charge, "charge", lock=True)
        if charge.status != ChargeStatus.REQUIRES_CONFIRMATION:
            raise Conflict(f"A {charge.status.value} charge cannot be canceled.", code="charge_not_cancelable")
        await charge.cancel(now=await clock.now())
    return json_response(charge.to_api())
