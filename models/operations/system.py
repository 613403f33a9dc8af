"""The platform's vital signs kept in the database (``/ops/system``): the outbox backlog, what
the scheduler last did, billing runs in progress; and the audit entry of a dead letter requeued.

The broker's side (queue depths, dead letters) is read by ``queues``; models never import it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from billing.states import RunStatus
from models.audit_log import Actor, AuditEntry, audit
from models.clock import Clock
from models.invoices import BillingRun
from models.outbox import OutboxMessage
from models.scheduler_jobs import SchedulerJob

__all__ = ["DatabaseVitals", "database_vitals", "name_requeued_actor", "record_requeue"]

MAX_RUNS_SHOWN = 20


@dataclass(frozen=True)
class DatabaseVitals:
    """The database's half of the vital signs."""

    outbox_backlog: int
    oldest_unsent_at: datetime | None
    oldest_unsent_seconds: float | None
    scheduler_last_run_at: datetime | None
    jobs: list[SchedulerJob]
    running: list[BillingRun]


async def database_vitals() -> DatabaseVitals:
    """Unsent outbox rows and the oldest one's age, each scheduler job's last result, and the
    billing runs still running (system time: this is plumbing, not money)."""
    backlog = await OutboxMessage.filter(sent_at=None).count()
    oldest = await OutboxMessage.filter(sent_at=None).order_by("created_at").first()
    jobs = await SchedulerJob.all().order_by("name")
    running = await BillingRun.filter(status=RunStatus.RUNNING.value).order_by("started_at").limit(MAX_RUNS_SHOWN)
    age = max((Clock.system_now() - oldest.created_at).total_seconds(), 0.0) if oldest else None
    return DatabaseVitals(
        outbox_backlog=backlog,
        oldest_unsent_at=oldest.created_at if oldest else None,
        oldest_unsent_seconds=age,
        scheduler_last_run_at=max((job.last_run_at for job in jobs), default=None),
        jobs=jobs,
        running=running,
    )


async def record_requeue(actor: Actor, *, queue: str, message_id: str, reason: str) -> AuditEntry:
    """The audit entry of a dead letter put back on its queue; call it in the requeue's transaction
    (before the broker moves it, so a failed move undoes the entry)."""
    return await audit(actor, "dead_letter.requeued", "message", message_id, queue=queue, reason=reason)


async def name_requeued_actor(entry: AuditEntry, actor_name: str) -> None:
    """Complete the requeue's entry, in its own transaction, with the actor the message was for."""
    entry.details = {**entry.details, "actor": actor_name}
    await entry.save(update_fields=["details"])
