"""Charges (都度課金) and subscriptions (月額課金) as merchants, subscribers and staff change
them: create, cancel, refund (product.md §3).

Every status change goes through the state machine (``Charge.move_to``,
``Subscription.move_to``) and writes its event in the same transaction. Lookups are by the
owner's id: another merchant's object answers exactly like a missing one.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, TypeVar

from tortoise.models import Model
from tortoise.transactions import in_transaction

from billing.errors import Conflict, InvalidRequest, NotFound, Unprocessable
from billing.states import ChargeStatus, SubscriptionStatus
from models.audit_log import Actor, audit
from models.base import fits_id_column
from models.charges import Charge, FailureCode, Refund
from models.clock import clock
from models.events import Event
from models.merchants import Merchant
from models.statements import insert
from models.subscriptions import Subscription

__all__ = [
    "CONFIRMATION_WINDOW",
    "LIVE_SUBSCRIPTIONS",
    "PurchaseRequest",
    "awaiting_confirmation",
    "cancel_charge",
    "cancel_subscription",
    "create_charge",
    "create_subscription",
    "end_charge",
    "end_subscription",
    "find_owned",
    "refund_charge",
]

CONFIRMATION_WINDOW = timedelta(minutes=30)
LIVE_SUBSCRIPTIONS = (SubscriptionStatus.REQUIRES_CONFIRMATION, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)
M = TypeVar("M", bound=Model)


@dataclass(frozen=True, kw_only=True)
class PurchaseRequest:
    """What a merchant asks the subscriber to confirm: a charge, or a subscription's monthly amount."""

    amount: int
    description: str
    return_url: str | None
    merchant_reference: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


def not_found(kind: str, object_id: str, param: str = "id") -> NotFound:
    """Another merchant's object answers exactly like a missing one."""
    return NotFound(f"No such {kind}: {object_id}.", param=param)


async def find_owned(  # noqa: PLR0913 - the owner, the kind for the message, and the lookup, keyword-only
    model: type[M], object_id: str, *, merchant_id: str, kind: str, lock: bool = False, param: str = "id", **also: Any
) -> M:
    """``model`` ``object_id`` if it is ``merchant_id``'s (and matches ``also``); else ``NotFound``."""
    query: Any = model.select_for_update() if lock else model
    found: M | None = (
        await query.get_or_none(id=object_id, merchant_id=merchant_id, **also) if fits_id_column(object_id) else None
    )
    if found is None:
        raise not_found(kind, object_id, param)
    return found


async def awaiting_confirmation(merchant: Merchant, purchase: PurchaseRequest, *, base_url: str) -> dict[str, Any]:
    """The fields of a new charge or subscription waiting for the subscriber's answer."""
    if purchase.amount > merchant.max_charge_amount:
        raise Unprocessable(  # a well-formed amount, above the merchant's own contract
            f"amount is above this merchant's maximum of {merchant.max_charge_amount} yen.",
            param="amount",
            code="amount_too_large",
        )
    now = await clock.now()
    token = secrets.token_urlsafe(24)
    return {
        "merchant_id": merchant.id,
        "amount": purchase.amount,
        "description": purchase.description,
        "return_url": purchase.return_url,
        "merchant_reference": purchase.merchant_reference,
        "metadata": purchase.metadata,
        "confirmation_token": token,
        "confirmation_url": f"{base_url}/confirm/{token}",
        "created_at": now,
        "expires_at": now + CONFIRMATION_WINDOW,
    }


async def create_charge(merchant: Merchant, purchase: PurchaseRequest, *, base_url: str) -> Charge:
    """A charge in ``requires_confirmation``; the subscriber confirms it at its ``confirmation_url``."""
    return await insert(Charge, **await awaiting_confirmation(merchant, purchase, base_url=base_url))


async def create_subscription(merchant: Merchant, purchase: PurchaseRequest, *, base_url: str) -> Subscription:
    """A subscription in ``requires_confirmation``; the first month is charged once confirmed."""
    return await insert(Subscription, **await awaiting_confirmation(merchant, purchase, base_url=base_url))


async def end_charge(charge: Charge, target: ChargeStatus, *, now: datetime, code: FailureCode | None = None) -> None:
    """A charge that will not be bought: ``canceled`` (merchant, subscriber, its subscription
    ended first) or ``failed`` (``expired``), with its event; the row is locked by the caller,
    inside the transaction of the change."""
    charge.move_to(target, failure_code=code)
    charge.decided_at = now
    await charge.save(update_fields=["status", "failure_code", "decided_at"])
    event = "charge.canceled" if target == ChargeStatus.CANCELED else "charge.failed"
    await Event.record(event, merchant_id=charge.merchant_id, obj=charge.to_api())


async def cancel_charge(merchant_id: str, charge_id: str, *, actor: Actor) -> Charge:
    """Only a charge still waiting for the subscriber can be canceled."""
    async with in_transaction():
        charge = await find_owned(Charge, charge_id, merchant_id=merchant_id, kind="charge", lock=True)
        if charge.status != ChargeStatus.REQUIRES_CONFIRMATION:
            raise Conflict(f"A {charge.status.value} charge cannot be canceled.", code="charge_not_cancelable")
        await end_charge(charge, ChargeStatus.CANCELED, now=await clock.now())
        await audit(actor, "charge.cancel", "charge", charge.id)
    return charge


async def refund_charge(
    merchant_id: str, charge_id: str, *, amount: int | None, reason: str | None, actor: Actor
) -> Refund:
    """Give back all (no amount) or part of a succeeded charge, at most what is not yet refunded.
    Before billing it lowers the bill; after, it is a credit on the line's next invoice and an
    adjustment on the merchant's next payout (the close and the payouts read it)."""
    async with in_transaction():
        charge = await find_owned(Charge, charge_id, merchant_id=merchant_id, kind="charge", lock=True, param="charge")
        if charge.status != ChargeStatus.SUCCEEDED:
            raise Conflict(
                f"A {charge.status.value} charge has nothing to refund.", param="charge", code="charge_not_refundable"
            )
        remaining = charge.amount - charge.refunded_amount
        if remaining == 0:
            raise Conflict("This charge is refunded in full already.", param="charge", code="charge_already_refunded")
        given = remaining if amount is None else amount
        if given > remaining:
            raise InvalidRequest(
                f"amount is above the {remaining} yen not yet refunded.", param="amount", code="amount_too_large"
            )
        now = await clock.now()
        refund = await Refund.create(charge=charge, amount=given, reason=reason, created_at=now)
        charge.refunded_amount += given
        await charge.save(update_fields=["refunded_amount"])
        await Event.record("charge.refunded", merchant_id=charge.merchant_id, obj=charge.to_api())
        await audit(actor, "charge.refund", "charge", charge.id, refund=refund.id, amount=given, reason=reason)
    return refund


async def end_subscription(subscription: Subscription, *, now: datetime, reason: str) -> None:
    """Stop further renewals (the current month is not refunded) and tell the merchant; the row
    is locked by the caller, inside the transaction of the change."""
    subscription.move_to(SubscriptionStatus.CANCELED)
    subscription.canceled_at = now
    subscription.cancel_reason = reason
    await subscription.save(update_fields=["status", "canceled_at", "cancel_reason"])
    await Event.record("subscription.canceled", merchant_id=subscription.merchant_id, obj=subscription.to_api())


async def cancel_subscription(  # noqa: PLR0913 - the owner scopes and the reasons, keyword-only
    subscription_id: str,
    *,
    merchant_id: str | None,
    reason: str,
    actor: Actor,
    account_id: str | None = None,
    note: str | None = None,
) -> Subscription:
    """No further renewals; the current month is neither refunded nor prorated. ``merchant_id``
    limits it to one merchant's subscriptions (the merchant's surfaces), ``account_id`` to one
    subscriber ID's (the my page); staff pass neither. Another owner's answers like a missing one.
    ``reason`` is the short code kept on the subscription (``cancel_reason``); ``note`` is the
    reason a person gave (staff on the console), which the audit entry keeps in its place."""
    scope = {} if account_id is None else {"account_id": account_id}
    async with in_transaction():
        if merchant_id is None:
            found = (
                await Subscription.select_for_update().get_or_none(id=subscription_id, **scope)
                if fits_id_column(subscription_id)
                else None
            )
            if found is None:
                raise not_found("subscription", subscription_id)
            subscription = found
        else:
            subscription = await find_owned(
                Subscription, subscription_id, merchant_id=merchant_id, kind="subscription", lock=True, **scope
            )
        if subscription.status not in LIVE_SUBSCRIPTIONS:
            raise Conflict(
                f"A {subscription.status.value} subscription cannot be canceled.", code="subscription_not_cancelable"
            )
        await end_subscription(subscription, now=await clock.now(), reason=reason)
        why = {"reason": reason} if note is None else {"reason": note, "cancel_reason": reason}
        await audit(actor, "subscription.cancel", "subscription", subscription.id, **why)
    return subscription
