"""What the scheduler last did: one row per job, written after each pass, so operators see on
``/ops/system`` when it last ran and what each job last did (or why it failed)."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

__all__ = ["SchedulerJob"]


class SchedulerJob(Model):
    """The last run of one scheduler job (system time: this is plumbing, not money)."""

    name = fields.CharField(max_length=64, primary_key=True)
    last_run_at = fields.DatetimeField()
    last_done = fields.IntField(default=0)
    last_error = fields.TextField(null=True)
    last_ok_at = fields.DatetimeField(null=True)
    failures = fields.IntField(default=0)

    class Meta:
        table = "scheduler_jobs"
