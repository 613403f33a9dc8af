"""The scheduler: every few seconds, ask what has fallen due by the platform clock and do or
enqueue each due thing once (product.md §12). It catches up rather than firing at instants, so
a test-clock jump or an hour of downtime runs everything that fell due, exactly once.

Each job decides "due" from database state, never from the scheduler's memory, so running two
schedulers, or restarting one, repeats nothing. Later issues add their jobs to ``JOBS``
(expiries, renewals, month close, webhook retries, payouts, write-offs).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from models.clock import Clock, clock
from models.merchants import IdempotencyKey
from models.operations import closing, collections, payouts, purchases, webhooks
from models.outbox import OutboxMessage
from models.scheduler_jobs import SchedulerJob

__all__ = ["JOBS", "Job", "run_due_jobs", "run_scheduler"]

log = structlog.get_logger("matomete.scheduler")
TICK_SECONDS = 2.0
OUTBOX_KEPT = timedelta(days=7)
IDEMPOTENCY_KEPT = timedelta(hours=48)  # product.md §9: kept at least 24 hours


@dataclass(frozen=True)
class Job:
    """Something the scheduler does whenever it is due; ``run`` returns how much it did."""

    name: str
    run: Callable[[datetime], Awaitable[int]]


async def prune_outbox(_now: datetime) -> int:
    """Forget outbox rows sent more than a week ago (system time: the outbox is plumbing)."""
    return await OutboxMessage.filter(sent_at__lt=Clock.system_now() - OUTBOX_KEPT).delete()


async def prune_idempotency_keys(now: datetime) -> int:
    """Forget completed idempotency keys older than 48 hours."""
    return await IdempotencyKey.filter(created_at__lt=now - IDEMPOTENCY_KEPT, completed_at__not_isnull=True).delete()


JOBS: list[Job] = [
    Job("expire_unconfirmed_charges", purchases.expire_unconfirmed),
    Job("create_due_renewals", purchases.create_due_renewals),
    Job("cancel_overdue_subscriptions", purchases.cancel_overdue_subscriptions),
    Job("enqueue_due_deliveries", webhooks.enqueue_due_deliveries),
    Job("close_due_periods", closing.close_due_periods),
    Job("mark_overdue_invoices", collections.mark_overdue),
    Job("write_off_invoices", collections.write_off),
    Job("generate_due_payouts", payouts.generate_due_payouts),
    Job("prune_outbox", prune_outbox),
    Job("prune_idempotency_keys", prune_idempotency_keys),
]


MAX_ERROR = 2000  # characters of a failing job's error kept for /ops/system


async def run_due_jobs(jobs: list[Job] | None = None) -> dict[str, int]:
    """One pass over every job at the platform's now; a failing job does not stop the others.
    Each job's outcome is kept in ``scheduler_jobs`` (two statements per pass)."""
    now = await clock.now()
    done: dict[str, int] = {}
    errors: dict[str, str] = {}
    ran: list[str] = []
    for job in jobs if jobs is not None else JOBS:
        ran.append(job.name)
        try:
            done[job.name] = await job.run(now)
        except Exception as error:
            errors[job.name] = f"{type(error).__name__}: {error}"[:MAX_ERROR]
            log.exception("job_failed", job=job.name)
    try:
        await _record(ran, done, errors)
    except Exception:
        log.exception("scheduler_status_not_recorded")  # the jobs ran; only the bookkeeping failed
    return done


async def _record(ran: list[str], done: dict[str, int], errors: dict[str, str]) -> None:
    """Upsert one ``SchedulerJob`` row per job of this pass (system time: plumbing)."""
    at = Clock.system_now()
    before = {row.name: row for row in await SchedulerJob.filter(name__in=ran)}
    rows = []
    for name in ran:
        previous = before.get(name)
        failed = name in errors
        rows.append(
            SchedulerJob(
                name=name,
                last_run_at=at,
                last_done=0 if failed else done[name],
                last_error=errors.get(name),
                last_ok_at=(previous.last_ok_at if previous else None) if failed else at,
                failures=((previous.failures if previous else 0) + 1) if failed else 0,
            )
        )
    await SchedulerJob.bulk_create(
        rows,
        on_conflict=["name"],
        update_fields=["last_run_at", "last_done", "last_error", "last_ok_at", "failures"],
    )


async def run_scheduler(*, stop: asyncio.Event, tick: float = TICK_SECONDS) -> None:
    """Run due jobs every ``tick`` seconds until ``stop`` is set."""
    log.info("scheduler_started", jobs=[job.name for job in JOBS])
    while not stop.is_set():
        done = await run_due_jobs()
        if any(done.values()):
            log.info("scheduler_ran", **done)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), tick)
