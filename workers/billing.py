"""Queue ``billing``: the month close's actors (product.md §5), thin over
``models.operations.closing``, which does the work and documents it.

Each actor lists its permanent errors in ``throws=`` (an id no run or batch has): such a
message fails at once instead of being retried 20 times. Any other error is retried; once a
message has used every retry, ``close_failed`` or ``batch_failed`` (``on_retry_exhausted``)
marks its run ``failed``, so no run is left ``running`` for good.
"""

from __future__ import annotations

from typing import Any

import dramatiq

from models.operations.closing import UnknownBatch, UnknownRun, fail_batch, fail_run, merge_batch, plan_close
from queues import ACTOR_OPTIONS, worker_settings

__all__ = ["batch_failed", "close_failed", "close_period", "merge_invoices"]


def _last_line(message: dict[str, Any]) -> str:
    """The last line of the traceback of a message's final attempt."""
    traceback = (message.get("options", {}).get("traceback") or "").strip().splitlines()
    return traceback[-1] if traceback else "unknown error"


@dramatiq.actor(queue_name="billing", throws=(UnknownRun,), on_retry_exhausted="close_failed", **ACTOR_OPTIONS)
async def close_period(run_id: str) -> None:
    """Cut the run's lines into batches, one ``merge_invoices`` message each (once per run)."""
    await plan_close(run_id, batch_lines=worker_settings().billing_batch_lines)


@dramatiq.actor(queue_name="billing", throws=(UnknownBatch,), on_retry_exhausted="batch_failed", **ACTOR_OPTIONS)
async def merge_invoices(batch_id: int) -> None:
    """Write one batch's invoices; a redelivered batch finds itself done."""
    await merge_batch(batch_id)


@dramatiq.actor(queue_name="billing", throws=(UnknownRun,), **ACTOR_OPTIONS)
async def close_failed(message: dict[str, Any], _retries: dict[str, Any]) -> None:
    """``close_period`` used every retry on a run (``message``, as Dramatiq hands it over with
    its retry count): the run is marked failed, with the traceback's last line logged."""
    await fail_run(message["args"][0], _last_line(message))


@dramatiq.actor(queue_name="billing", throws=(UnknownBatch,), **ACTOR_OPTIONS)
async def batch_failed(message: dict[str, Any], _retries: dict[str, Any]) -> None:
    """``merge_invoices`` used every retry on a batch (``message``, as Dramatiq hands it over
    with its retry count): the batch and its run are marked failed with the traceback's last
    line."""
    await fail_batch(message["args"][0], _last_line(message))
