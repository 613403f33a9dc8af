"""A broker middleware that delivers every message twice and out of order.

Each message enqueued without a delay (what the relay publishes) is followed by a copy — the
same message, the same message id — enqueued again with a seeded random delay, so the copy
arrives after later messages, interleaved with their own copies. A delayed enqueue (a retry, or
a copy) is left alone, so nothing is copied twice. Actors must be idempotent for the results to
stay those of a plain run; the test that adds this middleware says whether they are.
"""

from __future__ import annotations

import random
import threading
from typing import Any

import dramatiq
from dramatiq.middleware import Middleware

__all__ = ["DuplicateAndReorder"]


class DuplicateAndReorder(Middleware):
    """Enqueue a delayed second copy of each message; ``copies`` counts them."""

    def __init__(self, *, seed: int, max_delay_ms: int = 400) -> None:
        self.random = random.Random(seed)
        self.max_delay_ms = max_delay_ms
        self.copies = 0
        self._lock = threading.Lock()

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        """Send the message again, later."""
        if delay is not None or message.options.get("chaos_copy"):
            return
        with self._lock:
            later = self.random.randrange(self.max_delay_ms)
            self.copies += 1
        broker.enqueue(message.copy(options={"chaos_copy": True}), delay=later)
