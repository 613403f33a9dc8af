"""The split deployment as the Procfile runs it: `matomete relay` and a `dramatiq queues workers`
process per queue, on PostgreSQL and RabbitMQ, each stopping cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import queues
from conftest import OpsClient
from models.clock import clock
from models.merchants import Merchant
from models.outbox import OutboxMessage
from models.subscriptions import Subscription, SubscriptionStatus
from tests_support import MERCHANT_BODY, line_body

pytestmark = pytest.mark.services
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
LINE_ID = "COP0000000601"


def _start(*command: str, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "MATOMETE_LOG_FORMAT": "json"}
    with log.open("wb") as sink:
        return subprocess.Popen(command, cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT)  # noqa: S603


def _stop(process: subprocess.Popen[bytes], log: Path) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"{process.args} ignored SIGTERM:\n{log.read_text()[-2000:]}")


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
