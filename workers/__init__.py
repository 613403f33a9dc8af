"""Dramatiq actors, one module per queue. ``dramatiq queues workers --queues charges`` runs
one queue's worker: ``queues`` sets up the broker, this package declares the actors.

Actors are thin: load by id, lock, check the state machine, call ``billing/``, write.
"""

import queues  # noqa: F401 - the broker must exist before any actor is declared
from workers import auth, billing, charges, payouts, webhooks

__all__ = ["auth", "billing", "charges", "payouts", "webhooks"]
