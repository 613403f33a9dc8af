"""Actors the vital-signs and metrics tests declare on the ``payouts`` queue (a worker process started by a
test imports this module too): one that always fails, and one that does nothing."""

from __future__ import annotations

import dramatiq

import queues

FAILS = "vitals_always_fails"
NOOP = "vitals_noop"
QUEUE = "payouts"
_ = queues.broker  # the platform's broker, set up before the actors are declared


class NeverRaised(Exception):
    """The permanent error these actors declare (every actor declares one)."""


@dramatiq.actor(queue_name=QUEUE, actor_name=FAILS, max_retries=0, throws=(NeverRaised,))
def always_fails(number: int) -> None:
    """Raise, every time: with no retries its message goes straight to the dead-letter queue."""
    raise RuntimeError(f"test actor failed on purpose ({number})")


@dramatiq.actor(queue_name=QUEUE, actor_name=NOOP, max_retries=0, throws=(NeverRaised,))
def does_nothing(number: int) -> None:
    """Nothing: a message that only makes a queue deeper until a worker takes it."""
