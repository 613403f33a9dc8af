"""Outbox relay throughput against its raw floor, measured in the same run.

The relay's work per batch is: claim unsent rows (SELECT ... FOR UPDATE SKIP LOCKED), publish
them to RabbitMQ with pipelined publisher confirms, mark them sent (UPDATE), commit. The floor
is the same work done raw: the two SQL statements over the same rows with asyncpg, and pika
publishing the same bodies, pre-encoded, with the same pipelined confirms (through the relay's
own thin pika connection class, so only the relay's ORM, encoding and bookkeeping are measured).

Needs PostgreSQL and RabbitMQ on 127.0.0.1 (as `make test` does). Prints figures, asserts none.

    .venv/bin/python bench/outbox_relay.py [--messages 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid

from bench_support import recreate_database

PG = os.environ.get("MATOMETE_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/matomete_bench")
AMQP = os.environ.get("MATOMETE_BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
QUEUE = "bench_relay"
BATCH = 500


async def fill_outbox(count: int) -> None:
    """``count`` unsent rows, written with COPY (the fill is not what is measured)."""
    import asyncpg

    connection = await asyncpg.connect(PG.replace("postgres://", "postgresql://"))
    now = time.time()
    from datetime import UTC, datetime

    rows = [
        (
            uuid.uuid4(),
            QUEUE,
            "cancel_line_subscriptions",
            f'["CAF{n:010d}"]',
            "{}",
            datetime.fromtimestamp(now, UTC),
            None,
        )
        for n in range(count)
    ]
    await connection.copy_records_to_table(
        "outbox",
        records=rows,
        columns=["id", "queue_name", "actor_name", "args", "kwargs", "created_at", "sent_at"],
    )
    await connection.close()


def purge_queue() -> None:
    """Declare the bench queue if absent and empty it."""
    import pika

    connection = pika.BlockingConnection(pika.URLParameters(AMQP))
    channel = connection.channel()
    channel.queue_declare(QUEUE, durable=True)
    channel.queue_purge(QUEUE)
    connection.close()


async def time_relay(count: int) -> float:
    """Seconds for the relay to publish and mark ``count`` rows."""
    import queues
    from settings import Settings
    from settings.database import close_database, open_database

    context = await open_database(Settings(database_url=PG))
    publisher = queues.RabbitPublisher(AMQP)
    await queues.relay_once(publisher, batch_size=1)  # connect and warm up outside the timing
    started = time.perf_counter()
    sent = 1
    while True:
        done = await queues.relay_once(publisher, batch_size=BATCH)
        if not done:
            break
        sent += done
    elapsed = time.perf_counter() - started
    await publisher.close()
    await close_database(context)
    assert sent == count, (sent, count)  # noqa: S101 - a bench that relayed the wrong count is void
    return elapsed


async def time_raw_sql() -> float:
    """Seconds for the relay's two statements per batch, raw, over the same rows made unsent again."""
    import asyncpg

    connection = await asyncpg.connect(PG.replace("postgres://", "postgresql://"))
    await connection.execute("UPDATE outbox SET sent_at = NULL")
    started = time.perf_counter()
    while True:
        async with connection.transaction():
            rows = await connection.fetch(
                "SELECT id, queue_name, actor_name, args, kwargs FROM outbox WHERE sent_at IS NULL "
                "ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED",
                BATCH,
            )
            if not rows:
                break
            await connection.execute(
                "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::uuid[])", [row["id"] for row in rows]
            )
    elapsed = time.perf_counter() - started
    await connection.close()
    return elapsed


async def time_raw_pika(count: int) -> float:
    """Seconds for raw pika to publish ``count`` same-sized bodies with pipelined confirms."""
    import dramatiq

    import queues

    body = dramatiq.Message(
        queue_name=QUEUE, actor_name="cancel_line_subscriptions", args=("CAF0000000001",), kwargs={}, options={}
    ).encode()
    publisher = queues.RabbitPublisher(AMQP)
    messages = [_Raw(body) for _ in range(count)]
    await publisher.publish(messages[:1])  # connect outside the timing
    started = time.perf_counter()
    for start in range(0, count, BATCH):
        await publisher.publish(messages[start : start + BATCH])
    elapsed = time.perf_counter() - started
    await publisher.close()
    return elapsed


class _Raw:
    """A pre-encoded body: the floor does no Dramatiq encoding, no ORM, no SQL."""

    queue_name = QUEUE
    message_id = "raw"

    def __init__(self, body: bytes) -> None:
        self.body = body

    def encode(self) -> bytes:
        """The body as given."""
        return self.body


async def main() -> None:
    """Run the three measurements and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    count = parser.parse_args().messages
    await recreate_database(PG)
    await fill_outbox(count)
    purge_queue()
    relay = await time_relay(count)
    purge_queue()
    sql = await time_raw_sql()
    pika_floor = await time_raw_pika(count)
    purge_queue()
    floor = sql + pika_floor
    print(f"outbox relay, {count:,} messages in batches of {BATCH} (PostgreSQL + RabbitMQ, publisher confirms)")
    print(f"  relay                    {relay:7.3f} s   {count / relay:9,.0f} msg/s")
    print(f"  floor: raw SQL           {sql:7.3f} s   {count / sql:9,.0f} rows/s")
    print(f"  floor: raw pika confirms {pika_floor:7.3f} s   {count / pika_floor:9,.0f} msg/s")
    print(f"  ratio relay / (SQL + pika) = {relay / floor:.2f}x")


if __name__ == "__main__":
    asyncio.run(main())
