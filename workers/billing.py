"""Queue ``billing``: the month close's actors (product.md §5), thin over
``models.operations.closing``, which does the work and documents it.

Each actor lists its permanent errors in ``throws=``: an id no run or batch has, or a change
the run's state machine refuses, fails the message at once instead of retrying it 20 times.
A batch that fails every retry is handed to ``batch_failed`` (``on_retry_exhausted``).
"""

from __future__ import annotations

from typing import Any

import dramatiq

from billing.states import IllegalTransition
from models.operations.closing import UnknownBatch, UnknownRun, fail_batch, merge_batch, plan_close
from queues import ACTOR_OPTIONS, worker_settings

__all__ = ["batch_failed", "close_period", "merge_invoices"]


@dramatiq.actor(queue_name="billing", throws=(UnknownRun, IllegalTransition), **ACTOR_OPTIONS)
async def close_period(run_id: str) -> None:
    """Cut the run's lines into batches, one ``merge_invoices`` message each (once per run)."""
    await plan_close(run_id, batch_lines=worker_settings().billing_batch_lines)


@dramatiq.actor(
    queue_name="billing", throws=(UnknownBatch, IllegalTransition), on_retry_exhausted="batch_failed", **ACTOR_OPTIONS
)
async def merge_invoices(batch_id: int) -> None:
    """Write one batch's invoices; a redelivered batch finds itself done."""
    await merge_batch(batch_id)


@dramatiq.actor(queue_name="billing", throws=(UnknownBatch, IllegalTransition), **ACTOR_OPTIONS)
async def batch_failed(message: dict[str, Any], _retries: dict[str, Any]) -> None:
    """``merge_invoices`` used every retry on a batch (``message``, as Dramatiq hands it over
    with its retry count): the batch and its run are marked failed with the traceback's last
    line."""
    traceback = (message.get("options", {}).get("traceback") or "").strip().splitlines()
    await fail_batch(message["args"][0], traceback[-1] if traceback else "unknown error")
