"""Queue ``charges``: what happens to charges and subscriptions besides the subscriber's answer.

``renew_subscription`` decides a month's renewal charge, which the scheduler creates once per
subscription and month; ``cancel_line_subscriptions`` follows a line's termination. The work
is in ``models.operations.purchases``.
"""

from __future__ import annotations

import dramatiq
import structlog

from models.operations import purchases
from queues import ACTOR_OPTIONS, PERMANENT_ERRORS

__all__ = ["cancel_line_subscriptions", "renew_subscription"]

log = structlog.get_logger("matomete.workers.charges")


@dramatiq.actor(queue_name="charges", throws=PERMANENT_ERRORS, **ACTOR_OPTIONS)
async def cancel_line_subscriptions(line_id: str) -> None:
    """Cancel every live subscription of a terminated line; a repeat finds none left to cancel."""
    canceled = await purchases.cancel_line_subscriptions(line_id)
    log.info("line_subscriptions_canceled", line_id=line_id, canceled=canceled)


@dramatiq.actor(queue_name="charges", throws=PERMANENT_ERRORS, **ACTOR_OPTIONS)
async def renew_subscription(charge_id: str) -> None:
    """Decide one month's renewal charge: line, merchant and limits, no password."""
    failure_code = await purchases.decide_renewal_charge(charge_id)
    log.info("subscription_renewal_decided", charge_id=charge_id, failure_code=failure_code)
