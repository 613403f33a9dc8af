"""Messages per second from producer to actor: the outbox against plain Dramatiq and raw pika.

Three paths, N messages each, every message one no-op that is idempotent the way Matomete's actors
are: it loads its row by id, locks it (SELECT ... FOR UPDATE), returns if a delivery before it
did the work, and otherwise writes (``done_at``), all in one transaction on the worker's Tortoise.

  outbox:   ``send`` writes each message as an outbox row in its own transaction (--senders at a
            time, as request handlers do), a ``matomete relay`` process publishes the rows, a
            ``dramatiq queues queue_throughput`` worker runs the actor;
  dramatiq: the same actor on the same worker (--processes, --threads), the messages sent with
            plain ``actor.send()`` (--senders threads, a publisher confirm each);
  pika:     the floor: the relay's pika publisher (pipelined confirms) sends the same bodies,
            pre-encoded, and one raw pika consumer acks each (prefetch as the worker's).

Each time runs from the first message written to the last one processed (the row's done_at, or
the consumer's last ack). The actor's queue is ``bench_noop``: no production actor reads it.

Needs PostgreSQL and RabbitMQ on 127.0.0.1 (as ``make test`` does); drops and recreates its own
database (MATOMETE_BENCH_DATABASE_URL), uses the broker at MATOMETE_BENCH_BROKER_URL and deletes
its queues there afterwards. Prints figures, asserts none (target: outbox >= 70% of dramatiq).

    .venv/bin/python bench/queue_throughput.py [--messages 5000] [--processes 1] [--threads 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import bench_support
from bench_support import ROOT, asyncpg_dsn, drop_database, free_port, start, stop

PG = os.environ.get("MATOMETE_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/matomete_bench_queue")
AMQP = os.environ.get("MATOMETE_BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
QUEUE = ACTOR = "bench_noop"
RAW_QUEUE = "bench_noop_raw"
WARM_UP = 50
BATCH = 500  # the relay's batch (queues.RELAY_BATCH), for the floor's publisher


def declare_actor() -> Any:
    """The no-op actor on the bench-only queue, declared on the project's broker and middleware."""
    import dramatiq
    from tortoise.transactions import in_transaction

    from queues import ACTOR_OPTIONS, PERMANENT_ERRORS

    @dramatiq.actor(queue_name=QUEUE, actor_name=ACTOR, throws=PERMANENT_ERRORS, **ACTOR_OPTIONS)
    async def bench_noop(item_id: str) -> None:
        """Mark the item done, unless an earlier delivery of the message did."""
        async with in_transaction() as connection:
            rows = await connection.execute_query_dict(
                "SELECT done_at FROM bench_noop WHERE id = $1 FOR UPDATE", [item_id]
            )
            if not rows or rows[0]["done_at"] is not None:
                return
            await connection.execute_query("UPDATE bench_noop SET done_at = clock_timestamp() WHERE id = $1", [item_id])

    return bench_noop


async def recreate_database() -> None:
    """An empty, migrated bench database of its own, with the no-op actor's table."""
    import asyncpg

    await bench_support.recreate_database(PG)
    db = await asyncpg.connect(asyncpg_dsn(PG))
    await db.execute("CREATE TABLE bench_noop (id text PRIMARY KEY, run text NOT NULL, done_at timestamptz)")
    await db.close()


def reset_queues(*, delete: bool = False) -> None:
    """Empty the bench queues (``delete``: remove them); production queues are never touched."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(AMQP))
    for name in (QUEUE, f"{QUEUE}.DQ", f"{QUEUE}.XQ", RAW_QUEUE):
        channel = connection.channel()
        try:
            if delete:
                channel.queue_delete(name)
            else:
                channel.queue_purge(name)
        except pika.exceptions.ChannelClosedByBroker:  # 404: not declared (yet)
            continue
        channel.close()
    if not delete:
        connection.channel().queue_declare(RAW_QUEUE, durable=True)
    connection.close()


@dataclass
class Paths:
    """What timing a path needs: the bench's own connection, the processes that must stay up, and
    how long to wait for a run before calling it stuck."""

    db: Any
    watched: list[subprocess.Popen[Any]]
    patience: float

    async def add_items(self, run: str, count: int) -> list[str]:
        """``count`` rows for the actor to mark, untimed (the business rows a real message names)."""
        ids = [str(uuid.uuid4()) for _ in range(count)]
        await self.db.copy_records_to_table("bench_noop", records=[(i, run, None) for i in ids], columns=["id", "run"])
        return ids

    async def wait_done(self, run: str, count: int) -> float:
        """The wall-clock time the last of the run's rows was marked done; fail on a dead process."""
        deadline, done = time.monotonic() + self.patience, 0
        while time.monotonic() < deadline:
            done, last = await self.db.fetchrow(
                "SELECT count(done_at), max(done_at) FROM bench_noop WHERE run = $1 AND done_at IS NOT NULL", run
            )
            if done >= count:
                return float(last.timestamp())
            for process in self.watched:
                if process.poll() is not None:
                    raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
            await asyncio.sleep(0.05)
        raise RuntimeError(f"{run}: {done} of {count} messages processed after {self.patience:.0f} s")

    async def time(self, name: str, count: int, produce: Callable[[list[str]], Awaitable[None]]) -> float:
        """Warm the path up, then the seconds from the first message written to the last processed."""
        await produce(await self.add_items(f"warm-{name}", WARM_UP))
        await self.wait_done(f"warm-{name}", WARM_UP)
        ids = await self.add_items(name, count)
        started = time.time()
        await produce(ids)
        return await self.wait_done(name, count) - started


async def write_outbox(ids: list[str], senders: int) -> None:
    """Each message an outbox row written by ``send`` in its own transaction, ``senders`` at a time."""
    from tortoise.transactions import in_transaction

    from models.outbox import ActorRef, send

    ref, waiting = ActorRef(QUEUE, ACTOR), iter(ids)

    async def sender() -> None:
        for item_id in waiting:
            async with in_transaction():
                await send(ref, item_id)

    await asyncio.gather(*(sender() for _ in range(senders)))


def send_plain(actor: Any, ids: list[str], senders: int) -> None:
    """Each message sent with plain ``actor.send()``, from ``senders`` threads."""
    with ThreadPoolExecutor(senders) as pool:
        list(pool.map(actor.send, ids))


def consume(count: int, prefetch: int) -> None:
    """The raw floor's consumer: ack each message; say READY, then DONE with the last ack's time."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(AMQP))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=prefetch)
    seen = 0

    def on_message(ch: Any, method: Any, _properties: Any, _body: bytes) -> None:
        nonlocal seen
        ch.basic_ack(method.delivery_tag)
        seen += 1
        if seen == count:
            print(f"DONE {time.time()}", flush=True)
            ch.stop_consuming()

    channel.basic_consume(RAW_QUEUE, on_message)
    print("READY", flush=True)
    channel.start_consuming()
    connection.close()


class _Raw:
    """A pre-encoded body: the floor does no Dramatiq encoding, no ORM, no SQL."""

    queue_name = RAW_QUEUE
    message_id = "raw"

    def __init__(self, body: bytes) -> None:
        self.body = body

    def encode(self) -> bytes:
        """The body as given."""
        return self.body


async def time_raw_pika(count: int, prefetch: int, env: dict[str, str], log: Path) -> float:
    """Seconds for the relay's publisher to send ``count`` bodies and a raw consumer to ack them."""
    import dramatiq

    import queues

    bodies = [
        _Raw(dramatiq.Message(QUEUE, ACTOR, (str(uuid.uuid4()),), {}, {}).encode()) for _ in range(count + WARM_UP)
    ]
    command = [sys.executable, __file__, "--consume", str(count + WARM_UP), str(prefetch)]
    consumer = start(command, env, log, stdout=subprocess.PIPE, text=True)
    try:
        if await asyncio.to_thread(consumer.stdout.readline) != "READY\n":  # type: ignore[union-attr]
            raise RuntimeError(f"the raw consumer did not start (see {log})")
        publisher = queues.RabbitPublisher(AMQP)
        await publisher.publish(cast("list[Any]", bodies[:WARM_UP]))  # connect outside the timing
        started = time.time()
        for at in range(WARM_UP, len(bodies), BATCH):
            await publisher.publish(cast("list[Any]", bodies[at : at + BATCH]))
        await publisher.close()
        line = await asyncio.wait_for(asyncio.to_thread(consumer.stdout.readline), 120)  # type: ignore[union-attr]
        return float(line.split()[1]) - started
    finally:
        stop(consumer)


async def measure(args: argparse.Namespace) -> dict[str, float]:
    """Start the worker and the relay, time the three paths; the seconds of each; clean up."""
    os.environ["MATOMETE_DATABASE_URL"], os.environ["MATOMETE_BROKER_URL"] = PG, AMQP  # before `queues`
    import asyncpg

    from settings import Settings
    from settings.database import close_database, open_database

    actor = declare_actor()
    await recreate_database()
    reset_queues()
    actor.broker.declare_queue(QUEUE, ensure=True)  # before the relay publishes to it
    logs = Path(tempfile.mkdtemp(prefix="bench-queue-"))
    env = {
        **os.environ,
        "MATOMETE_LOG_LEVEL": "warning",
        "MATOMETE_RELAY_METRICS_PORT": "0",
        "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "bench")]),
        "dramatiq_prom_port": str(free_port()),
        "dramatiq_prom_db": str(logs / "prometheus"),
    }
    bin_dir = Path(sys.executable).parent
    worker_command = [str(bin_dir / "dramatiq"), "queues", "queue_throughput", "--queues", QUEUE]
    worker_command += ["--processes", str(args.processes), "--threads", str(args.threads)]
    context = await open_database(Settings(database_url=PG))
    paths = Paths(await asyncpg.connect(asyncpg_dsn(PG)), [], patience=max(120.0, args.messages / 20))
    seconds: dict[str, float] = {}

    async def outbox(ids: list[str]) -> None:
        await write_outbox(ids, args.senders)

    async def plain(ids: list[str]) -> None:
        await asyncio.to_thread(send_plain, actor, ids, args.senders)

    try:
        worker = start(worker_command, env, logs / "worker.log")
        relay = start([str(bin_dir / "matomete"), "relay"], env, logs / "relay.log")
        paths.watched += [worker, relay]
        seconds["outbox"] = await paths.time("outbox", args.messages, outbox)
        stop(relay)
        paths.watched.remove(relay)
        seconds["dramatiq"] = await paths.time("dramatiq", args.messages, plain)
        stop(worker)
        prefetch = args.processes * args.threads * 2  # Dramatiq's default: twice the threads per process
        seconds["pika"] = await time_raw_pika(args.messages, prefetch, env, logs / "consumer.log")
    except Exception:
        print(f"logs of the processes: {logs}", file=sys.stderr)
        raise
    finally:
        for process in paths.watched:
            stop(process)
        actor.broker.close()
        await paths.db.close()
        await close_database(context)
        await drop_database(PG)
        reset_queues(delete=True)
    shutil.rmtree(logs, ignore_errors=True)  # kept only when a run failed
    return seconds


async def main() -> None:
    """Measure, then print a table and the RESULT lines."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--processes", type=int, default=1, help="worker processes (the Procfile's charges: 1)")
    parser.add_argument("--threads", type=int, default=8, help="threads per worker process (charges: 8)")
    parser.add_argument("--senders", type=int, default=8, help="messages written or sent at a time")
    args = parser.parse_args()
    seconds = await measure(args)
    rates = {name: args.messages / elapsed for name, elapsed in seconds.items()}
    print(
        f"{args.messages:,} messages per path, worker --processes {args.processes} --threads {args.threads}, "
        f"{args.senders} senders (PostgreSQL + RabbitMQ, publisher confirms)"
    )
    for name, what in (
        ("outbox", "send() rows -> matomete relay -> worker, idempotent no-op"),
        ("dramatiq", "actor.send() -> worker, the same no-op"),
        ("pika", "floor: relay's publisher -> raw consumer acking each"),
    ):
        print(f"  {name:8} {seconds[name]:7.2f} s  {rates[name]:8,.0f} msg/s   {what}")
    print(f"RESULT outbox_msgs_per_s={rates['outbox']:.0f} ratio={rates['outbox'] / rates['dramatiq']:.2f}")
    print(f"RESULT dramatiq_msgs_per_s={rates['dramatiq']:.0f} ratio={rates['dramatiq'] / rates['pika']:.2f}")
    print(f"RESULT pika_msgs_per_s={rates['pika']:.0f} ratio=1.00")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--consume":
        consume(int(sys.argv[2]), int(sys.argv[3]))
    else:
        asyncio.run(main())
else:  # imported by the `dramatiq` worker: `dramatiq queues queue_throughput`
    bench_noop = declare_actor()
