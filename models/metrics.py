"""Prometheus series the operations keep: confirmations decided, by result.

``prometheus_client`` is imported on first use, never at import: a Dramatiq worker process
imports models before its boot switches ``prometheus_client`` to multiprocess mode, and a value
class chosen earlier would keep its counts where the worker's exposition server never looks.
"""

from __future__ import annotations

from typing import Any

__all__ = ["count_confirmation"]

_confirmations: Any = None


def count_confirmation(result: str) -> None:
    """Count one decided confirmation: ``succeeded``, a failure code, ``declined`` or ``expired``."""
    global _confirmations  # noqa: PLW0603 - one counter per process, made on first use
    if _confirmations is None:
        from prometheus_client import Counter

        _confirmations = Counter(
            "matomete_confirmations_decided",
            "Purchase confirmations decided, by result (succeeded, a failure code, declined, expired).",
            ["result"],
        )
    _confirmations.labels(result=result).inc()
