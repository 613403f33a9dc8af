"""Prometheus metrics: ``/metrics`` of the web process (requests by route pattern and status,
latency, confirmations by result, queue depths read at scrape time), the relay's series, and
Dramatiq's own series served by a worker process."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import unused_port
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families
from vitals_support import FAILS, QUEUE, always_fails

import queues
from conftest import OpsClient
from models.outbox import OutboxMessage, send
from settings import Settings
from tests_support import buy, open_shop

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def parse(text: str) -> dict[str, Any]:
    """Every family of a Prometheus exposition, by name (parsing fails on a malformed one)."""
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Any], sample: str, **labels: str) -> float | None:
    """The value of the sample ``sample`` whose labels include ``labels``; None if absent."""
    for family in families.values():
        for found in family.samples:
            if found.name == sample and labels.items() <= found.labels.items():
                return float(found.value)
    return None


async def scrape(client: Any) -> dict[str, Any]:
    """GET /metrics of the test app, parsed."""
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    return parse(await response.text())


async def test_the_web_process_metrics_parse_and_carry_the_named_series(
    client: Any, ops: OpsClient, settings: Settings, worker: Any
) -> None:
    """Requests by route and status, latency, a confirmation by result and every queue's depth, parsed."""
    shop = await open_shop(ops)
    await buy(client, settings, shop, amount=500)
    families = await scrape(client)
    assert value(families, "matomete_http_requests_total", route="/v1/charges", method="POST", status="201") >= 1
    assert value(families, "matomete_http_request_duration_seconds_count", route="/v1/charges") >= 1
    assert families["matomete_http_request_duration_seconds"].type == "histogram"
    assert value(families, "matomete_confirmations_decided_total", result="succeeded") >= 1
    assert value(families, "matomete_broker_up") == 1
    for name in queues.QUEUES:
        assert value(families, "matomete_queue_messages_ready", queue=name) is not None
        assert value(families, "matomete_queue_consumers", queue=name) is not None
        assert value(families, "matomete_queue_dead_letters", queue=name) is not None
    assert value(families, "matomete_outbox_backlog") == 0
    assert value(families, "matomete_billing_runs_running") == 0
    assert "dramatiq_messages" in families  # the in-process worker's own series


async def test_requests_are_labelled_by_route_pattern_never_by_path(client: Any, ops: OpsClient) -> None:
    """Two ids, one series: the label is the pattern; an unknown path is '(unmatched)'; no id or token leaks."""
    await ops.get("/ops/v1/billing/runs/run_secretish1")
    await ops.get("/ops/v1/billing/runs/run_secretish2")
    await client.get("/confirm/tok_bearer_secret")
    await client.get("/no/such/page/abc123")
    text = await (await client.get("/metrics")).text()
    families = parse(text)
    assert value(families, "matomete_http_requests_total", route="/ops/v1/billing/runs/{id}", status="404") >= 2
    assert value(families, "matomete_http_requests_total", route="/confirm/{token}") >= 1
    assert value(families, "matomete_http_requests_total", route="(unmatched)", status="404") >= 1
    for secret in ("run_secretish", "tok_bearer_secret", "abc123"):
        assert secret not in text


async def test_metrics_answer_with_the_broker_down(aiohttp_client: Any, settings: Settings) -> None:
    """No broker: /metrics still answers 200, broker_up 0 and no made-up queue depth."""
    from api.app import create_app

    down = settings.replace(broker_url="amqp://guest:guest@127.0.0.1:1/nowhere")
    client = await aiohttp_client(create_app(down, broker_probe=lambda: False))
    families = await scrape(client)
    assert value(families, "matomete_broker_up") == 0
    assert value(families, "matomete_queue_messages_ready", queue="auth") is None
    assert value(families, "matomete_outbox_backlog") == 0


async def test_the_relay_counts_what_it_publishes_and_its_backlog(db: Settings) -> None:
    """Three outbox rows relayed: the published counter rises by three, a batch is timed, the backlog ends at 0."""
    queues.declare_queues()
    before = REGISTRY.get_sample_value("matomete_relay_messages_published_total") or 0
    batches = REGISTRY.get_sample_value("matomete_relay_batch_seconds_count") or 0
    for number in range(3):
        await send(queues.broker.get_actor("vitals_noop"), number)
    publisher = queues.publisher_for(db)
    stop = asyncio.Event()
    relay = asyncio.create_task(queues.relay_forever(publisher, stop=stop, backlog_every=0.05))
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while await OutboxMessage.filter(sent_at=None).exists() or (
            REGISTRY.get_sample_value("matomete_relay_backlog") != 0
        ):
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await relay
        close = getattr(publisher, "close", None)
        if close is not None:
            await close()
    assert REGISTRY.get_sample_value("matomete_relay_messages_published_total") == before + 3
    assert REGISTRY.get_sample_value("matomete_relay_batch_seconds_count") >= batches + 1
    queues.broker.flush_all()


def _fetch(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own local port
            return response.read().decode()
    except OSError:
        return None


def _start(command: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    with log.open("wb") as sink:
        return subprocess.Popen(  # noqa: S603 - our own entry points
            command, cwd=ROOT, env={**os.environ, **env}, stdout=sink, stderr=subprocess.STDOUT
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.mark.services
async def test_a_worker_process_serves_dramatiq_series_with_the_failed_actor(
    settings: Settings, tmp_path: Path
) -> None:
    """`dramatiq queues workers` serves its own /metrics: the failing actor's message is counted failed and rejected."""
    queues.declare_queues()
    queues.broker.flush_all()
    port = unused_port()
    log = tmp_path / "worker.log"
    command = [str(BIN / "dramatiq"), "queues", "workers", "vitals_support", "--path", "tests", "--queues", QUEUE]
    worker = _start(
        [*command, "--processes", "1", "--threads", "1"],
        log,
        dramatiq_prom_port=str(port),
        dramatiq_prom_db=str(tmp_path / "prometheus"),
        dramatiq_prom_host="127.0.0.1",
    )
    try:
        always_fails.send(7)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 60
        labels = {"queue_name": QUEUE, "actor_name": FAILS}
        while True:
            text = await loop.run_in_executor(None, _fetch, f"http://127.0.0.1:{port}/metrics")
            families = parse(text) if text else {}
            if value(families, "dramatiq_message_errors_total", **labels) == 1:
                break
            assert worker.poll() is None, log.read_text()[-3000:]
            assert loop.time() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.2)
        assert value(families, "dramatiq_messages_total", **labels) == 1
        assert value(families, "dramatiq_message_rejects_total", **labels) == 1
        assert value(families, "dramatiq_message_duration_milliseconds_count", **labels) == 1
        state = await queues.read_broker(settings)
        assert next(q for q in state.queues if q.name == QUEUE).dead == 1
    finally:
        _stop(worker)


@pytest.mark.services
async def test_the_relay_process_serves_its_series(db: Settings, tmp_path: Path) -> None:
    """`matomete relay` serves /metrics on MATOMETE_RELAY_METRICS_PORT: published messages and a backlog of 0."""
    queues.declare_queues()
    queues.broker.flush_all()
    await send(queues.broker.get_actor("vitals_noop"), 1)
    port = unused_port()
    log = tmp_path / "relay.log"
    relay = _start([str(BIN / "matomete"), "relay"], log, MATOMETE_RELAY_METRICS_PORT=str(port))
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            text = await loop.run_in_executor(None, _fetch, f"http://127.0.0.1:{port}/metrics")
            families = parse(text) if text else {}
            if value(families, "matomete_relay_messages_published_total") == 1 and (
                value(families, "matomete_relay_backlog") == 0
            ):
                break
            assert relay.poll() is None, log.read_text()[-3000:]
            assert loop.time() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.2)
        assert value(families, "matomete_relay_batch_seconds_count") >= 1
    finally:
        _stop(relay)
    queues.broker.flush_all()


@pytest.mark.services
async def test_the_auth_worker_process_counts_confirmations_by_result(
    client: Any, ops: OpsClient, settings: Settings, tmp_path: Path
) -> None:
    """A purchase decided by a separate `auth` worker process shows as succeeded on that worker's /metrics."""
    queues.declare_queues()
    queues.broker.flush_all()
    shop = await open_shop(ops)
    port = unused_port()
    log = tmp_path / "auth.log"
    worker = _start(
        [str(BIN / "dramatiq"), "queues", "workers", "--queues", "auth", "--processes", "1", "--threads", "2"],
        log,
        dramatiq_prom_port=str(port),
        dramatiq_prom_db=str(tmp_path / "prometheus"),
        dramatiq_prom_host="127.0.0.1",
        MATOMETE_SECRET_KEY=settings.secret_key,
        MATOMETE_TEST_CLOCK="1",
    )
    try:
        await buy(client, settings, shop, amount=300)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 20
        while True:  # the message is counted just after the actor returns: poll a moment
            text = await loop.run_in_executor(None, _fetch, f"http://127.0.0.1:{port}/metrics")
            families = parse(text) if text else {}
            if value(families, "dramatiq_messages_total", actor_name="verify_purchase") == 1:
                break
            assert loop.time() < deadline, log.read_text()[-3000:]
            await asyncio.sleep(0.2)
        assert value(families, "matomete_confirmations_decided_total", result="succeeded") == 1
    finally:
        _stop(worker)
