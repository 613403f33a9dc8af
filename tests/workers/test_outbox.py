"""The transactional outbox: a change and its message commit together, the relay publishes with
confirms, and a relay killed between publishing and marking causes a second delivery that the
idempotent actor turns into no second effect."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import dramatiq
import pytest
import structlog

import queues
from conftest import OpsClient
from models.clock import clock
from models.events import Event
from models.merchants import Merchant
from models.outbox import OutboxMessage
from models.subscriptions import Subscription, SubscriptionStatus
from tests_support import MERCHANT_BODY, line_body

LINE_ID = "CAF0000000301"


class RelayKilled(BaseException):
    """Stands for SIGKILL: nothing after it in the relay runs, its transaction never commits."""


class KilledAfterPublish:
    """Publishes for real, then dies before the relay can mark the rows sent."""

    def __init__(self, inner: queues.Publisher) -> None:
        self.inner = inner
        self.published: list[str] = []

    async def publish(self, messages: Sequence[dramatiq.Message]) -> None:
        """Hand the batch to the broker, then die."""
        await self.inner.publish(messages)
        self.published.extend(message.message_id for message in messages)
        raise RelayKilled


async def _drain(queue_name: str) -> None:
    """Wait until the broker's queue is empty and the worker has finished what it took."""
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, lambda: queues.broker.join(queue_name, timeout=30_000))


async def _line_with_subscriptions(ops: OpsClient, count: int) -> list[str]:
    await ops.post("/ops/v1/lines", json=line_body(LINE_ID))
    _, merchant = await ops.post("/ops/v1/merchants", json=MERCHANT_BODY)
    now = await clock.now()
    ids = []
    for n in range(count):
        subscription = await Subscription.create(
            merchant=await Merchant.get(id=merchant["id"]),
            line_id=LINE_ID,
            amount=500 + n,
            description=f"見放題プラン {n}",
            status=SubscriptionStatus.ACTIVE,
            current_period="2026-11",
            created_at=now,
        )
        ids.append(subscription.id)
    return ids


async def test_change_and_message_commit_together(ops: OpsClient) -> None:
    """Terminating a line writes exactly one unsent outbox row for the charges worker, with the change."""
    await ops.post("/ops/v1/lines", json=line_body(LINE_ID))
    await ops.patch(f"/ops/v1/lines/{LINE_ID}", json={"status": "terminated"})
    rows = await OutboxMessage.all()
    assert [(r.queue_name, r.actor_name, r.args, r.sent_at) for r in rows] == [
        ("charges", "cancel_line_subscriptions", [LINE_ID], None)
    ]


async def test_a_failed_change_leaves_no_message(ops: OpsClient) -> None:
    """A PATCH refused by validation writes neither the change nor a message."""
    await ops.post("/ops/v1/lines", json=line_body(LINE_ID))
    status, _ = await ops.patch(f"/ops/v1/lines/{LINE_ID}", json={"status": "terminated", "bogus": 1})
    assert status == 400
    assert await OutboxMessage.all().count() == 0


async def test_relay_killed_between_publish_and_mark_changes_nothing_twice(ops: OpsClient, worker, settings) -> None:
    """The message is delivered twice under one id; the subscriptions are canceled once, one event each."""
    subscriptions = await _line_with_subscriptions(ops, 2)
    await ops.patch(f"/ops/v1/lines/{LINE_ID}", json={"status": "terminated"})
    (row,) = await OutboxMessage.all()
    publisher = queues.publisher_for(settings)
    killed = KilledAfterPublish(publisher)
    with structlog.testing.capture_logs() as logs:
        with pytest.raises(RelayKilled):
            await queues.relay_once(killed)
        assert killed.published == [str(row.id)]
        assert (await OutboxMessage.get(id=row.id)).sent_at is None  # the mark never committed
        assert await queues.relay_once(publisher) == 1  # a restarted relay sends it again
        assert await queues.relay_once(publisher) == 0
        await _drain("charges")
    if hasattr(publisher, "close"):
        await publisher.close()
    runs = [entry for entry in logs if entry["event"] == "line_subscriptions_canceled"]
    assert sorted(entry["canceled"] for entry in runs) == [0, 2]  # delivered twice, effective once
    assert (await OutboxMessage.get(id=row.id)).sent_at is not None
    canceled = await Subscription.filter(id__in=subscriptions)
    assert {(s.status, s.cancel_reason) for s in canceled} == {(SubscriptionStatus.CANCELED, "line_terminated")}
    events = await Event.filter(type="subscription.canceled").values_list("object_id", flat=True)
    assert sorted(events) == sorted(subscriptions)


async def test_relay_publishes_in_order_and_marks_everything(ops: OpsClient, worker, settings) -> None:
    """Many messages at once: every row is published once, marked sent, and acted on."""
    for n in range(30):
        line_id = f"CAF00000004{n:02d}"
        await ops.post("/ops/v1/lines", json=line_body(line_id))
        await ops.patch(f"/ops/v1/lines/{line_id}", json={"status": "terminated"})
    publisher = queues.publisher_for(settings)
    with structlog.testing.capture_logs() as logs:
        assert await queues.relay_once(publisher, batch_size=500) == 30
        await _drain("charges")
    if hasattr(publisher, "close"):
        await publisher.close()
    assert await OutboxMessage.filter(sent_at=None).count() == 0
    handled = sorted(entry["line_id"] for entry in logs if entry["event"] == "line_subscriptions_canceled")
    assert handled == sorted(f"CAF00000004{n:02d}" for n in range(30))
