"""Queue ``charges``: what happens to charges and subscriptions besides the subscriber's answer.

``renew_subscription`` decides a month's renewal charge, which the scheduler creates once per
subscription and month (the database's unique key makes "once" true). The scheduler's jobs
below find what fell due: unconfirmed charges to expire after 30 minutes, renewals on the 1st
of each month (JST), ``past_due`` subscriptions to cancel when their month is over.
``cancel_line_subscriptions`` follows a line's termination.
"""

from __future__ import annotations

from datetime import datetime

import dramatiq
import structlog
from tortoise.transactions import in_transaction

from billing.periods import period_of
from billing.purchases import PurchaseFacts, decide_renewal
from models.accounts import SubscriberAccount
from models.charges import Charge, ChargeStatus
from models.clock import clock
from models.lines import Line, LineStatus
from models.merchants import Merchant
from models.outbox import send
from models.purchasing import lock_usage, merchant_active, record_decision
from models.subscriptions import Subscription, SubscriptionStatus
from queues import ACTOR_OPTIONS

__all__ = [
    "cancel_line_subscriptions",
    "cancel_overdue_subscriptions",
    "create_due_renewals",
    "expire_unconfirmed_charges",
    "renew_subscription",
]

log = structlog.get_logger("matomete.workers.charges")
LIVE = (SubscriptionStatus.REQUIRES_CONFIRMATION, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)
BATCH = 500


@dramatiq.actor(queue_name="charges", **ACTOR_OPTIONS)
async def cancel_line_subscriptions(line_id: str) -> None:
    """Cancel every live subscription of a terminated line; a repeat finds none left to cancel."""
    async with in_transaction():
        subscriptions = await Subscription.select_for_update().filter(line_id=line_id, status__in=LIVE)
        now = await clock.now()
        for subscription in subscriptions:
            await subscription.cancel(now=now, reason="line_terminated")
    log.info("line_subscriptions_canceled", line_id=line_id, canceled=len(subscriptions))


@dramatiq.actor(queue_name="charges", **ACTOR_OPTIONS)
async def renew_subscription(charge_id: str) -> None:
    """Decide one month's renewal charge: line, merchant and limits, no password."""
    async with in_transaction():
        charge = await Charge.select_for_update().get_or_none(id=charge_id)
        if charge is None or charge.status != ChargeStatus.PROCESSING:
            return
        subscription = await Subscription.get(id=charge.subscription_id)
        now = await clock.now()
        if subscription.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE):
            await charge.cancel(now=now)
            return
        account = await SubscriberAccount.get(id=subscription.account_id)
        line = await Line.get(line_id=account.line_id)
        merchant = await Merchant.get(id=charge.merchant_id)
        usage = await lock_usage(account, line, charge.renewal_period or period_of(now))
        decision = decide_renewal(
            PurchaseFacts(
                now=now,
                amount=charge.amount,
                account_found=True,
                password_ok=True,
                line_active=line.status == LineStatus.ACTIVE,
                line_eligible=line.eligible,
                merchant_active=merchant_active(merchant),
                account_spent=usage.account.amount,
                account_limit=account.monthly_limit,
                line_spent=usage.line.amount,
                line_limit=line.monthly_limit,
            )
        )
        await record_decision(charge, decision, now=now, account=account, line=line, usage=usage)
    log.info("subscription_renewal_decided", charge_id=charge_id, failure_code=decision.failure_code)


async def create_due_renewals(now: datetime) -> int:
    """Scheduler job: one renewal charge per active subscription whose month has turned."""
    period = period_of(now)
    due = await Subscription.filter(status=SubscriptionStatus.ACTIVE, current_period__lt=period).limit(BATCH)
    created = 0
    for subscription in due:
        async with in_transaction():
            locked = await Subscription.select_for_update().get(id=subscription.id)
            if locked.status != SubscriptionStatus.ACTIVE or await Charge.exists(
                subscription_id=locked.id, renewal_period=period
            ):
                continue
            charge = await Charge.create(
                merchant_id=locked.merchant_id,
                subscription=locked,
                renewal_period=period,
                account_id=locked.account_id,
                line_id=locked.line_id,
                amount=locked.amount,
                description=locked.description,
                merchant_reference=locked.merchant_reference,
                metadata=locked.metadata,
                status=ChargeStatus.PROCESSING,
                created_at=now,
            )
            await send(renew_subscription, charge.id)
            created += 1
    return created


async def expire_unconfirmed_charges(now: datetime) -> int:
    """Scheduler job: charges not confirmed within 30 minutes fail with ``expired``."""
    expired = 0
    async with in_transaction():
        charges = (
            await Charge.select_for_update(skip_locked=True)
            .filter(status=ChargeStatus.REQUIRES_CONFIRMATION, expires_at__lte=now)
            .limit(BATCH)
        )
        for charge in charges:
            await charge.expire(now=now)
            expired += 1
        subscriptions = (
            await Subscription.select_for_update(skip_locked=True)
            .filter(status=SubscriptionStatus.REQUIRES_CONFIRMATION, expires_at__lte=now)
            .limit(BATCH)
        )
        for subscription in subscriptions:
            subscription.status = SubscriptionStatus.FAILED
            await subscription.save(update_fields=["status"])
            expired += 1
    return expired


async def cancel_overdue_subscriptions(now: datetime) -> int:
    """Scheduler job: a ``past_due`` subscription is canceled once its month has ended."""
    period = period_of(now)
    async with in_transaction():
        overdue = await Subscription.select_for_update(skip_locked=True).filter(
            status=SubscriptionStatus.PAST_DUE, current_period__lt=period
        )
        for subscription in overdue:
            await subscription.cancel(now=now, reason="past_due")
    return len(overdue)
