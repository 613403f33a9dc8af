"""The transactional outbox: a message is a row written in the same transaction as the change
that implies it. ``matomete relay`` publishes unsent rows with publisher confirms and marks
them sent; a crash between the two publishes a row again, which idempotent actors make
harmless. The row's id is the Dramatiq message id, so a republished message keeps its id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from tortoise import fields
from tortoise.models import Model

from models.clock import Clock

__all__ = [
    "CANCEL_LINE_SUBSCRIPTIONS",
    "CLOSE_PERIOD",
    "DELIVER_WEBHOOK",
    "GENERATE_PAYOUTS",
    "MERGE_INVOICES",
    "RENEW_SUBSCRIPTION",
    "VERIFY_PURCHASE",
    "ActorRef",
    "OutboxMessage",
    "send",
    "send_many",
]


class _Actor(Protocol):
    @property
    def actor_name(self) -> str: ...

    @property
    def queue_name(self) -> str: ...


@dataclass(frozen=True)
class ActorRef:
    """Names an actor without importing the worker: operations write messages for actors they
    never import (a test holds each name to a declared actor on the same queue)."""

    queue_name: str
    actor_name: str


VERIFY_PURCHASE = ActorRef("auth", "verify_purchase")
RENEW_SUBSCRIPTION = ActorRef("charges", "renew_subscription")
CANCEL_LINE_SUBSCRIPTIONS = ActorRef("charges", "cancel_line_subscriptions")
CLOSE_PERIOD = ActorRef("billing", "close_period")
MERGE_INVOICES = ActorRef("billing", "merge_invoices")
GENERATE_PAYOUTS = ActorRef("payouts", "generate_payouts")
DELIVER_WEBHOOK = ActorRef("webhooks", "deliver_webhook")


class OutboxMessage(Model):
    """One message waiting to be, or already, handed to the broker."""

    id = fields.UUIDField(primary_key=True, default=uuid.uuid4)
    queue_name = fields.CharField(max_length=64)
    actor_name = fields.CharField(max_length=128)
    args: list[Any] = fields.JSONField(default=list)
    kwargs: dict[str, Any] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField()
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "outbox"
        indexes = (("sent_at", "created_at"),)


async def send(actor: _Actor, *args: Any, **kwargs: Any) -> OutboxMessage:
    """Queue ``actor(*args, **kwargs)`` to run once the current transaction commits.

    Pass ids, not objects: the actor loads what it needs when it runs.
    """
    return await OutboxMessage.create(
        queue_name=actor.queue_name,
        actor_name=actor.actor_name,
        args=list(args),
        kwargs=kwargs,
        created_at=Clock.system_now(),
    )


async def send_many(actor: _Actor, calls: list[tuple[Any, ...]]) -> int:
    """``send`` for many calls of one actor, in one statement per thousand rows."""
    now = Clock.system_now()
    rows = [
        OutboxMessage(
            id=uuid.uuid4(),
            queue_name=actor.queue_name,
            actor_name=actor.actor_name,
            args=list(args),
            kwargs={},
            created_at=now,
        )
        for args in calls
    ]
    await OutboxMessage.bulk_create(rows, batch_size=1000)
    return len(rows)
