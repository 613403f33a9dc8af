"""The billing actors are thin and say which errors are permanent (tests/test_structure.py
holds the close's ActorRefs in models/outbox.py to the declared actors)."""

from __future__ import annotations

import pytest

from models.operations import closing
from settings import Settings
from workers import billing as billing_queue


def test_every_billing_actor_lists_its_permanent_errors() -> None:
    """Each actor has ``throws=`` (an unknown id is not retried); the two that do the work hand
    a message out of retries to the actor that fails its run."""
    assert billing_queue.close_period.options["throws"] == (closing.UnknownRun,)
    assert billing_queue.close_failed.options["throws"] == (closing.UnknownRun,)
    assert billing_queue.merge_invoices.options["throws"] == (closing.UnknownBatch,)
    assert billing_queue.batch_failed.options["throws"] == (closing.UnknownBatch,)
    assert billing_queue.close_period.options["on_retry_exhausted"] == "close_failed"
    assert billing_queue.merge_invoices.options["on_retry_exhausted"] == "batch_failed"


async def test_an_unknown_run_or_batch_is_a_permanent_error(db: Settings) -> None:
    """Planning or failing a run, or merging or failing a batch, that does not exist raises the error the
    actors list in ``throws=`` (404 codes of their own)."""
    with pytest.raises(closing.UnknownRun) as run:
        await closing.plan_close("run_missing")
    with pytest.raises(closing.UnknownBatch):
        await closing.merge_batch(987654)
    with pytest.raises(closing.UnknownBatch) as batch:
        await closing.fail_batch(987654, "boom")
    with pytest.raises(closing.UnknownRun):
        await closing.fail_run("run_missing", "boom")
    assert (run.value.status, run.value.code, batch.value.code) == (404, "billing_run_unknown", "billing_batch_unknown")
