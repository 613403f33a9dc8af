"""Subscriptions (月額課金): create, retrieve, list, cancel (product.md §3, §11)."""

from __future__ import annotations

from aiohttp import web
from pydantic import BaseModel

from api.http import json_response
from api.keys import SETTINGS
from api.merchant.charges import PurchaseCreate, purchase_of
from api.merchant.lists import list_of, list_query, page
from api.merchant.table import acting_merchant, merchant_of, merchant_routes, owned, with_status
from billing.states import SubscriptionStatus
from models.operations import charges
from models.subscriptions import Subscription

__all__: list[str] = []

STATUSES = frozenset(status.value for status in SubscriptionStatus)


class SubscriptionCreate(PurchaseCreate):
    """A monthly charge the subscriber confirms once; the first month is charged at once."""


class SubscriptionOut(BaseModel):
    """The subscription object."""

    id: str
    object: str
    status: str
    amount: int
    currency: str
    description: str
    merchant_reference: str | None
    metadata: dict[str, str]
    confirmation_url: str | None
    current_period: str | None
    canceled_at: int | None
    created: int


@merchant_routes.route(
    "POST",
    "/subscriptions",
    summary="Create a subscription",
    body=SubscriptionCreate,
    response=SubscriptionOut,
    status=201,
    errors=(400, 401, 409, 422),
    description="An amount above the merchant's own maximum (max_charge_amount) answers 422 amount_too_large.",
)
async def create_subscription(request: web.Request, body: SubscriptionCreate) -> web.Response:
    """A subscription in ``requires_confirmation``; send the subscriber to its ``confirmation_url``."""
    subscription = await charges.create_subscription(
        merchant_of(request), purchase_of(body), base_url=request.app[SETTINGS].base_url
    )
    return json_response(subscription.to_api(), status=201)


@merchant_routes.route("GET", "/subscriptions/{id}", summary="Retrieve a subscription", response=SubscriptionOut)
async def get_subscription(request: web.Request) -> web.Response:
    """One of this merchant's subscriptions."""
    return json_response((await owned(request, Subscription, "subscription")).to_api())


@merchant_routes.route(
    "GET",
    "/subscriptions",
    summary="List subscriptions (newest first; status filter)",
    response=list_of(SubscriptionOut),
    query=list_query(status={"type": "string", "enum": sorted(STATUSES)}),
    errors=(400, 401, 404, 422),
)
async def list_subscriptions(request: web.Request) -> web.Response:
    """This merchant's subscriptions, newest first."""
    query = with_status(request, Subscription.filter(merchant_id=merchant_of(request).id), STATUSES)
    return json_response(await page(request.query, query, view=Subscription.to_api, filters=("status",)))


@merchant_routes.route(
    "POST",
    "/subscriptions/{id}/cancel",
    summary="Cancel a subscription",
    response=SubscriptionOut,
    errors=(400, 401, 404, 409),
)
async def cancel_subscription(request: web.Request) -> web.Response:
    """No further renewals; the current month is neither refunded nor prorated."""
    subscription = await charges.cancel_subscription(
        request.match_info["id"], merchant_id=merchant_of(request).id, reason="merchant", actor=acting_merchant(request)
    )
    return json_response(subscription.to_api())
