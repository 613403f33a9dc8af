"""The audit log: who changed what through the operator surfaces, written with the change.

Every operation a person asks for takes the ``Actor`` who asked; the operation writes one
``AuditEntry`` in the transaction of its change, so the log and the change commit together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tortoise import fields
from tortoise.models import Model

from models.clock import clock

__all__ = ["SYSTEM", "Actor", "AuditEntry", "audit"]


@dataclass(frozen=True)
class Actor:
    """Who asked for an operation: ``ops_token``, ``staff:<id>``, ``merchant:<id>``, ``system``...
    and the request it came in, as the audit log records them."""

    name: str
    request_id: str | None = None


SYSTEM = Actor("system")


class AuditEntry(Model):
    """One operator action on one object: never updated, never deleted."""

    id = fields.BigIntField(primary_key=True)
    actor = fields.CharField(max_length=64)
    action = fields.CharField(max_length=64)
    target_type = fields.CharField(max_length=32)
    target_id = fields.CharField(max_length=64)
    details: dict[str, Any] = fields.JSONField(default=dict)
    request_id = fields.CharField(max_length=64, null=True)
    at = fields.DatetimeField()

    class Meta:
        table = "audit_log"
        indexes = (("target_type", "target_id"),)

    @classmethod
    async def write(  # noqa: PLR0913 - keyword-only, one per column
        cls,
        *,
        actor: str,
        action: str,
        target_type: str,
        target_id: str,
        details: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> AuditEntry:
        """Record one action; call it inside the transaction that made the change."""
        return await cls.create(
            actor=actor,
            action=action,
            target_type=target_type,
            target_id=target_id,
            details=details or {},
            request_id=request_id,
            at=await clock.now(),
        )


async def audit(actor: Actor, action: str, target_type: str, target_id: str, **details: object) -> AuditEntry:
    """Record ``actor``'s ``action`` on an object; call it in the transaction of the change."""
    return await AuditEntry.write(
        actor=actor.name,
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details,
        request_id=actor.request_id,
    )
