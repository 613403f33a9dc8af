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
import contextlib
import contextvars
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

import dramatiq
import pika
import structlog
from dramatiq.asyncio import EventLoopThread, get_event_loop_thread, set_event_loop_thread
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL, RabbitmqBroker
from dramatiq.brokers.stub import StubBroker
from dramatiq.common import dq_name, xq_name
from dramatiq.middleware import AsyncIO, Middleware, MiddlewareError
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
    "MemoryPublisher",
    "PublishError",
    "RabbitPublisher",
    "broker",
    "broker_probe",
    "relay_forever",
    "relay_once",
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
    for name in QUEUES:
        built.declare_queue(name)
    return built


broker = build_broker(read_broker_url())
dramatiq.set_broker(broker)


def declare_queues() -> None:
    """Create every queue on the broker now (RabbitMQ declares lazily, on first use)."""
    if isinstance(broker, RabbitmqBroker):
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
    worker = dramatiq.Worker(broker, queues=set(queues) if queues else None, worker_threads=threads, worker_timeout=100)
    worker.start()
    return worker


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


async def relay_forever(publisher: Publisher, *, stop: asyncio.Event, idle_seconds: float = 0.1) -> None:
    """Relay until ``stop`` is set; back off on broker or database errors, never give up."""
    backoff = idle_seconds
    while not stop.is_set():
        try:
            sent = await relay_once(publisher)
        except Exception as error:  # noqa: BLE001 - the relay must outlive any one outage
            log.warning("relay_failed", error=repr(error), retry_in=backoff)
            sent, backoff = 0, min(backoff * 2, 5.0)
        else:
            backoff = idle_seconds
            if sent:
                log.debug("relayed", messages=sent)
                continue
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), backoff)
