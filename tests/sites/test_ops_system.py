"""``/ops/system`` and ``GET /ops/v1/system``: the vital signs for every role, the broker down
shown rather than a 500, and dead letters inspected and requeued by an admin only, with a reason
in the audit log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from sites_support import ops_signed_in
from vitals_support import FAILS, QUEUE, always_fails

import queues
from conftest import OpsClient
from models.audit_log import AuditEntry
from models.invoices import BillingRun
from models.outbox import OutboxMessage
from models.scheduler_jobs import SchedulerJob
from settings import Settings
from workers.scheduler import run_due_jobs


async def _depth(settings: Settings) -> queues.QueueDepth:
    state = await queues.read_broker(settings)
    return next(q for q in state.queues if q.name == QUEUE)


async def _until(settings: Settings, *, dead: int, ready: int | None = None, deadline: float = 20) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while True:
        now = await _depth(settings)
        if now.dead == dead and (ready is None or now.ready == ready):
            return
        assert loop.time() < end, now
        await asyncio.sleep(0.1)


@pytest.fixture
async def dead_letter(settings: Settings) -> AsyncIterator[str]:
    """One message of the always-failing actor in the payouts dead-letter queue, no worker left running: its id."""
    queues.declare_queues()
    queues.broker.flush_all()
    loop = asyncio.get_running_loop()
    worker = queues.start_worker(loop, settings=settings, queues=[QUEUE], threads=1)
    try:
        message = always_fails.send(42)
        await _until(settings, dead=1)
    finally:
        await loop.run_in_executor(None, worker.stop)
    yield message.message_id
    queues.broker.flush_all()


@pytest.mark.parametrize("role", ["support", "billing", "admin"])
async def test_every_role_sees_the_vital_signs(client: Any, settings: Settings, role: str) -> None:
    """Each role opens /ops/system: every queue's row, the outbox backlog and the scheduler's jobs."""
    queues.declare_queues()
    await run_due_jobs()
    browser = await ops_signed_in(client, role=role)
    status, page = await browser.get("/ops/system")
    assert status == 200
    for name in queues.QUEUES:
        assert f'id="queue-{name}"' in page
    assert f'id="outbox-backlog">{await OutboxMessage.filter(sent_at=None).count()}<' in page
    assert "close_due_periods" in page
    assert 'id="broker-unreachable"' not in page


async def test_the_dead_letter_count_links_to_the_letters_for_admins_only(
    client: Any, settings: Settings, dead_letter: str
) -> None:
    """The payouts row shows one dead letter; only an admin gets the link to inspect it."""
    support = await ops_signed_in(client, role="support")
    _, page = await support.get("/ops/system")
    assert 'badge failed">1<' in page
    assert "/ops/system/dead_letters/payouts" not in page
    admin = await ops_signed_in(client, role="admin")
    _, page = await admin.get("/ops/system")
    assert 'href="/ops/system/dead_letters/payouts"' in page


async def test_the_json_vital_signs_need_the_ops_token(client: Any, ops: OpsClient, settings: Settings) -> None:
    """GET /ops/v1/system answers every queue, the outbox, the scheduler and runs; without the token 401."""
    queues.declare_queues()
    await run_due_jobs()
    status, body = await ops.get("/ops/v1/system")
    assert status == 200
    assert body["broker"]["reachable"] is True
    assert [q["name"] for q in body["broker"]["queues"]] == list(queues.QUEUES)
    assert set(body["broker"]["queues"][0]) == {"name", "ready", "unacked", "consumers", "delayed", "dead"}
    oldest = await OutboxMessage.filter(sent_at=None).order_by("created_at").first()
    assert body["outbox"]["backlog"] == await OutboxMessage.filter(sent_at=None).count()
    assert body["outbox"]["oldest_unsent_at"] == (oldest.created_at.isoformat() if oldest else None)
    assert len(body["scheduler"]["jobs"]) == await SchedulerJob.all().count() > 0
    assert body["scheduler"]["last_run_seconds_ago"] >= 0
    running = await BillingRun.filter(status="running").values_list("id", flat=True)
    assert [run["id"] for run in body["billing_runs"]] == list(running)
    response = await client.get("/ops/v1/system")
    assert response.status == 401


async def test_a_broker_that_does_not_answer_is_shown_unreachable(aiohttp_client: Any, settings: Settings) -> None:
    """Page and JSON answer 200 and say the broker is unreachable; the database's half is still there."""
    from api.app import create_app

    down = settings.replace(broker_url="amqp://guest:guest@127.0.0.1:1/nowhere")
    client = await aiohttp_client(create_app(down, broker_probe=lambda: False))
    browser = await ops_signed_in(client, role="support")
    status, page = await browser.get("/ops/system")
    assert status == 200
    assert 'id="broker-unreachable"' in page
    assert 'id="outbox-backlog">0<' in page
    ops = OpsClient(client)
    status, body = await ops.get("/ops/v1/system")
    assert status == 200
    assert (body["broker"]["reachable"], body["broker"]["queues"]) == (False, [])


async def test_an_admin_inspects_and_requeues_a_dead_letter(client: Any, settings: Settings, dead_letter: str) -> None:
    """The letter shows its actor, args and id; requeue with a reason puts it back on payouts, one audit row."""
    admin = await ops_signed_in(client, role="admin")
    status, page = await admin.get("/ops/system/dead_letters/payouts")
    assert status == 200
    assert FAILS in page
    assert dead_letter in page
    assert "[42]" in page
    response = await admin.post(
        f"/ops/system/dead_letters/payouts/{dead_letter}/requeue", {"reason": "Fixed the payout bank code"}
    )
    assert response.status == 303
    assert response.headers["Location"] == f"/ops/system/dead_letters/payouts?requeued={dead_letter}"
    await _until(settings, dead=0, ready=1)  # moved, not copied: one in the queue, none dead
    [entry] = await AuditEntry.filter(action="dead_letter.requeued")
    assert entry.actor.startswith("staff:")
    assert (entry.target_type, entry.target_id) == ("message", dead_letter)
    assert entry.details == {"queue": "payouts", "reason": "Fixed the payout bank code", "actor": FAILS}
    status, page = await admin.get(f"/ops/system/dead_letters/payouts?requeued={dead_letter}&lang=en")
    assert status == 200
    assert f"Message {dead_letter} is back on its queue." in page
    assert "No dead letters." in page


async def test_support_cannot_see_or_requeue_dead_letters(client: Any, settings: Settings, dead_letter: str) -> None:
    """Support staff: 403 on the letters page and on a requeue POST; the letter stays dead, no audit row."""
    support = await ops_signed_in(client, role="support")
    status, _ = await support.get("/ops/system/dead_letters/payouts")
    assert status == 403
    response = await support.post(f"/ops/system/dead_letters/payouts/{dead_letter}/requeue", {"reason": "please"})
    assert response.status == 403
    now = await _depth(settings)
    assert (now.dead, now.ready) == (1, 0)
    assert await AuditEntry.filter(action="dead_letter.requeued").count() == 0


async def test_a_requeue_without_a_reason_or_of_a_missing_letter_changes_nothing(
    client: Any, settings: Settings, dead_letter: str
) -> None:
    """No reason: 400 naming it; an unknown message id: 404 naming it; an unknown queue: 404. Nothing moves."""
    admin = await ops_signed_in(client, role="admin")
    await admin.get("/ops/system/dead_letters/payouts?lang=en")
    response = await admin.post(f"/ops/system/dead_letters/payouts/{dead_letter}/requeue", {"reason": "  "})
    assert response.status == 400
    assert "Give a reason" in response.body_text
    response = await admin.post("/ops/system/dead_letters/payouts/no-such-id/requeue", {"reason": "try"})
    assert response.status == 404
    assert "no longer in the dead-letter queue" in response.body_text
    status, _ = await admin.get("/ops/system/dead_letters/nosuchqueue")
    assert status == 404
    now = await _depth(settings)
    assert (now.dead, now.ready) == (1, 0)
    assert await AuditEntry.filter(action="dead_letter.requeued").count() == 0


async def test_the_ops_api_lists_and_requeues_a_dead_letter(
    ops: OpsClient, settings: Settings, dead_letter: str
) -> None:
    """GET lists the letter; POST requeue with a reason moves it back and is audited as the ops token."""
    status, listing = await ops.get("/ops/v1/system/dead_letters/payouts")
    assert status == 200
    assert [(d["message_id"], d["actor"], d["args"]) for d in listing["data"]] == [(dead_letter, FAILS, [42])]
    status, body = await ops.post(f"/ops/v1/system/dead_letters/payouts/{dead_letter}/requeue", json={})
    assert status == 400
    status, body = await ops.post(
        f"/ops/v1/system/dead_letters/payouts/{dead_letter}/requeue", json={"reason": "bank fixed"}
    )
    assert status == 200, body
    assert body["message_id"] == dead_letter
    await _until(settings, dead=0, ready=1)
    [entry] = await AuditEntry.filter(action="dead_letter.requeued")
    assert entry.actor == "ops_token"
