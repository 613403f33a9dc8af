"""Writing a purchase decision: the charge, the subscription it may start or renew, the
monthly usage behind the limits, and the events, all in the caller's transaction.

The decision itself is ``billing.purchases``; this module only loads what it needs and
records what it decided. Usage rows are locked in one order (ID, then line) so concurrent
decisions queue instead of deadlocking, and two purchases can never both pass a limit they
exceed together.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import cast

from billing.purchases import Decision
from models.accounts import SubscriberAccount
from models.charges import AccountUsage, BillingStatus, Charge, ChargeStatus, FailureCode, LineUsage
from models.events import Event
from models.lines import Line, LineSession
from models.merchants import Merchant, MerchantStatus
from models.subscriptions import Subscription, SubscriptionStatus

__all__ = ["Usage", "address_in_open_session", "lock_usage", "record_decision"]


@dataclass
class Usage:
    """The locked usage rows of one ID and its line for one period."""

    account: AccountUsage
    line: LineUsage


async def lock_usage(account: SubscriberAccount, line: Line, period: str) -> Usage:
    """Create the period's usage rows if missing, then lock both (ID first, then line)."""
    await AccountUsage.bulk_create([AccountUsage(account=account, period=period)], ignore_conflicts=True)
    await LineUsage.bulk_create([LineUsage(line=line, period=period)], ignore_conflicts=True)
    account_usage = await AccountUsage.select_for_update().get(account_id=account.id, period=period)
    line_usage = await LineUsage.select_for_update().get(line_id=line.line_id, period=period)
    return Usage(account=account_usage, line=line_usage)


async def address_in_open_session(line: Line, client_address: str | None) -> bool:
    """True when the client address lies in a session of ``line`` that is open now."""
    if not client_address:
        return False
    sessions = await LineSession.filter(line_id=line.line_id, ended_at=None)
    return any(session.contains(client_address) for session in sessions)


def merchant_active(merchant: Merchant) -> bool:
    """Whether the merchant may be paid for new purchases."""
    return merchant.status == MerchantStatus.ACTIVE


async def record_decision(  # noqa: PLR0913 - everything the decision touches, keyword-only
    charge: Charge,
    decision: Decision,
    *,
    now: datetime,
    account: SubscriberAccount | None,
    line: Line | None,
    usage: Usage | None,
) -> None:
    """Write ``decision`` for a ``processing`` charge, with its events and subscription."""
    charge.decided_at = now
    if account is not None:
        charge.account = account
    if line is not None:
        charge.line = line
    subscription = (
        await Subscription.select_for_update().get(id=charge.subscription_id) if charge.subscription_id else None
    )
    if subscription is not None and subscription.status in (SubscriptionStatus.CANCELED, SubscriptionStatus.FAILED):
        # Canceled while the subscriber was signing in: nothing is bought.
        await charge.save()  # the account and line it was tried from
        await charge.cancel(now=now)
        return
    if decision.succeeded:
        assert usage is not None  # noqa: S101 - a success is only decided with the usage locked
        usage.account.amount += charge.amount
        usage.line.amount += charge.amount
        await usage.account.save(update_fields=["amount"])
        await usage.line.save(update_fields=["amount"])
        charge.status = ChargeStatus.SUCCEEDED
        charge.failure_code = None  # type: ignore[assignment]  # Tortoise types nullable enums as non-null
        charge.period = usage.account.period
        charge.billing_status = BillingStatus.UNBILLED
    else:
        charge.status = ChargeStatus.FAILED
        charge.failure_code = FailureCode(cast("str", decision.failure_code))  # a failure has its code
    await charge.save()
    merchant_id = charge.merchant_id
    await Event.record(
        "charge.succeeded" if decision.succeeded else "charge.failed", merchant_id=merchant_id, obj=charge.to_api()
    )
    if subscription is None:
        return
    renewal = subscription.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)
    if decision.succeeded:
        first = subscription.status == SubscriptionStatus.REQUIRES_CONFIRMATION
        subscription.status = SubscriptionStatus.ACTIVE
        subscription.current_period = charge.period
        if account is not None:
            subscription.account = account
        if line is not None:
            subscription.line = line
        await subscription.save()
        await Event.record(
            "subscription.activated" if first else "subscription.renewed",
            merchant_id=merchant_id,
            obj=subscription.to_api(),
        )
    elif renewal:
        subscription.status = SubscriptionStatus.PAST_DUE
        subscription.current_period = charge.renewal_period
        await subscription.save()
        await Event.record("subscription.past_due", merchant_id=merchant_id, obj=subscription.to_api())
    else:
        subscription.status = SubscriptionStatus.FAILED
        await subscription.save()
