"""Every message delivered twice and out of order changes nothing: the fault scenario ends with
the same invoices, payouts and delivered events as a plain run of the same seed."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import random
from collections.abc import AsyncIterator
from typing import Any

import pytest
from chaos import DuplicateAndReorder
from fault_scenario import (
    STARTS_AT,
    Cast,
    Figures,
    Receiver,
    Story,
    figures,
    provision,
    run_story,
    serve_receiver,
    settled,
)
from platforms import InProcess

import queues
from conftest import OPS_TOKEN, empty_database
from models.invariants import run_audit
from settings import Settings

# The in-process broker is the one whose enqueue the relay calls (RabbitMQ is published to
# directly), so the middleware sees every message there.
pytestmark = [pytest.mark.embedded, pytest.mark.faults]
PURCHASES = int(os.environ.get("MATOMETE_CHAOS_PURCHASES", "8"))


@pytest.fixture
async def platform_server(aiohttp_server: Any, settings: Settings) -> AsyncIterator[tuple[Any, Settings]]:
    """The app on a real local port, webhooks allowed to this machine, 127.0.0.1 a trusted proxy,
    and an in-process worker with the same settings."""
    from api.app import create_app

    chaotic = settings.replace(
        webhooks_allow_insecure=True,
        trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
        # The story is played twice within a minute by the same IDs: duplicates, not guessing, are tested.
        rate_limit_sign_in_login="1000/minute",
        rate_limit_sign_in_address="1000/minute",
    )
    import workers  # noqa: F401 - declares the actors

    forget_earlier_tests()
    server = await aiohttp_server(create_app(chaotic))
    worker = queues.start_worker(asyncio.get_running_loop(), settings=chaotic, threads=4)
    yield server, chaotic
    await asyncio.get_running_loop().run_in_executor(None, worker.stop)


def forget_earlier_tests() -> None:
    """Empty the in-process queues and forget messages that workers of earlier tests took and
    never finished (stopped mid-message): ``join`` would wait for them forever."""
    queues.broker.flush_all()
    for queue in queues.broker.queues.values():
        queue.unfinished_tasks = queue.qsize()  # no worker runs now: nobody else counts


def drain() -> None:
    """Wait until every queue, delayed copies included, is empty and its messages done."""
    for name in queues.QUEUES:
        queues.broker.join(name, timeout=30_000)


async def play(server: Any, settings: Settings, seed: int) -> Figures:
    """One run of the scenario of ``seed`` on an emptied database; its figures."""
    receiver = Receiver()
    runner, port = await serve_receiver(receiver)
    platform = InProcess(str(server.make_url("")), settings, OPS_TOKEN)
    try:
        cast = Cast(OPS_TOKEN)
        story = Story.draw(seed, PURCHASES)
        await platform.move_clock(STARTS_AT)
        await provision(platform, cast, story, f"http://127.0.0.1:{port}/hooks", receiver)
        await run_story(platform, cast, story, concurrency=1)
        await platform.until(lambda: settled(platform), what="a settled platform")
        await asyncio.get_running_loop().run_in_executor(None, drain)
        return await figures(platform, cast, receiver)
    finally:
        await platform.close()
        await runner.cleanup()


async def test_duplicated_and_reordered_messages_end_as_a_plain_run(
    platform_server: tuple[Any, Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    """With each message delivered twice, out of order, the figures equal the plain run's; audit clean."""
    server, settings = platform_server
    seed = int(os.environ.get("MATOMETE_FAULT_SEED") or random.randrange(2**32))
    print(f"duplicate-and-reorder seed: {seed} (MATOMETE_FAULT_SEED={seed} repeats it)")  # noqa: T201 - shown on a failure
    plain = await play(server, settings, seed)
    empty_database(settings.database_url)
    forget_earlier_tests()
    chaos = DuplicateAndReorder(seed=seed)
    queues.broker.add_middleware(chaos)
    try:
        doubled = await play(server, settings, seed)
        audit = [(check.name, check.breaks) for check in await run_audit() if not check.ok]
    finally:
        queues.broker.middleware.remove(chaos)
    with capsys.disabled():
        print(  # noqa: T201 - the figures the issue asks for
            f"\nduplicate-and-reorder: seed {seed}, {PURCHASES} purchases, {chaos.copies} messages delivered twice, "
            f"{doubled.counts['events']} events, audit {audit or 'clean'}"
        )
    assert chaos.copies > 0
    assert doubled.invoices == plain.invoices
    assert doubled.payouts == plain.payouts
    assert doubled.events == plain.events
    assert doubled.delivered == plain.delivered
    assert sorted(doubled.delivered, key=repr) == doubled.events
    assert audit == []
