"""The split deployment as the Procfile runs it: `matomete relay` and a `dramatiq queues workers`
process per queue, on PostgreSQL and RabbitMQ, each stopping cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from process_support import BIN
from process_support import start_process as _start
from process_support import stop_process as _stop

import queues
from conftest import OpsClient
from models.clock import clock
from models.merchants import Merchant
from models.outbox import OutboxMessage
from models.subscriptions import Subscription, SubscriptionStatus
from settings import Settings
from tests_support import MERCHANT_BODY, line_body

pytestmark = pytest.mark.services
LINE_ID = "COP0000000601"


async def test_relay_and_worker_processes_carry_a_termination_through(ops: OpsClient, tmp_path: Path) -> None:
    """A line terminated through the API has its subscription canceled by the separate processes."""
    queues.declare_queues()
    queues.broker.flush_all()
    await ops.post("/ops/v1/lines", json=line_body(LINE_ID))
    _, merchant = await ops.post("/ops/v1/merchants", json=MERCHANT_BODY)
    subscription = await Subscription.create(
        merchant=await Merchant.get(id=merchant["id"]),
        line_id=LINE_ID,
        amount=980,
        description="音楽聴き放題",
        status=SubscriptionStatus.ACTIVE,
        current_period="2026-11",
        created_at=await clock.now(),
    )
    await ops.patch(f"/ops/v1/lines/{LINE_ID}", json={"status": "terminated"})
    relay_log, worker_log = tmp_path / "relay.log", tmp_path / "worker.log"
    relay = _start(str(BIN / "matomete"), "relay", log=relay_log)
    worker = _start(
        str(BIN / "dramatiq"),
        "queues",
        "workers",
        "--queues",
        "charges",
        "--processes",
        "1",
        "--threads",
        "2",
        log=worker_log,
    )
    try:
        deadline = asyncio.get_running_loop().time() + 60
        while (await Subscription.get(id=subscription.id)).status != SubscriptionStatus.CANCELED:
            assert relay.poll() is None, relay_log.read_text()
            assert worker.poll() is None, worker_log.read_text()
            assert asyncio.get_running_loop().time() < deadline, worker_log.read_text()[-3000:]
            await asyncio.sleep(0.2)
        assert await OutboxMessage.filter(sent_at=None).count() == 0
    finally:
        relay_code = _stop(relay, relay_log)
        worker_code = _stop(worker, worker_log)
    assert relay_code == 0
    assert worker_code == 0
    assert '"event": "line_subscriptions_canceled"' in worker_log.read_text()


@dataclass
class HeldReceiver:
    """A receiver that verifies, and holds its first request open (so a worker can die mid-request)."""

    port: int
    secret: str = ""
    arrived: list[str] = field(default_factory=list)
    first_arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    async def hook(self, request: Any) -> Any:
        """Verify with standardwebhooks; hang on the first request."""
        from aiohttp import web
        from standardwebhooks.webhooks import Webhook

        Webhook(self.secret).verify(await request.text(), {k.lower(): v for k, v in request.headers.items()})
        self.arrived.append(request.headers["webhook-id"])
        if len(self.arrived) == 1:
            self.first_arrived.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.release.wait(), 60)
        return web.Response(status=200)


@pytest.fixture
async def held_receiver() -> AsyncIterator[HeldReceiver]:
    """A running HeldReceiver on a free port."""
    from aiohttp import web
    from aiohttp.test_utils import unused_port

    receiver = HeldReceiver(port=unused_port())
    app = web.Application()
    app.router.add_post("/hooks", receiver.hook)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", receiver.port).start()
    yield receiver
    receiver.release.set()
    await runner.cleanup()


@pytest.fixture
def insecure_webhooks(settings: Settings) -> Iterator[Settings]:
    """Webhooks may go to this machine, in the test app and in the worker processes it starts."""
    os.environ["MATOMETE_WEBHOOKS_ALLOW_INSECURE"] = "1"
    yield settings.replace(webhooks_allow_insecure=True)
    os.environ.pop("MATOMETE_WEBHOOKS_ALLOW_INSECURE", None)


async def test_killing_the_webhooks_worker_mid_delivery_loses_nothing(
    aiohttp_client: Any, insecure_webhooks: Settings, held_receiver: HeldReceiver, tmp_path: Path
) -> None:
    """SIGKILL while the receiver holds the request open; a new worker delivers it, same webhook-id."""
    from tortoise.transactions import in_transaction

    from api.app import create_app
    from models.events import Event, WebhookDelivery
    from workers.scheduler import run_due_jobs

    queues.declare_queues()
    queues.broker.flush_all()
    ops = OpsClient(await aiohttp_client(create_app(insecure_webhooks)))
    _, merchant = await ops.post("/ops/v1/merchants", json=MERCHANT_BODY)
    response = await ops.client.post(
        "/v1/webhook_endpoints",
        headers={"Authorization": f"Bearer {merchant['api_key']}"},
        json={"url": f"http://127.0.0.1:{held_receiver.port}/hooks", "events": ["*"]},
    )
    held_receiver.secret = (await response.json())["secret"]
    async with in_transaction():
        await Event.record("payout.paid", merchant_id=merchant["id"], obj={"id": "po_killed", "object": "payout"})
    relay_log, first_log, second_log = tmp_path / "relay.log", tmp_path / "worker1.log", tmp_path / "worker2.log"
    worker_command = (str(BIN / "dramatiq"), "queues", "workers", "--queues", "webhooks", "--processes", "1")
    relay = _start(str(BIN / "matomete"), "relay", log=relay_log)
    try:
        doomed = _start(*worker_command, "--threads", "1", log=first_log, session=True)
        await asyncio.wait_for(held_receiver.first_arrived.wait(), 60)
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=10)
        delivery = await WebhookDelivery.get()
        assert delivery.status == "pending"  # the attempt was claimed, never recorded
        await clock.move_to(await clock.now() + timedelta(minutes=3))  # past the claim's lease
        await run_due_jobs()
        survivor = _start(*worker_command, "--threads", "2", log=second_log)
        try:
            deadline = asyncio.get_running_loop().time() + 60
            while (await WebhookDelivery.get()).status != "delivered":
                assert asyncio.get_running_loop().time() < deadline, second_log.read_text()[-3000:]
                await asyncio.sleep(0.2)
        finally:
            _stop(survivor, second_log)
    finally:
        _stop(relay, relay_log)
    assert len(held_receiver.arrived) >= 2
    assert set(held_receiver.arrived) == {delivery.id}


async def test_killing_the_billing_worker_mid_close_ends_with_the_same_invoices(ops: OpsClient, tmp_path: Path) -> None:
    """SIGKILL of the billing worker half-way through a close, then a restart: one invoice per line, exact totals."""
    from datetime import UTC, datetime

    from tortoise import connections

    from models.invoices import BillingRun, Invoice, InvoiceItem

    lines = 4000
    await clock.move_to(datetime.fromisoformat("2031-03-01T00:10:00+09:00"))
    created = datetime(2031, 1, 5, tzinfo=UTC)
    await connections.get("default").execute_many(
        "INSERT INTO lines (line_id, line_type, flets_dot_net, holder_name, base_monthly_fee, status, monthly_limit, "
        "created_at, updated_at) VALUES ($1, 'hikari_next', false, 'x', $2, 'active', 100000, $3, $3)",
        [[f"COP{n:010d}", 1000 + n, created] for n in range(lines)],
    )
    queues.declare_queues()
    queues.broker.flush_all()
    env_size = {"MATOMETE_BILLING_BATCH_LINES": "50"}
    os.environ.update(env_size)
    relay_log, first_log, second_log = tmp_path / "relay.log", tmp_path / "billing1.log", tmp_path / "billing2.log"
    command = (str(BIN / "dramatiq"), "queues", "workers", "--queues", "billing", "--processes", "1", "--threads", "1")
    relay = _start(str(BIN / "matomete"), "relay", log=relay_log)
    try:
        doomed = _start(*command, log=first_log, session=True)
        status, run = await ops.post("/ops/v1/billing/close", json={"period": "2031-02"})
        assert status == 202
        deadline = asyncio.get_running_loop().time() + 120
        while (current := await BillingRun.get(id=run["id"])).batches_done < 10:
            assert asyncio.get_running_loop().time() < deadline, first_log.read_text()[-2000:]
            await asyncio.sleep(0.05)
        os.killpg(doomed.pid, signal.SIGKILL)
        doomed.wait(timeout=10)
        current = await BillingRun.get(id=run["id"])
        assert current.status == "running"
        assert current.batches_done < current.batches_total == lines // 50
        survivor = _start(*command, log=second_log)
        try:
            while (current := await BillingRun.get(id=run["id"])).status == "running":
                assert asyncio.get_running_loop().time() < deadline, second_log.read_text()[-2000:]
                await asyncio.sleep(0.2)
        finally:
            _stop(survivor, second_log)
    finally:
        for name in env_size:
            os.environ.pop(name, None)
        _stop(relay, relay_log)
    expected_total = sum(1000 + n for n in range(lines))
    assert (current.status, current.batches_done, current.invoices, current.total_billed) == (
        "succeeded",
        lines // 50,
        lines,
        expected_total,
    )
    assert await Invoice.filter(period="2031-02").count() == lines
    assert await InvoiceItem.all().count() == lines
    rows = await connections.get("default").execute_query_dict(
        "SELECT COUNT(*) AS n FROM invoices i JOIN lines l ON l.line_id = i.line_id WHERE i.total <> l.base_monthly_fee"
    )
    assert rows[0]["n"] == 0
