"""``/metrics`` of the web process, in Prometheus's text format (``prometheus_client``).

Requests are counted by route pattern (``/ops/lines/{line_id}``, never the raw path: the label
set stays bounded and no confirmation token reaches it) and status, with a latency histogram.
Queue depths, the outbox backlog, the scheduler's jobs and running billing runs are read when
Prometheus scrapes (the same readers as ``/ops/system``). Under ``matomete up`` the in-process
worker's Dramatiq series and the relay's series are in the same registry, so they show here too.

``/metrics`` needs no credentials, as scrapers expect; it carries counts and route patterns,
never a secret, an id or a path. Keep it off the public internet (the README says how).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

import queues
from api.keys import SETTINGS
from models.operations.system import DatabaseVitals, database_vitals

__all__ = ["metrics_middleware", "routes"]

log = structlog.get_logger("matomete.metrics")
routes = web.RouteTableDef()

REQUESTS = Counter(
    "matomete_http_requests",
    "HTTP requests answered, by method, route pattern and status.",
    ["method", "route", "status"],
)
LATENCY = Histogram(
    "matomete_http_request_duration_seconds",
    "Time to answer an HTTP request, by method and route pattern.",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UNMATCHED = "(unmatched)"  # 404s and 405s: one label value, whatever path was asked


def route_of(request: web.Request) -> str:
    """The route pattern that answered ``request`` (``/v1/charges/{id}``), or ``(unmatched)``."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    if resource is None or request.match_info.http_exception is not None:
        return UNMATCHED
    return resource.canonical


@web.middleware
async def metrics_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count every request by route pattern and status, and time it."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        status = exc.status
        raise
    else:
        status = response.status
        return response
    finally:
        route = route_of(request)
        REQUESTS.labels(request.method, route, str(status)).inc()
        LATENCY.labels(request.method, route).observe(time.perf_counter() - started)


class VitalsCollector(Collector):
    """Gauges of the last vital signs read (the ``/metrics`` handler reads them just before)."""

    def __init__(self) -> None:
        self.broker: queues.BrokerState | None = None
        self.database: DatabaseVitals | None = None

    def collect(self) -> Iterator[Any]:
        """The queue, outbox, scheduler and billing-run gauges."""
        if self.broker is not None:
            yield from self._broker(self.broker)
        if self.database is not None:
            yield from self._database(self.database)

    @staticmethod
    def _broker(state: queues.BrokerState) -> Iterator[Any]:
        up = GaugeMetricFamily("matomete_broker_up", "1 when the broker answered the last scrape.")
        up.add_metric([], 1 if state.reachable else 0)
        yield up
        families = {
            "ready": GaugeMetricFamily(
                "matomete_queue_messages_ready", "Messages waiting in a queue.", labels=["queue"]
            ),
            "unacked": GaugeMetricFamily(
                "matomete_queue_messages_unacked",
                "Messages a worker holds unacknowledged (management API only).",
                labels=["queue"],
            ),
            "consumers": GaugeMetricFamily("matomete_queue_consumers", "Consumers of a queue.", labels=["queue"]),
            "delayed": GaugeMetricFamily(
                "matomete_queue_messages_delayed", "Messages on a queue's delay queue (.DQ).", labels=["queue"]
            ),
            "dead": GaugeMetricFamily(
                "matomete_queue_dead_letters", "Messages on a queue's dead-letter queue (.XQ).", labels=["queue"]
            ),
        }
        for depth in state.queues:
            for field, family in families.items():
                value = getattr(depth, field)
                if value is not None:  # unknown is left out, never reported as 0
                    family.add_metric([depth.name], value)
        yield from families.values()

    @staticmethod
    def _database(vitals: DatabaseVitals) -> Iterator[Any]:
        backlog = GaugeMetricFamily("matomete_outbox_backlog", "Outbox messages not yet published.")
        backlog.add_metric([], vitals.outbox_backlog)
        oldest = GaugeMetricFamily("matomete_outbox_oldest_unsent_seconds", "Age of the oldest unsent outbox message.")
        oldest.add_metric([], vitals.oldest_unsent_seconds or 0.0)
        last_run = GaugeMetricFamily(
            "matomete_scheduler_job_last_run_timestamp_seconds", "When a scheduler job last ran.", labels=["job"]
        )
        failures = GaugeMetricFamily(
            "matomete_scheduler_job_failures",
            "Failures of a scheduler job in a row (0 after a success).",
            labels=["job"],
        )
        for job in vitals.jobs:
            last_run.add_metric([job.name], job.last_run_at.timestamp())
            failures.add_metric([job.name], job.failures)
        running = GaugeMetricFamily("matomete_billing_runs_running", "Month closes in progress.")
        running.add_metric([], len(vitals.running))
        yield from (backlog, oldest, last_run, failures, running)


VITALS = VitalsCollector()
REGISTRY.register(VITALS)


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    """Every series of this process; the vital signs are read now, at scrape time."""
    VITALS.broker = await queues.read_broker(request.app[SETTINGS])
    try:
        VITALS.database = await database_vitals()
    except Exception as error:  # noqa: BLE001 - a scrape still answers without the database's half
        log.warning("metrics_database_unreadable", error=repr(error))
        VITALS.database = None
    body = generate_latest(REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})
