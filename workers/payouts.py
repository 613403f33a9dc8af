"""Queue ``payouts``: what each merchant is paid for a closed period (product.md §7).

``generate_payouts`` makes the payouts of the periods asked for, oldest first; the work is in
``models.operations.payouts``. Repeats add nothing (one payout per merchant and period).
"""

from __future__ import annotations

import dramatiq
import structlog

from models.operations import payouts
from queues import ACTOR_OPTIONS, PERMANENT_ERRORS

__all__ = ["generate_payouts"]

log = structlog.get_logger("matomete.workers.payouts")


@dramatiq.actor(queue_name="payouts", throws=PERMANENT_ERRORS, **ACTOR_OPTIONS)
async def generate_payouts(period: str) -> None:
    """One payout per merchant with anything to pay or settle for ``period`` (and for earlier
    periods asked for and not yet made); repeats add nothing."""
    made = await payouts.generate_payouts(period)
    log.info("payouts_generated", period=period, payouts=made)
