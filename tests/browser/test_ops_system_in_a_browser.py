"""The console's system page in a real browser (Debian's Chromium): an admin watches a queue
deepen while its worker process is stopped and drain once it restarts (real RabbitMQ)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import unused_port
from browser_support import chromium, needs_chromium, screenshot
from sites_support import staff_member
from vitals_support import FAILS, QUEUE, always_fails, does_nothing

import queues
from settings import Settings

pytestmark = needs_chromium
ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
MESSAGES = 25


def _worker(log: Path) -> subprocess.Popen[bytes]:
    """A worker process of the payouts queue, as the Procfile runs one (with the test actors)."""
    command = [str(BIN / "dramatiq"), "queues", "workers", "vitals_support", "--path", "tests", "--queues", QUEUE]
    env = {**os.environ, "dramatiq_prom_port": str(unused_port()), "dramatiq_prom_db": str(log.parent / "prom")}
    with log.open("ab") as sink:
        return subprocess.Popen(  # noqa: S603 - our own entry point
            [*command, "--processes", "1", "--threads", "2"], cwd=ROOT, env=env, stdout=sink, stderr=subprocess.STDOUT
        )


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


async def _row(page: Any, base: str) -> tuple[str, str]:
    """Reload /ops/system; the payouts row's ready and consumers cells."""
    await page.goto(f"{base}/ops/system")
    row = page.locator(f"#queue-{QUEUE}")
    return (await row.locator("td.ready").inner_text()).strip(), (
        await row.locator("td.consumers").inner_text()
    ).strip()


async def _until(page: Any, base: str, wanted: tuple[str, str], *, deadline: float = 30) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while (seen := await _row(page, base)) != wanted:
        assert loop.time() < end, f"the page shows {seen}, not {wanted}"
        await asyncio.sleep(0.5)


@pytest.mark.services
async def test_an_admin_watches_a_queue_rise_while_its_worker_is_stopped_and_fall_after_it_restarts(
    aiohttp_server: Any, settings: Settings, tmp_path: Path
) -> None:
    """Worker up: 0 ready, 1 consumer; worker stopped: 25 ready, 0 consumers; restarted: 0 ready again."""
    from api.app import create_app

    queues.declare_queues()
    queues.broker.flush_all()
    port = unused_port()
    await aiohttp_server(create_app(settings.replace(public_url=f"http://127.0.0.1:{port}")), port=port)
    base = f"http://127.0.0.1:{port}"
    email, password = await staff_member("admin")
    log = tmp_path / "worker.log"
    worker = _worker(log)
    try:
        async with chromium(locale="en-US") as context:
            page = await context.new_page()
            await page.goto(f"{base}/ops/login?lang=en")
            await page.fill("#email", email)
            await page.fill("#password", password)
            await page.click("button[type=submit].primary")
            await page.wait_for_url(f"{base}/ops")
            await _until(page, base, ("0", "1"))
            _stop(worker)
            for number in range(MESSAGES):
                does_nothing.send(number)
            await _until(page, base, (str(MESSAGES), "0"))
            stopped = await screenshot(page, "ops-system-worker-stopped")
            worker = _worker(log)
            await _until(page, base, ("0", "1"))
            restarted = await screenshot(page, "ops-system-worker-restarted")
    finally:
        _stop(worker)
    assert stopped.exists()
    assert restarted.exists()


async def test_an_admin_inspects_a_dead_letter_and_requeues_it_with_a_reason(
    aiohttp_server: Any, settings: Settings
) -> None:
    """The dead-letter count links to the letter (actor, args, failure); requeue with a reason empties the list."""
    from api.app import create_app
    from models.audit_log import AuditEntry

    queues.declare_queues()
    queues.broker.flush_all()
    loop = asyncio.get_running_loop()
    worker = queues.start_worker(loop, settings=settings, queues=[QUEUE], threads=1)
    try:
        message = always_fails.send(7)
        end = loop.time() + 20
        while next(q for q in (await queues.read_broker(settings)).queues if q.name == QUEUE).dead != 1:
            assert loop.time() < end, "no dead letter"
            await asyncio.sleep(0.1)
    finally:
        await loop.run_in_executor(None, worker.stop)
    port = unused_port()
    await aiohttp_server(create_app(settings.replace(public_url=f"http://127.0.0.1:{port}")), port=port)
    base = f"http://127.0.0.1:{port}"
    email, password = await staff_member("admin")
    async with chromium() as context:
        page = await context.new_page()
        await page.goto(f"{base}/ops/login")
        await page.fill("#email", email)
        await page.fill("#password", password)
        await page.click("button[type=submit].primary")
        await page.wait_for_url(f"{base}/ops")
        await page.goto(f"{base}/ops/system")
        await page.click(f"#queue-{QUEUE} td.dead a")
        await page.wait_for_url(f"{base}/ops/system/dead_letters/{QUEUE}")
        letter = page.locator(f"#letter-{message.message_id}")
        assert FAILS in await letter.inner_text()
        if await letter.locator("summary").count():  # Dramatiq kept a traceback (the in-process broker does)
            await letter.locator("summary").click()
        await screenshot(page, "ops-dead-letter")
        await letter.locator("input[name=reason]").fill("The payout bank code is fixed")
        await letter.locator("button[type=submit]").click()
        await page.wait_for_url(f"{base}/ops/system/dead_letters/{QUEUE}?requeued={message.message_id}")
        assert await page.locator(".dead-letter").count() == 0
        await screenshot(page, "ops-dead-letter-requeued")
    assert await AuditEntry.filter(action="dead_letter.requeued", target_id=message.message_id).count() == 1
    queues.broker.flush_all()
