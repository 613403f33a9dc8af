"""The vital signs: queue depths, consumers and dead letters read from the broker (RabbitMQ or
the in-process one), the scheduler's record of each job, and dead letters inspected and requeued."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from vitals_support import FAILS, NOOP, QUEUE, always_fails, does_nothing

import queues
from conftest import BACKEND, REQUIRE_SERVICES
from models.scheduler_jobs import SchedulerJob
from settings import Settings
from workers.scheduler import Job, run_due_jobs

MANAGEMENT_URL = "http://guest:guest@127.0.0.1:15672"


async def eventually(check: Callable[[], Awaitable[Any]], *, deadline: float = 20, what: str = "") -> Any:
    """Poll ``check`` until it answers something truthy; fail at the deadline."""
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    while not (answer := await check()):
        assert loop.time() < end, f"not in {deadline} s: {what}"
        await asyncio.sleep(0.1)
    return answer


async def depth(settings: Settings, queue: str = QUEUE) -> queues.QueueDepth:
    """The queue's depth as the vital signs read it."""
    state = await queues.read_broker(settings)
    assert state.reachable, state.problem
    return next(q for q in state.queues if q.name == queue)


def _answers(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def test_every_job_of_a_pass_is_recorded_and_a_failure_counted(db: Settings) -> None:
    """One row per job: the count done, the error and failures in a row for a failing one, reset by a success."""
    calls = {"n": 0}

    async def flaky(_now: object) -> int:
        calls["n"] += 1
        if calls["n"] < 3:
            raise RuntimeError("database went away")
        return 4

    async def fine(_now: object) -> int:
        return 7

    jobs = [Job("flaky", flaky), Job("fine", fine)]
    assert await run_due_jobs(jobs) == {"fine": 7}
    await run_due_jobs(jobs)
    flaky_row, fine_row = await SchedulerJob.get(name="flaky"), await SchedulerJob.get(name="fine")
    assert (flaky_row.failures, flaky_row.last_done, flaky_row.last_ok_at) == (2, 0, None)
    assert flaky_row.last_error == "RuntimeError: database went away"
    assert (fine_row.failures, fine_row.last_done, fine_row.last_error) == (0, 7, None)
    assert fine_row.last_ok_at == fine_row.last_run_at
    assert await run_due_jobs(jobs) == {"flaky": 4, "fine": 7}
    flaky_row = await SchedulerJob.get(name="flaky")
    assert (flaky_row.failures, flaky_row.last_done, flaky_row.last_error) == (0, 4, None)
    assert await SchedulerJob.all().count() == 2


async def test_the_real_jobs_are_recorded_in_one_pass(db: Settings) -> None:
    """A pass over the scheduler's own jobs leaves one row for each, all succeeded."""
    from workers.scheduler import JOBS

    await run_due_jobs()
    rows = await SchedulerJob.all()
    assert sorted(row.name for row in rows) == sorted(job.name for job in JOBS)
    assert all(row.failures == 0 and row.last_ok_at is not None for row in rows)


async def test_every_queue_is_read_with_its_source(settings: Settings) -> None:
    """Each platform queue has counts; RabbitMQ over AMQP leaves unacknowledged unknown, in-process knows it."""
    queues.declare_queues()
    state = await queues.read_broker(settings)
    assert state.reachable
    assert [q.name for q in state.queues] == list(queues.QUEUES)
    if BACKEND == "services":
        assert state.source == "amqp"
        assert all(q.unacked is None and q.ready is not None and q.dead is not None for q in state.queues)
    else:
        assert state.source == "in-process"
        assert all(q.unacked == 0 for q in state.queues)


async def test_an_unreachable_broker_is_reported_not_raised(settings: Settings) -> None:
    """A broker that does not answer gives reachable False and the reason, within the timeout."""
    down = settings.replace(broker_url="amqp://guest:guest@127.0.0.1:1/nowhere")
    state = await asyncio.wait_for(queues.read_broker(down), 10)
    assert (state.reachable, state.queues) == (False, ())
    assert state.problem


@pytest.mark.services
async def test_an_unanswering_management_api_falls_back_to_amqp(settings: Settings) -> None:
    """A management URL nobody answers on: the depths still come, over AMQP, and the page is told why."""
    queues.declare_queues()
    state = await queues.read_broker(settings.replace(rabbitmq_management_url="http://guest:guest@127.0.0.1:1"))
    assert (state.reachable, state.source) == (True, "amqp")
    assert state.problem is not None
    assert state.problem.startswith("management API")


@pytest.mark.services
async def test_the_management_api_gives_unacknowledged_counts(settings: Settings) -> None:
    """With the management plugin on (.ci/run enables it), every count is known, unacknowledged too."""
    if not _answers(15672):
        if REQUIRE_SERVICES:
            pytest.fail("the RabbitMQ management plugin does not answer on 15672")
        pytest.skip("the RabbitMQ management plugin is not enabled (rabbitmq-plugins enable rabbitmq_management)")
    queues.declare_queues()
    state = await queues.read_broker(settings.replace(rabbitmq_management_url=MANAGEMENT_URL))
    assert (state.reachable, state.source, state.problem) == (True, "management", None)
    assert all(q.unacked is not None and q.consumers is not None and q.dead is not None for q in state.queues)


async def test_a_failing_actor_lands_in_the_dead_letter_count_and_the_failed_counter(
    settings: Settings, worker: Any
) -> None:
    """An actor that always raises (no retries): its message is a dead letter, counted as failed and rejected."""
    from prometheus_client import REGISTRY

    labels = {"queue_name": QUEUE, "actor_name": FAILS}
    failed_before = REGISTRY.get_sample_value("dramatiq_message_errors_total", labels) or 0
    always_fails.send(1)

    async def dead() -> bool:
        return (await depth(settings)).dead == 1

    await eventually(dead, what="the dead letter")
    assert REGISTRY.get_sample_value("dramatiq_message_errors_total", labels) == failed_before + 1
    assert (REGISTRY.get_sample_value("dramatiq_message_rejects_total", labels) or 0) >= 1
    letters = await queues.dead_letters(settings, QUEUE)
    assert [(letter.actor, letter.args) for letter in letters] == [(FAILS, (1,))]
    assert (await depth(settings)).dead == 1  # looking leaves it where it was


async def test_a_requeued_dead_letter_runs_again_once_and_leaves_the_dead_letter_queue(
    settings: Settings, worker: Any
) -> None:
    """Requeue moves the message back (same id): it fails again into the dead letters, one copy, never two."""
    message = always_fails.send(2)
    await eventually(lambda: _dead_count(settings, 1), what="the first dead letter")
    [letter] = await queues.dead_letters(settings, QUEUE)
    assert letter.message_id == message.message_id
    requeued = await queues.requeue_dead_letter(settings, QUEUE, message.message_id)
    assert requeued is not None
    assert requeued.actor == FAILS
    # It ran again (and failed again): exactly one copy is back in the dead letters, none in the queue.
    await eventually(lambda: _dead_count(settings, 1), what="the requeued message failing again")
    after = await depth(settings)
    assert after.ready == 0
    [again] = await queues.dead_letters(settings, QUEUE)
    assert again.message_id == message.message_id
    assert await queues.requeue_dead_letter(settings, QUEUE, "no-such-message") is None


async def _dead_count(settings: Settings, count: int) -> bool:
    return (await depth(settings)).dead == count


@pytest.mark.services
async def test_a_queue_deepens_without_a_worker_and_drains_when_one_starts(settings: Settings) -> None:
    """Ten messages and no consumer: ready rises to 10; a worker starts and ready falls to 0 with a consumer."""
    queues.declare_queues()
    queues.broker.flush_all()
    for number in range(10):
        does_nothing.send(number)
    assert (await depth(settings)).ready == 10
    assert (await depth(settings)).consumers == 0
    loop = asyncio.get_running_loop()
    started = queues.start_worker(loop, settings=settings, queues=[QUEUE], threads=2)
    try:

        async def drained() -> queues.QueueDepth | None:
            now = await depth(settings)
            return now if now.ready == 0 and now.consumers else None

        now = await eventually(drained, what="the queue draining")
        assert now.consumers >= 1
    finally:
        await loop.run_in_executor(None, started.stop)
    assert NOOP in queues.broker.get_declared_actors()


def test_the_vital_sign_settings_are_read_and_checked() -> None:
    """The management URL and the relay's metrics port come from the environment; a bad one names the variable."""
    from settings import SettingsError, load_settings

    read = load_settings(
        {"MATOMETE_RABBITMQ_MANAGEMENT_URL": "http://ops:pw@mq:15672/", "MATOMETE_RELAY_METRICS_PORT": "0"}
    )
    assert (read.rabbitmq_management_url, read.relay_metrics_port) == ("http://ops:pw@mq:15672", 0)
    assert load_settings({}).relay_metrics_port == 9300
    for variable, bad in (("RABBITMQ_MANAGEMENT_URL", "mq:15672"), ("RELAY_METRICS_PORT", "70000")):
        with pytest.raises(SettingsError, match=f"MATOMETE_{variable}"):
            load_settings({f"MATOMETE_{variable}": bad})
