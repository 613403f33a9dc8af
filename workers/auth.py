"""Queue ``auth``: deciding a subscriber's confirmation (product.md §4).

``verify_purchase`` runs once per sign-in on a confirmation page; the decision, with the
password check, is ``models.operations.purchases.decide_attempt``. A redelivered message finds
the attempt decided and does nothing.
"""

from __future__ import annotations

import dramatiq
import structlog

from models.operations.purchases import decide_attempt
from queues import ACTOR_OPTIONS, PERMANENT_ERRORS, worker_settings

__all__ = ["verify_purchase"]

log = structlog.get_logger("matomete.workers.auth")


@dramatiq.actor(queue_name="auth", throws=PERMANENT_ERRORS, **ACTOR_OPTIONS)
async def verify_purchase(attempt_id: str) -> None:
    """Decide the charge a sign-in was for; a second delivery of the same attempt is a no-op."""
    failure_code = await decide_attempt(attempt_id, secret_key=worker_settings().secret_key)
    log.info("purchase_decided", attempt_id=attempt_id, failure_code=failure_code)
