"""Queue ``charges``: what happens to charges and subscriptions after the subscriber's answer.

So far: a terminated line's subscriptions are canceled. Expiry of unconfirmed charges and the
monthly renewals join this module with the purchases issue.
"""

from __future__ import annotations

import dramatiq
import structlog
from tortoise.transactions import in_transaction

from models.clock import clock
from models.events import Event
from models.subscriptions import Subscription, SubscriptionStatus
from queues import ACTOR_OPTIONS

__all__ = ["cancel_line_subscriptions"]

log = structlog.get_logger("matomete.workers.charges")
LIVE = (SubscriptionStatus.REQUIRES_CONFIRMATION, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


@dramatiq.actor(queue_name="charges", **ACTOR_OPTIONS)
async def cancel_line_subscriptions(line_id: str) -> None:
    """Cancel every live subscription of a terminated line; a repeat finds none left to cancel."""
    async with in_transaction():
        subscriptions = await Subscription.select_for_update().filter(line_id=line_id, status__in=LIVE)
        now = await clock.now()
        for subscription in subscriptions:
            subscription.status = SubscriptionStatus.CANCELED
            subscription.canceled_at = now
            subscription.cancel_reason = "line_terminated"
            await subscription.save(update_fields=["status", "canceled_at", "cancel_reason"])
            await Event.record(
                "subscription.canceled",
                merchant_id=subscription.merchant_id,
                obj=subscription.to_api(),
            )
    log.info("line_subscriptions_canceled", line_id=line_id, canceled=len(subscriptions))
