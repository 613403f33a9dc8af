"""Queue ``webhooks``: signed delivery of events to merchants' endpoints (product.md §8), under
the Standard Webhooks specification, so a merchant verifies with the ``standardwebhooks`` package.

One delivery is one event to one endpoint; its id is the ``webhook-id`` of every attempt. An
attempt is claimed (a lease pushes ``next_attempt_at`` ahead) and committed before the HTTP
request goes out, and recorded after it in a second transaction, so no database lock is held
across the network. A worker killed mid-request leaves the delivery due again once the lease
passes, and the scheduler hands it out again: nothing is lost, at worst sent twice with one
``webhook-id``. Long waits between retries live in the database, never in RabbitMQ.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import dramatiq
import structlog
from standardwebhooks.webhooks import Webhook
from tortoise.transactions import in_transaction

from models.clock import Clock, clock
from models.events import DELIVERY_LEASE, DeliveryAttempt, Event, WebhookDelivery, WebhookEndpoint
from queues import ACTOR_OPTIONS, worker_settings

__all__ = [
    "RETRY_SCHEDULE",
    "UnsafeDestination",
    "check_destination",
    "deliver_webhook",
    "enqueue_due_deliveries",
    "retry_delay",
]

log = structlog.get_logger("matomete.workers.webhooks")
# About three days in all: the wait after each failed attempt, before jitter.
RETRY_SCHEDULE = tuple(
    timedelta(seconds=s) for s in (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600, 20 * 3600, 24 * 3600)
)
TIMEOUT = aiohttp.ClientTimeout(total=15)
MAX_RESPONSE_BYTES = 4096
MAX_RETRY_AFTER = timedelta(hours=24)
BATCH = 500


class UnsafeDestination(ValueError):
    """A webhook URL the platform will not call (scheme, or an internal address)."""


def retry_delay(attempts: int, rng: random.Random | None = None) -> timedelta | None:
    """The wait after the ``attempts``-th failed attempt (±20% jitter), None when they are spent."""
    if attempts > len(RETRY_SCHEDULE):
        return None
    base = RETRY_SCHEDULE[attempts - 1]
    return base * (0.8 + 0.4 * (rng or random).random())


def _address_allowed(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return ip.is_global and not ip.is_multicast


async def check_destination(url: str, *, allow_insecure: bool) -> None:
    """Refuse non-https URLs and hosts resolving to loopback, private, link-local or metadata
    addresses, unless ``allow_insecure`` (a merchant testing against its own machine)."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UnsafeDestination("must be an absolute https:// URL")
    if allow_insecure:
        return
    if parts.scheme != "https":
        raise UnsafeDestination("must use https")
    try:
        addresses = [ipaddress.ip_address(parts.hostname).compressed]
    except ValueError:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(parts.hostname, parts.port or 443)
        except OSError:
            return  # does not resolve now: nothing internal to refuse; delivery re-checks every time
        addresses = [str(info[4][0]) for info in infos]
    bad = [address for address in addresses if not _address_allowed(address)]
    if bad:
        raise UnsafeDestination(f"resolves to an internal address ({bad[0]})")


def signature_header(endpoint: WebhookEndpoint, msg_id: str, sent_at: datetime, body: str, now: datetime) -> str:
    """``v1,<sig>``; during a rotation's overlap, the old secret's signature too."""
    signatures = []
    if endpoint.previous_secret and endpoint.previous_secret_expires_at and now < endpoint.previous_secret_expires_at:
        signatures.append(Webhook(endpoint.previous_secret).sign(msg_id, sent_at, body))
    signatures.append(Webhook(endpoint.secret).sign(msg_id, sent_at, body))
    return " ".join(signatures)


def payload(event: Event) -> str:
    """``{type, timestamp, data}``: data is the object as the API showed it."""
    return json.dumps(
        {"id": event.id, "type": event.type, "timestamp": event.created_at.isoformat(), "data": event.data["object"]},
        ensure_ascii=False,
        separators=(",", ":"),
    )


@dataclass
class Outcome:
    """What one HTTP attempt came to."""

    status_code: int | None
    error: str | None
    duration_ms: int
    retry_after: timedelta | None = None

    @property
    def delivered(self) -> bool:
        """2xx."""
        return self.status_code is not None and 200 <= self.status_code < 300


def _retry_after(header: str | None) -> timedelta | None:
    if header and header.strip().isdigit():
        return min(timedelta(seconds=int(header.strip())), MAX_RETRY_AFTER)
    return None


async def _post(url: str, headers: dict[str, str], body: str, *, allow_insecure: bool) -> Outcome:
    started = time.perf_counter()
    try:
        await check_destination(url, allow_insecure=allow_insecure)
        async with (
            aiohttp.ClientSession(timeout=TIMEOUT) as session,
            session.post(url, data=body.encode(), headers=headers, allow_redirects=False) as response,
        ):
            await response.content.read(MAX_RESPONSE_BYTES)
            retry = _retry_after(response.headers.get("Retry-After")) if response.status in (429, 503) else None
            return Outcome(response.status, None, int((time.perf_counter() - started) * 1000), retry)
    except (aiohttp.ClientError, TimeoutError, OSError, UnsafeDestination) as error:
        message = f"{type(error).__name__}: {error}"[:500]
        return Outcome(None, message, int((time.perf_counter() - started) * 1000))


@dramatiq.actor(queue_name="webhooks", **ACTOR_OPTIONS)
async def deliver_webhook(delivery_id: str) -> None:
    """One attempt at one delivery, if it is still pending."""
    async with in_transaction():
        delivery = await WebhookDelivery.select_for_update().get_or_none(id=delivery_id)
        if delivery is None or delivery.status != "pending":
            return
        endpoint = await WebhookEndpoint.get(id=delivery.endpoint_id)
        now = await clock.now()
        if not endpoint.enabled or endpoint.deleted_at is not None:
            delivery.status, delivery.next_attempt_at = "failed", None
            await delivery.save(update_fields=["status", "next_attempt_at"])
            return
        delivery.attempts += 1
        delivery.next_attempt_at = now + DELIVERY_LEASE  # claimed: not handed out again meanwhile
        await delivery.save(update_fields=["attempts", "next_attempt_at"])
        event = await Event.get(id=delivery.event_id)
    body = payload(event)
    sent_at = Clock.system_now()  # receivers check the timestamp against their own clock
    headers = {
        "content-type": "application/json",
        "webhook-id": delivery.id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": signature_header(endpoint, delivery.id, sent_at, body, now),
        "user-agent": "Matomete-Webhooks/1",
    }
    outcome = await _post(endpoint.url, headers, body, allow_insecure=worker_settings().webhooks_allow_insecure)
    await _record(delivery.id, endpoint.id, outcome)
    log.info(
        "webhook_attempt",
        delivery_id=delivery.id,
        event_type=event.type,
        status_code=outcome.status_code,
        error=outcome.error,
        attempt=delivery.attempts,
    )


async def _record(delivery_id: str, endpoint_id: str, outcome: Outcome) -> None:
    async with in_transaction():
        delivery = await WebhookDelivery.select_for_update().get(id=delivery_id)
        endpoint = await WebhookEndpoint.select_for_update().get(id=endpoint_id)
        now = await clock.now()
        await DeliveryAttempt.create(
            delivery=delivery,
            attempted_at=now,
            status_code=outcome.status_code,
            duration_ms=outcome.duration_ms,
            error=outcome.error,
        )
        if outcome.delivered:
            delivery.status, delivery.next_attempt_at = "delivered", None
            endpoint.consecutive_failures = 0
        elif outcome.status_code == 410:
            delivery.status, delivery.next_attempt_at = "failed", None
            await _disable(endpoint, "gone")
        else:
            endpoint.consecutive_failures += 1
            wait = outcome.retry_after or retry_delay(delivery.attempts)
            if wait is None:
                delivery.status, delivery.next_attempt_at = "failed", None
                await _disable(endpoint, "failing")
            else:
                delivery.next_attempt_at = now + wait
        await delivery.save(update_fields=["status", "next_attempt_at"])
        await endpoint.save(update_fields=["consecutive_failures", "enabled", "disabled_reason"])


async def _disable(endpoint: WebhookEndpoint, reason: str) -> None:
    """Stop sending to an endpoint and tell the merchant, as an event it can read."""
    if not endpoint.enabled:
        return
    endpoint.enabled, endpoint.disabled_reason = False, reason
    await endpoint.save(update_fields=["enabled", "disabled_reason"])
    await Event.record("webhook_endpoint.disabled", merchant_id=endpoint.merchant_id, obj=endpoint_view(endpoint))


def endpoint_view(endpoint: WebhookEndpoint, *, secret: str | None = None) -> dict[str, Any]:
    """The webhook endpoint object of the merchant API; the secret only when just made."""
    view: dict[str, Any] = {
        "id": endpoint.id,
        "object": "webhook_endpoint",
        "url": endpoint.url,
        "events": endpoint.events,
        "enabled": endpoint.enabled,
        "disabled_reason": endpoint.disabled_reason,
        "created": int(endpoint.created_at.timestamp()),
    }
    if secret is not None:
        view["secret"] = secret
    return view


async def enqueue_due_deliveries(now: datetime) -> int:
    """Scheduler job: hand every pending delivery whose time has come to the worker, once per lease."""
    from models.outbox import send

    handed = 0
    async with in_transaction():
        due = (
            await WebhookDelivery.select_for_update(skip_locked=True)
            .filter(status="pending", next_attempt_at__lte=now)
            .limit(BATCH)
        )
        for delivery in due:
            delivery.next_attempt_at = now + DELIVERY_LEASE
            await delivery.save(update_fields=["next_attempt_at"])
            await send(deliver_webhook, delivery.id)
            handed += 1
    return handed
