"""The broker, its queues and middleware, and the outbox relay.

``MATOMETE_BROKER_URL`` picks the broker when this module is imported (``dramatiq queues
workers`` imports it first): ``amqp://...`` for RabbitMQ, ``memory://`` for the in-process
broker of ``matomete up``. Either way the same middleware runs: a daemon asyncio loop for async
actors, Tortoise opened on that loop, and log context bound per message.

Nothing but the relay publishes. Handlers write ``OutboxMessage`` rows in their transaction;
``relay_once`` takes a batch of unsent rows (locked, so several relays share the work), publishes
them with confirms, and marks them sent in the same database transaction. A crash between the
publish and the commit leaves the rows unsent and they are published again, under the same
message id; actors are idempotent, so that is harmless.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import contextvars
import dataclasses
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import quote, unquote, urlsplit

import dramatiq
import pika
import structlog
from dramatiq.asyncio import EventLoopThread, get_event_loop_thread, set_event_loop_thread
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL, RabbitmqBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name, xq_name
from dramatiq.middleware import AsyncIO, Middleware, MiddlewareError
from dramatiq.middleware.prometheus import Prometheus
from pika.adapters.asyncio_connection import AsyncioConnection
from tortoise import connections
from tortoise.context import TortoiseContext
from tortoise.context import _current_context as _current_tortoise_context
from tortoise.exceptions import DoesNotExist, MultipleObjectsReturned
from tortoise.transactions import in_transaction

from billing.errors import MatometeError
from models.clock import Clock, clock
from models.outbox import OutboxMessage
from settings import Settings, ensure_local_secrets, load_settings, read_broker_url
from settings.database import close_database, open_database
from settings.logging import configure_logging

__all__ = [
    "ACTOR_OPTIONS",
    "PERMANENT_ERRORS",
    "QUEUES",
    "BrokerState",
    "DeadLetter",
    "MemoryPublisher",
    "PublishError",
    "QueueDepth",
    "RabbitPublisher",
    "WorkerMetrics",
    "broker",
    "broker_probe",
    "dead_letters",
    "read_broker",
    "relay_forever",
    "relay_once",
    "requeue_dead_letter",
]

QUEUES = ("auth", "charges", "billing", "payouts", "webhooks")
# Retries back off at most 10 minutes: a delayed message waits unacknowledged in the worker,
# and RabbitMQ redelivers one held past its 30-minute consumer timeout.
ACTOR_OPTIONS: dict[str, Any] = {"max_retries": 20, "min_backoff": 1_000, "max_backoff": 600_000}
# Errors no retry can mend: a broken rule (an unknown id, an object in the wrong state) and a row
# that does not exist (the outbox sends a message only after its rows commit). Every actor passes
# these as ``throws=``; anything else (a lost connection, a deadlock) is retried with backoff.
PERMANENT_ERRORS: tuple[type[Exception], ...] = (MatometeError, DoesNotExist, MultipleObjectsReturned)
RELAY_BATCH = 500
log = structlog.get_logger("matomete.queues")


_worker_settings: Settings | None = None


def worker_settings() -> Settings:
    """The settings of this worker process: those given to ``start_worker``, else the
    environment's (with the embedded mode's local secrets, as ``matomete up`` makes them)."""
    global _worker_settings  # noqa: PLW0603 - read once per process, like every process's settings
    if _worker_settings is None:
        loaded = load_settings()
        _worker_settings = ensure_local_secrets(loaded) if loaded.is_sqlite else loaded
    return _worker_settings


class _DaemonEventLoopThread(EventLoopThread):
    def __init__(self, logger: Any, interrupt_check_ival: float = 0.1) -> None:
        super().__init__(logger, interrupt_check_ival)
        self.daemon = True


class DaemonAsyncIO(AsyncIO):
    """Dramatiq's asyncio middleware with a daemon loop thread: the stock one is not a daemon,
    so a second SIGTERM (honcho sends one to the whole group) would hang the worker."""

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Start the loop thread the async actors run on."""
        thread = _DaemonEventLoopThread(self.logger)
        thread.start(timeout=1.0)
        set_event_loop_thread(thread)


class LoggingAtBoot(Middleware):
    """A worker process logs like every other Matomete process: structlog, in the configured
    format, to the stream Dramatiq collects from its worker processes."""

    def __init__(self, settings_factory: Callable[[], Settings] = worker_settings) -> None:
        self.settings_factory = settings_factory

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Configure logging before anything logs."""
        settings = self.settings_factory()
        configure_logging(log_format=settings.log_format, log_level=settings.log_level)


class TortoiseOnLoop(Middleware):
    """Open Tortoise on the asyncio middleware's loop at worker boot, close it at shutdown.

    Tortoise keeps its context in a ContextVar. An async actor's task copies the context of
    the worker thread that submitted it, so the context is set in each worker thread before
    each message; no process-wide fallback is needed, and a test process can hold its own.
    Workers never build the schema: migrations do (two processes would race on ``pg_type``).
    """

    def __init__(self, settings_factory: Callable[[], Settings] = worker_settings) -> None:
        self.settings_factory = settings_factory
        self.context: TortoiseContext | None = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Connect the database before the first message is taken; fail the boot otherwise."""
        settings = self.settings_factory()
        clock.configure(test_clock=settings.test_clock)
        thread = get_event_loop_thread()
        if thread is None:
            raise MiddlewareError("cannot open the database: no event loop thread (is the AsyncIO middleware first?)")
        try:
            # A fresh context: the booting thread may hold another Tortoise context (a test's, the
            # web app's), which Tortoise.init would otherwise close and take over.
            self.context = contextvars.Context().run(thread.run_coroutine, _open_and_check(settings))
        except Exception as error:
            raise MiddlewareError(f"cannot open the database: {error!r}") from error

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        """Make this worker's Tortoise context the current one for the actor's task."""
        if self.context is not None:
            _current_tortoise_context.set(self.context)

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Close the connections opened at boot."""
        thread = get_event_loop_thread()
        if thread is not None and self.context is not None:
            thread.run_coroutine(close_database(self.context))
            self.context = None


async def _open_and_check(settings: Settings) -> TortoiseContext:
    context = await open_database(settings, process_wide=False)
    await connections.get("default").execute_query("SELECT 1")  # Tortoise connects lazily
    return context


class _SharedLoop(EventLoopThread):
    """Stands in for Dramatiq's loop thread when async actors run on a loop that is already
    running (the web process's, under ``matomete up``)."""

    def __init__(self, logger: Any, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(logger)
        self.loop.close()
        self.loop = loop

    def stop(self) -> None:
        """The loop belongs to its owner; leave it running."""


class InProcessAsyncIO(AsyncIO):
    """For the in-process broker: actors run on the caller's own loop (``attach``), so they
    share its database connections; with SQLite that means one writer and no lock errors."""

    def __init__(self) -> None:
        super().__init__()
        self.loop: asyncio.AbstractEventLoop | None = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Point async actors at the attached loop."""
        if self.loop is None:
            raise MiddlewareError("the in-process worker runs only inside `matomete up` (no loop attached)")
        set_event_loop_thread(_SharedLoop(self.logger, self.loop))

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Forget the loop; its owner closes it."""
        set_event_loop_thread(None)


class LogContext(Middleware):
    """Bind message id, actor and queue to every log line of the message; the actor's
    coroutine runs in a copy of this thread's context, so it sees them too."""

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        """Bind the message's identity."""
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(
            message_id=message.message_id, actor=message.actor_name, queue=message.queue_name
        )

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Forget it again."""
        structlog.contextvars.clear_contextvars()

    after_skip_message = after_process_message


_MULTIPROCESS_VARIABLES = ("PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir")


class WorkerMetrics(Prometheus):
    """Dramatiq's own Prometheus middleware (messages processed, failed, retried, dead-lettered,
    in progress, duration per actor and queue).

    In a ``dramatiq`` worker process it counts into the multiprocess files that its exposition
    server (a forked process, port ``dramatiq_prom_port``, files in ``dramatiq_prom_db``) reads.
    A worker run inside another process (``matomete up``, the tests) has no process boot: it
    counts into that process's default registry once ``count_in_process`` is called, and the web
    process's ``/metrics`` serves it. Until one of the two happens, it counts nothing.
    """

    def __init__(self) -> None:
        super().__init__()
        self.mode: str | None = None

    def after_process_boot(self, broker: dramatiq.Broker) -> None:
        """A ``dramatiq`` worker process: multiprocess mode, as Dramatiq sets it up."""
        super().after_process_boot(broker)  # type: ignore[no-untyped-call]
        self.mode = "process"

    def count_in_process(self) -> None:
        """Count into this process's default registry (once; an in-process worker)."""
        if self.mode is not None:
            return
        import prometheus_client

        saved = {name: os.environ.get(name) for name in _MULTIPROCESS_VARIABLES}
        try:
            super().after_process_boot(broker)  # type: ignore[no-untyped-call]
        finally:
            for name, value in saved.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        for metric in (
            self.total_messages,
            self.total_errored_messages,
            self.total_retried_messages,
            self.total_rejected_messages,
            self.inprogress_messages,
            self.inprogress_delayed_messages,
            self.message_durations,
        ):
            prometheus_client.REGISTRY.register(metric)
        self.mode = "in_process"

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: dramatiq.Worker) -> None:
        """Mark a worker process's files dead (multiprocess mode only)."""
        if self.mode == "process":
            super().after_worker_shutdown(broker, worker)  # type: ignore[no-untyped-call]

    def after_nack(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        """Count a dead-lettered message."""
        if self.mode:
            super().after_nack(broker, message)  # type: ignore[no-untyped-call]

    def after_enqueue(self, broker: dramatiq.Broker, message: dramatiq.Message[Any], delay: int | None) -> None:
        """Count a retry."""
        if self.mode:
            super().after_enqueue(broker, message, delay)  # type: ignore[no-untyped-call]

    def before_delay_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        """Count a delayed message held in memory."""
        if self.mode:
            super().before_delay_message(broker, message)  # type: ignore[no-untyped-call]

    def before_process_message(self, broker: dramatiq.Broker, message: dramatiq.MessageProxy) -> None:
        """Count a message in progress."""
        if self.mode:
            super().before_process_message(broker, message)  # type: ignore[no-untyped-call]

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: dramatiq.MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Count a processed (or failed) message and its duration."""
        if self.mode:
            super().after_process_message(broker, message, result=result, exception=exception)  # type: ignore[no-untyped-call]

    after_skip_message = after_process_message


def build_broker(broker_url: str, *, settings_factory: Callable[[], Settings] = worker_settings) -> dramatiq.Broker:
    """The broker for ``broker_url`` with Matomete's middleware and every queue declared."""
    built: dramatiq.Broker
    if broker_url.startswith("memory://"):
        built = StubBroker()
        built.add_middleware(InProcessAsyncIO())
    else:
        built = RabbitmqBroker(url=broker_url, confirm_delivery=True)
        built.add_middleware(LoggingAtBoot(settings_factory))
        built.add_middleware(DaemonAsyncIO())
        built.add_middleware(TortoiseOnLoop(settings_factory), after=AsyncIO)
    built.add_middleware(LogContext())
    built.add_middleware(WorkerMetrics())
    for name in QUEUES:
        built.declare_queue(name)
    return built


broker = build_broker(read_broker_url())
dramatiq.set_broker(broker)


def refresh_connection() -> None:
    """Check this thread's broker connection (answering its heartbeats): one that RabbitMQ has
    closed meanwhile (a blocking connection left idle misses its heartbeats and is dropped after
    a minute) is forgotten, so the next use opens a new one instead of failing."""
    if not isinstance(broker, RabbitmqBroker):
        return
    connection = getattr(broker.state, "connection", None)
    if connection is None:
        return
    try:
        if connection.is_open:
            connection.process_data_events(time_limit=0)
            return
    except pika.exceptions.AMQPError:
        pass
    del broker.connection


def declare_queues() -> None:
    """Create every queue on the broker now (RabbitMQ declares lazily, on first use)."""
    if isinstance(broker, RabbitmqBroker):
        refresh_connection()
        for name in QUEUES:
            broker.declare_queue(name, ensure=True)


def start_worker(
    loop: asyncio.AbstractEventLoop | None = None,
    *,
    settings: Settings | None = None,
    queues: Iterable[str] | None = None,
    threads: int = 8,
) -> dramatiq.Worker:
    """Start a worker on this process's broker: in-process (``loop`` required: the actors run
    on it) or consuming RabbitMQ, with its own loop thread and database connections."""
    global _worker_settings  # noqa: PLW0603 - the worker's settings are the caller's
    if settings is not None:
        _worker_settings = settings
    for middleware in broker.middleware:
        if isinstance(middleware, InProcessAsyncIO):
            middleware.loop = loop
    # A short consumer timeout makes stopping quick (a consumer checks for shutdown between waits).
    for middleware in broker.middleware:
        if isinstance(middleware, WorkerMetrics):
            middleware.count_in_process()
    worker = dramatiq.Worker(broker, queues=set(queues) if queues else None, worker_threads=threads, worker_timeout=100)
    worker.start()
    _in_process_workers[:] = [w for w in _in_process_workers if _consuming(w)] + [worker]
    return worker


def _consuming(worker: dramatiq.Worker) -> bool:
    return any(thread.is_alive() for thread in list(worker.consumers.values()))


_in_process_workers: list[dramatiq.Worker] = []


def broker_probe(settings: Settings) -> Callable[[], bool]:
    """A blocking check that the broker accepts a connection (``/readyz`` runs it on a thread)."""
    if settings.embedded:
        return lambda: True
    params = pika.URLParameters(settings.broker_url)
    params.socket_timeout = 2
    params.connection_attempts = 1
    params.blocked_connection_timeout = 2

    def probe() -> bool:
        try:
            connection = pika.BlockingConnection(params)
        except Exception:  # noqa: BLE001 - unreachable for any reason means not ready
            return False
        with contextlib.suppress(Exception):
            connection.close()
        return True

    return probe


class PublishError(Exception):
    """The broker did not confirm every message of a batch; none is marked sent."""


class Publisher(Protocol):
    """Hands a batch of messages to the broker and returns once the broker has them all."""

    async def publish(self, messages: Sequence[dramatiq.Message[Any]]) -> None:
        """Publish ``messages``; raise ``PublishError`` unless every one is confirmed."""


class MemoryPublisher:
    """The in-process broker takes a message as soon as it is enqueued."""

    def __init__(self, target: dramatiq.Broker) -> None:
        self.target = target

    async def publish(self, messages: Sequence[dramatiq.Message[Any]]) -> None:
        """Enqueue each message on the in-process broker."""
        for message in messages:
            self.target.enqueue(message)

    async def close(self) -> None:
        """Nothing to close."""


class RabbitPublisher:
    """Publishes to RabbitMQ with pipelined publisher confirms: the whole batch goes out, then
    one wait for the acks (a confirm per message caps near 1,000-2,000 msg/s on this machine).

    pika's asyncio adapter runs on the caller's loop, so nothing blocks it. After any failure
    the connection is dropped and the next batch reconnects.
    """

    def __init__(self, url: str, *, confirm_timeout: float = 30.0) -> None:
        self.params = pika.URLParameters(url)
        self.confirm_timeout = confirm_timeout
        self._connection: AsyncioConnection | None = None
        self._channel: Any = None
        self._next_tag = 0
        self._pending: set[int] = set()
        self._done: asyncio.Future[None] | None = None
        self._error: Exception | None = None

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        opened: asyncio.Future[Any] = loop.create_future()

        def on_close(_connection: Any, reason: Exception) -> None:
            self._fail(PublishError(f"connection closed: {reason!r}"))
            if not opened.done():
                opened.set_exception(PublishError(f"connection closed: {reason!r}"))

        def on_open_error(_connection: Any, reason: Any) -> None:
            if not opened.done():
                opened.set_exception(PublishError(f"cannot connect: {reason!r}"))

        self._error = None
        self._pending.clear()
        self._next_tag = 0
        self._connection = AsyncioConnection(
            self.params,
            on_open_callback=opened.set_result,
            on_open_error_callback=on_open_error,
            on_close_callback=on_close,
            custom_ioloop=loop,
        )
        await asyncio.wait_for(opened, 10)
        channel_open: asyncio.Future[Any] = loop.create_future()
        self._connection.channel(on_open_callback=channel_open.set_result)
        self._channel = await asyncio.wait_for(channel_open, 10)
        self._channel.add_on_close_callback(lambda _ch, reason: self._fail(PublishError(f"channel closed: {reason!r}")))
        self._channel.add_on_return_callback(self._on_return)
        selected: asyncio.Future[Any] = loop.create_future()
        self._channel.confirm_delivery(self._on_confirm, callback=selected.set_result)
        await asyncio.wait_for(selected, 10)
        await self._declare(QUEUES)

    async def _declare(self, names: Iterable[str]) -> None:
        """Declare each queue exactly as Dramatiq's broker does (RabbitMQ refuses a mismatch)."""
        loop = asyncio.get_running_loop()
        for queue in names:
            dead_letter = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": xq_name(queue)}
            for name, arguments in (
                (queue, dead_letter),
                (dq_name(queue), dead_letter),
                (xq_name(queue), {"x-message-ttl": DEAD_MESSAGE_TTL}),
            ):
                declared: asyncio.Future[Any] = loop.create_future()
                self._channel.queue_declare(name, durable=True, arguments=arguments, callback=declared.set_result)
                await asyncio.wait_for(declared, 10)

    def _fail(self, error: Exception) -> None:
        self._error = self._error or error
        if self._done is not None and not self._done.done():
            self._done.set_exception(self._error)

    def _on_return(self, _channel: Any, method: Any, properties: Any, _body: bytes) -> None:
        self._fail(PublishError(f"message {properties.message_id} returned: {method.reply_code} {method.reply_text}"))

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tags = (
            {tag for tag in self._pending if tag <= method.delivery_tag} if method.multiple else {method.delivery_tag}
        )
        self._pending -= tags
        if isinstance(method, pika.spec.Basic.Nack):
            self._fail(PublishError(f"the broker refused {len(tags)} message(s)"))
        elif not self._pending and self._done is not None and not self._done.done():
            self._done.set_result(None)

    async def publish(self, messages: Sequence[dramatiq.Message[Any]]) -> None:
        """Publish the batch, then wait until RabbitMQ has confirmed every message."""
        if not messages:
            return
        if self._error is not None or self._channel is None or not self._channel.is_open:
            await self.close()
            await self._connect()
        self._done = asyncio.get_running_loop().create_future()
        try:
            for message in messages:
                self._channel.basic_publish(
                    exchange="",
                    routing_key=message.queue_name,
                    body=message.encode(),
                    properties=pika.BasicProperties(delivery_mode=2, message_id=message.message_id),
                    mandatory=True,
                )
                self._next_tag += 1
                self._pending.add(self._next_tag)
            await asyncio.wait_for(asyncio.shield(self._done), self.confirm_timeout)
        except TimeoutError:
            self._fail(PublishError("timed out waiting for confirms"))
        finally:
            self._done = None
        if self._error is not None:
            raise self._error

    async def close(self) -> None:
        """Close the connection, if one is open."""
        connection, self._connection, self._channel = self._connection, None, None
        if connection is not None and connection.is_open:
            closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

            def on_closed(_connection: Any, _reason: Any) -> None:
                if not closed.done():
                    closed.set_result(None)

            connection.add_on_close_callback(on_closed)
            connection.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closed, 5)


def publisher_for(settings: Settings, target: dramatiq.Broker | None = None) -> MemoryPublisher | RabbitPublisher:
    """The publisher that reaches ``settings``' broker."""
    if settings.embedded:
        return MemoryPublisher(target or broker)
    return RabbitPublisher(settings.broker_url)


def as_message(row: OutboxMessage) -> dramatiq.Message[Any]:
    """The Dramatiq message of an outbox row; its id is the row's id, on every publish."""
    return dramatiq.Message(
        queue_name=row.queue_name,
        actor_name=row.actor_name,
        args=tuple(row.args),
        kwargs=dict(row.kwargs),
        options={},
        message_id=str(row.id),
        message_timestamp=int(time.time() * 1000),
    )


async def relay_once(publisher: Publisher, *, batch_size: int = RELAY_BATCH) -> int:
    """Publish one batch of unsent outbox rows and mark them sent; the number published."""
    async with in_transaction():
        rows = (
            await OutboxMessage.filter(sent_at=None)
            .order_by("created_at")
            .limit(batch_size)
            .select_for_update(skip_locked=True)
        )
        if not rows:
            return 0
        await publisher.publish([as_message(row) for row in rows])
        await OutboxMessage.filter(id__in=[row.id for row in rows]).update(sent_at=Clock.system_now())
    return len(rows)


class RelayMetrics:
    """The relay's Prometheus series, in this process's default registry (created on the
    relay's first pass, never at import: a Dramatiq worker process must import
    ``prometheus_client`` only after its boot picks multiprocess mode)."""

    def __init__(self) -> None:
        from prometheus_client import Counter, Gauge, Histogram

        self.published = Counter("matomete_relay_messages_published", "Outbox messages published to the broker.")
        self.failures = Counter("matomete_relay_failures", "Relay passes that failed (broker or database).")
        self.batch_seconds = Histogram(
            "matomete_relay_batch_seconds",
            "Time to publish one batch with confirms and mark it sent.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.backlog = Gauge("matomete_relay_backlog", "Unsent outbox rows, as the relay last counted them.")
        self.oldest_seconds = Gauge(
            "matomete_relay_oldest_unsent_seconds", "Age of the oldest unsent outbox row, as the relay last saw it."
        )


_relay_metrics: RelayMetrics | None = None


def relay_metrics() -> RelayMetrics:
    """This process's relay series (one set per process)."""
    global _relay_metrics  # noqa: PLW0603 - one set of series per process, as Prometheus wants
    if _relay_metrics is None:
        _relay_metrics = RelayMetrics()
    return _relay_metrics


async def _count_backlog(metrics: RelayMetrics) -> None:
    oldest = await OutboxMessage.filter(sent_at=None).order_by("created_at").first().values_list("created_at")
    metrics.backlog.set(await OutboxMessage.filter(sent_at=None).count())
    age = (Clock.system_now() - oldest[0]).total_seconds() if oldest else 0.0
    metrics.oldest_seconds.set(max(age, 0.0))


async def relay_forever(
    publisher: Publisher, *, stop: asyncio.Event, idle_seconds: float = 0.1, backlog_every: float = 1.0
) -> None:
    """Relay until ``stop`` is set; back off on broker or database errors, never give up."""
    metrics = relay_metrics()
    backoff = idle_seconds
    counted_at = 0.0
    while not stop.is_set():
        started = time.perf_counter()
        try:
            if started - counted_at >= backlog_every:
                counted_at = started
                await _count_backlog(metrics)
            sent = await relay_once(publisher)
        except Exception as error:  # noqa: BLE001 - the relay must outlive any one outage
            metrics.failures.inc()
            log.warning("relay_failed", error=repr(error), retry_in=backoff)
            sent, backoff = 0, min(backoff * 2, 5.0)
        else:
            backoff = idle_seconds
            if sent:
                metrics.published.inc(sent)
                metrics.batch_seconds.observe(time.perf_counter() - started)
                log.debug("relayed", messages=sent)
                continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff)


# --- Inspection: the vital signs of the broker (``/ops/system``, ``/metrics``) and dead letters.

BROKER_TIMEOUT = 2.0  # seconds; a page waits at most this long for an unreachable broker
DEAD_LETTER_SCAN = 5_000  # dead letters looked through to find one message


@dataclass(frozen=True)
class QueueDepth:
    """One queue's counts; None where the source cannot tell (unacknowledged over AMQP)."""

    name: str
    ready: int | None
    unacked: int | None
    consumers: int | None
    delayed: int | None  # on ``<queue>.DQ``: retries and delayed messages waiting for their time
    dead: int | None  # on ``<queue>.XQ``: messages that failed every retry (kept 7 days)


@dataclass(frozen=True)
class BrokerState:
    """What the broker says about every queue, and where it was read: ``management`` (the
    RabbitMQ management API), ``amqp`` (passive declares: no unacknowledged counts) or
    ``in-process``; ``reachable`` False with the problem when it did not answer."""

    source: str
    reachable: bool
    queues: tuple[QueueDepth, ...] = ()
    problem: str | None = None


@dataclass(frozen=True)
class DeadLetter:
    """A message in a dead-letter queue, as an operator inspects it."""

    queue: str
    message_id: str
    actor: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    options: dict[str, Any]
    traceback: str | None
    enqueued_at: datetime | None
    dead_at: datetime | None


def _vhost(broker_url: str) -> str:
    path = urlsplit(broker_url).path
    return unquote(path[1:]) if len(path) > 1 else "/"


def _params(broker_url: str) -> pika.URLParameters:
    params = pika.URLParameters(broker_url)
    params.socket_timeout = BROKER_TIMEOUT
    params.connection_attempts = 1
    params.blocked_connection_timeout = BROKER_TIMEOUT
    params.stack_timeout = BROKER_TIMEOUT * 2
    return params


def _stub_depths(target: StubBroker) -> tuple[QueueDepth, ...]:
    depths = []
    for name in QUEUES:
        queue, delay = target.queues.get(name), target.queues.get(dq_name(name))
        consumers = sum(
            1
            for worker in _in_process_workers
            for queue_name, thread in list(worker.consumers.items())
            if queue_name == name and thread.is_alive()
        )
        ready = queue.qsize() if queue is not None else 0
        depths.append(
            QueueDepth(
                name=name,
                ready=ready,
                unacked=max(queue.unfinished_tasks - ready, 0) if queue is not None else 0,
                consumers=consumers,
                delayed=delay.unfinished_tasks if delay is not None else 0,
                dead=len(target.dead_letters_by_queue.get(name, ())),
            )
        )
    return tuple(depths)


async def _management_depths(management_url: str, broker_url: str) -> tuple[QueueDepth, ...]:
    import aiohttp

    parts = urlsplit(management_url)
    credentials = f"{unquote(parts.username or 'guest')}:{unquote(parts.password or 'guest')}"
    headers = {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}
    netloc = parts.hostname or ""
    base = f"{parts.scheme}://{netloc}{':' + str(parts.port) if parts.port else ''}{parts.path}"
    url = f"{base}/api/queues/{quote(_vhost(broker_url), safe='')}"
    timeout = aiohttp.ClientTimeout(total=BROKER_TIMEOUT)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        params = {"columns": "name,messages_ready,messages_unacknowledged,messages,consumers"}
        async with session.get(url, headers=headers, params=params) as response:
            response.raise_for_status()
            rows = {row["name"]: row for row in await response.json()}

    def count(name: str, field: str) -> int | None:
        row = rows.get(name)
        return None if row is None or row.get(field) is None else int(row[field])

    return tuple(
        QueueDepth(
            name=name,
            ready=count(name, "messages_ready"),
            unacked=count(name, "messages_unacknowledged"),
            consumers=count(name, "consumers"),
            delayed=count(dq_name(name), "messages"),
            dead=count(xq_name(name), "messages"),
        )
        for name in QUEUES
    )


def _amqp_depths(broker_url: str) -> tuple[QueueDepth, ...]:
    """Passive declares: ready messages and consumers of each queue (AMQP has no unacked count)."""
    connection = pika.BlockingConnection(_params(broker_url))
    try:
        channel = connection.channel()

        def declared(name: str) -> tuple[int | None, int | None]:
            nonlocal channel
            try:
                method = channel.queue_declare(name, passive=True).method
            except pika.exceptions.ChannelClosedByBroker:  # 404: not declared yet
                channel = connection.channel()
                return None, None
            return method.message_count, method.consumer_count

        depths = []
        for name in QUEUES:
            ready, consumers = declared(name)
            depths.append(
                QueueDepth(
                    name=name,
                    ready=ready,
                    unacked=None,
                    consumers=consumers,
                    delayed=declared(dq_name(name))[0],
                    dead=declared(xq_name(name))[0],
                )
            )
        return tuple(depths)
    finally:
        with contextlib.suppress(Exception):
            connection.close()


async def read_broker(settings: Settings, target: dramatiq.Broker | None = None) -> BrokerState:
    """Every queue's depth from the broker; never raises: an unreachable broker says so."""
    target = target or broker
    if settings.embedded:
        if isinstance(target, StubBroker):
            return BrokerState(source="in-process", reachable=True, queues=_stub_depths(target))
        return BrokerState(source="in-process", reachable=False, problem="no in-process broker here")
    problem = None
    if settings.rabbitmq_management_url:
        try:
            depths = await _management_depths(settings.rabbitmq_management_url, settings.broker_url)
        except Exception as error:  # noqa: BLE001 - fall back to AMQP, and say why
            problem = f"management API: {type(error).__name__}"
            log.warning("management_api_unreachable", error=repr(error))
        else:
            return BrokerState(source="management", reachable=True, queues=depths)
    try:
        depths = await asyncio.wait_for(asyncio.to_thread(_amqp_depths, settings.broker_url), BROKER_TIMEOUT * 3)
    except Exception as error:  # noqa: BLE001 - unreachable for any reason is shown, never a 500
        log.warning("broker_unreachable", error=repr(error))
        return BrokerState(source="amqp", reachable=False, problem=f"{type(error).__name__}")
    return BrokerState(source="amqp", reachable=True, queues=depths, problem=problem)


def _millis(value: Any) -> datetime | None:
    try:
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def _dead_letter(queue: str, message: dramatiq.Message[Any], dead_at: datetime | None) -> DeadLetter:
    options = dict(message.options)
    traceback = options.pop("traceback", None)
    return DeadLetter(
        queue=queue,
        message_id=message.message_id,
        actor=message.actor_name,
        args=tuple(message.args),
        kwargs=dict(message.kwargs),
        options=options,
        traceback=str(traceback) if traceback else None,
        enqueued_at=_millis(message.message_timestamp),
        dead_at=dead_at,
    )


def _death_time(properties: Any) -> datetime | None:
    deaths = (properties.headers or {}).get("x-death") or []
    when = deaths[0].get("time") if deaths and isinstance(deaths[0], dict) else None
    if isinstance(when, datetime):
        return when if when.tzinfo else when.replace(tzinfo=UTC)
    return None


def _stub_failure(proxy: Any) -> str | None:
    exception = getattr(proxy, "_exception", None)
    return f"{type(exception).__name__}: {exception}" if exception is not None else None


def _revived(message: dramatiq.Message[Any]) -> dramatiq.Message[Any]:
    """The message as it goes back to its queue: same id, a fresh retry budget."""
    options = {k: v for k, v in message.options.items() if k not in ("retries", "traceback", "requeue_timestamp")}
    return dataclasses.replace(message, options=options)


def _check_queue(queue: str) -> None:
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")


def _rabbit_dead_letters(broker_url: str, queue: str, limit: int) -> list[DeadLetter]:
    connection = pika.BlockingConnection(_params(broker_url))
    try:
        channel = connection.channel()
        found: list[DeadLetter] = []
        while len(found) < limit:
            method, properties, body = channel.basic_get(xq_name(queue), auto_ack=False)
            if method is None:
                break
            try:
                message = dramatiq.Message.decode(body)
            except Exception:  # noqa: BLE001 - a body Dramatiq cannot read is shown as such
                message = dramatiq.Message(
                    queue_name=queue,
                    actor_name="(unreadable)",
                    args=(),
                    kwargs={},
                    options={},
                    message_id=properties.message_id or "?",
                    message_timestamp=0,
                )
            found.append(_dead_letter(queue, message, _death_time(properties)))
        channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)  # every one back where it was
        return found
    finally:
        with contextlib.suppress(Exception):
            connection.close()


def _rabbit_requeue(broker_url: str, queue: str, message_id: str) -> DeadLetter | None:
    """Find the dead letter, publish it to its queue with a confirm, then ack the dead copy.
    Whatever else was looked at goes back to the dead-letter queue unchanged."""
    connection = pika.BlockingConnection(_params(broker_url))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for _ in range(DEAD_LETTER_SCAN):
            method, properties, body = channel.basic_get(xq_name(queue), auto_ack=False)
            if method is None:
                break
            try:
                message = dramatiq.Message.decode(body)
            except Exception:  # noqa: BLE001, S112 - an unreadable body is not the one asked for
                continue
            if message.message_id != message_id:
                continue
            revived = _revived(message)
            channel.basic_publish(  # raises unless the broker confirms it
                exchange="",
                routing_key=queue,
                body=revived.encode(),
                properties=pika.BasicProperties(delivery_mode=2, message_id=message_id),
                mandatory=True,
            )
            channel.basic_ack(method.delivery_tag)
            channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
            return _dead_letter(queue, message, _death_time(properties))
        channel.basic_nack(delivery_tag=0, multiple=True, requeue=True)
        return None
    finally:
        with contextlib.suppress(Exception):
            connection.close()


async def dead_letters(
    settings: Settings, queue: str, *, limit: int = 50, target: dramatiq.Broker | None = None
) -> list[DeadLetter]:
    """The first ``limit`` dead letters of ``queue``, left where they are."""
    _check_queue(queue)
    target = target or broker
    if isinstance(target, StubBroker):
        letters = []
        for proxy in list(target.dead_letters_by_queue.get(queue, ()))[:limit]:
            letter = _dead_letter(queue, proxy._message, None)
            if letter.traceback is None and (failure := _stub_failure(proxy)):
                letter = dataclasses.replace(letter, traceback=failure)
            letters.append(letter)
        return letters
    return await asyncio.wait_for(
        asyncio.to_thread(_rabbit_dead_letters, settings.broker_url, queue, limit), BROKER_TIMEOUT * 5
    )


async def requeue_dead_letter(
    settings: Settings, queue: str, message_id: str, *, target: dramatiq.Broker | None = None
) -> DeadLetter | None:
    """Put one dead letter back on its queue (same message id, fresh retries); None if absent.
    RabbitMQ: the copy is confirmed on the queue before the dead one is acknowledged, so a crash
    in between leaves it in both (actors are idempotent), never in neither."""
    _check_queue(queue)
    target = target or broker
    if isinstance(target, StubBroker):
        dead = target.dead_letters_by_queue.get(queue, [])
        for proxy in list(dead):
            if proxy.message_id == message_id:
                letter = _dead_letter(queue, proxy._message, None)
                target.enqueue(_revived(proxy._message))
                dead.remove(proxy)
                return letter
        return None
    # Not cut short: a requeue abandoned half-way could still finish after we answered "failed".
    return await asyncio.to_thread(_rabbit_requeue, settings.broker_url, queue, message_id)
