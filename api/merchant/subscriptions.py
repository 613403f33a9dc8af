"""Subscriptions (月額課金): create, retrieve, list, cancel (product.md §3, §11)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import BaseModel
from tortoise.transactions import in_transaction

from api.http import Body, json_response
from api.keys import SETTINGS
from api.merchant.charges import CONFIRMATION_WINDOW, check_amount, confirmation_token
from api.merchant.fields import Amount, Description, Metadata, Reference, ReturnUrl
from api.merchant.lists import page
from api.merchant.table import merchant_of, merchant_routes, not_found
from billing.errors import Conflict, InvalidRequest
from models.clock import clock
from models.events import Event
from models.subscriptions import Subscription, SubscriptionStatus

__all__: list[str] = []

STATUSES = frozenset(status.value for status in SubscriptionStatus)
CANCELABLE = (SubscriptionStatus.REQUIRES_CONFIRMATION, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


class SubscriptionCreate(Body):
    """A monthly charge the subscriber confirms once; the first month is charged at once."""

    amount: Amount
    description: Description
    return_url: ReturnUrl
    merchant_reference: Reference | None = None
    metadata: Metadata | None = None


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


async def _subscription(request: web.Request, *, lock: bool = False) -> Subscription:
    subscription_id = request.match_info["id"]
    query = Subscription.select_for_update() if lock else Subscription
    subscription = await query.get_or_none(id=subscription_id, merchant_id=merchant_of(request).id)
    if subscription is None:
        raise not_found("subscription", subscription_id)
    return subscription


@merchant_routes.route(
    "POST",
    "/subscriptions",
    summary="Create a subscription",
    body=SubscriptionCreate,
    response=SubscriptionOut,
    status=201,
    errors=(400, 401, 409),
)
async def create_subscription(request: web.Request, body: SubscriptionCreate) -> web.Response:
    """A subscription in ``requires_confirmation``; send the subscriber to its ``confirmation_url``."""
    merchant = merchant_of(request)
    check_amount(merchant, body.amount)
    now = await clock.now()
    token = confirmation_token()
    async with in_transaction():
        subscription = await Subscription.create(
            merchant=merchant,
            amount=body.amount,
            description=body.description,
            return_url=body.return_url,
            merchant_reference=body.merchant_reference,
            metadata=body.metadata or {},
            confirmation_token=token,
            confirmation_url=f"{request.app[SETTINGS].base_url}/confirm/{token}",
            created_at=now,
            expires_at=now + CONFIRMATION_WINDOW,
        )
    return json_response(subscription.to_api(), status=201)


@merchant_routes.route("GET", "/subscriptions/{id}", summary="Retrieve a subscription", response=SubscriptionOut)
async def get_subscription(request: web.Request) -> web.Response:
    """One of this merchant's subscriptions."""
    return json_response((await _subscription(request)).to_api())


@merchant_routes.route("GET", "/subscriptions", summary="List subscriptions (newest first; status filter)")
async def list_subscriptions(request: web.Request) -> web.Response:
    """This merchant's subscriptions, newest first."""
    query: Any = Subscription.filter(merchant_id=merchant_of(request).id)
    status = request.query.get("status")
    if status is not None:
        if status not in STATUSES:
            raise InvalidRequest(f"status must be one of {', '.join(sorted(STATUSES))}.", param="status")
        query = query.filter(status=status)
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
    async with in_transaction():
        subscription = await _subscription(request, lock=True)
        if subscription.status not in CANCELABLE:
            raise Conflict(
                f"A {subscription.status.value} subscription cannot be canceled.", code="subscription_not_cancelable"
            )
        subscription.status = SubscriptionStatus.CANCELED
        subscription.canceled_at = await clock.now()
        subscription.cancel_reason = "merchant"
        await subscription.save(update_fields=["status", "canceled_at", "cancel_reason"])
        await Event.record("subscription.canceled", merchant_id=subscription.merchant_id, obj=subscription.to_api())
    return json_response(subscription.to_api())
