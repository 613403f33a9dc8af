"""Webhook endpoints and deliveries (product.md §8): what a merchant does to its endpoints
(create, update, delete, rotate the secret, replay an event), and the bookkeeping of each
delivery attempt the webhooks worker makes.

An attempt is claimed (a lease pushes ``next_attempt_at`` ahead) and committed before the HTTP
request goes out, and recorded after it in a second transaction, so no database lock is held
across the network. Long waits between retries live in the database, never in RabbitMQ: the
scheduler hands out what has fallen due.
"""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import random
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from tortoise.transactions import in_transaction

from billing.errors import Conflict, InvalidRequest
from models.audit_log import Actor, audit
from models.base import fits_id_column
from models.clock import clock
from models.events import (
    CAMARA_SINK,
    DELIVERY_LEASE,
    EVENT_TYPES,
    STANDARD,
    DeliveryAttempt,
    Event,
    WebhookDelivery,
    WebhookEndpoint,
)
from models.operations.charges import find_owned, not_found
from models.outbox import DELIVER_WEBHOOK, send

__all__ = [
    "MAX_ENDPOINTS",
    "MAX_URL_LENGTH",
    "RETRY_SCHEDULE",
    "ROTATION_OVERLAP",
    "URL",
    "URL_PATTERN",
    "Claim",
    "Outcome",
    "UnsafeDestination",
    "check_destination",
    "claim_delivery",
    "create_endpoint",
    "delete_endpoint",
    "enqueue_due_deliveries",
    "event_types",
    "find_endpoint",
    "record_attempt",
    "redeliver",
    "redeliver_event",
    "retry_delay",
    "rotate_secret",
    "update_endpoint",
]

# About three days in all: the wait after each failed attempt, before jitter.
RETRY_SCHEDULE = tuple(
    timedelta(seconds=s) for s in (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 14 * 3600, 20 * 3600, 24 * 3600)
)
ROTATION_OVERLAP = timedelta(hours=24)
MAX_ENDPOINTS = 16
MAX_URL_LENGTH = 2048  # the column's width
# An absolute http(s) URL without spaces or control characters (a browser is sent to it, or
# the platform calls it): the same pattern checks return and webhook URLs and is the OpenAPI
# documents' ``pattern``.
# RFC 3986's characters only (an IRI's others are percent-encoded first): a host name or an IP
# literal and an optional port, then a path or query and a fragment of its characters.
_U = r"A-Za-z0-9\-._~!$&'()*+,;="
_PCT = r"%[0-9A-Fa-f]{2}"
_HOST = rf"(?:\[[0-9A-Fa-f:.]+\]|(?:[{_U}]|{_PCT})+)(?::[0-9]*)?"
_PCHAR = rf"(?:[{_U}:@/?]|{_PCT})"
URL_PATTERN = rf"^[Hh][Tt][Tt][Pp][Ss]?://{_HOST}(?:[/?]{_PCHAR}*)?(?:#{_PCHAR}*)?$"
URL = re.compile(URL_PATTERN)
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
    if len(url) > MAX_URL_LENGTH:
        raise UnsafeDestination(f"must be at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port  # out of 0-65535 or not a number: ValueError
    except ValueError:
        raise UnsafeDestination("must be an absolute https:// URL with a valid host and port") from None
    # URL is the documents' pattern: no user part, a host before any path.
    if parts.scheme not in ("https", "http") or not parts.hostname or port == 0 or not URL.fullmatch(url):
        raise UnsafeDestination("must be an absolute https:// URL")
    if any(ord(char) < 33 or ord(char) == 127 for char in url):
        raise UnsafeDestination("must not hold spaces or control characters")
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


def event_types(values: Iterable[str]) -> list[str]:
    """The event types an endpoint asks for, sorted and each once (``*`` for all); a
    ``ValueError`` names an unknown one."""
    wanted = list(values)
    for value in wanted:
        if value != "*" and value not in EVENT_TYPES:
            raise ValueError(f"unknown event type {value!r}")
    return sorted(set(wanted))


async def _checked_url(url: str, *, allow_insecure: bool) -> str:
    try:
        await check_destination(url, allow_insecure=allow_insecure)
    except UnsafeDestination as error:
        raise InvalidRequest(f"url {error}.", param="url", code="url_invalid") from None
    return url


def new_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


async def _endpoint(
    merchant_id: str, endpoint_id: str, *, lock: bool = False, any_kind: bool = False
) -> WebhookEndpoint:
    """One of the merchant's endpoints: its own (``standard``) only unless ``any_kind`` (a CAMARA
    sink's is read and its deliveries replayed, never edited: the payments that name it own it)."""
    endpoint = await find_owned(
        WebhookEndpoint, endpoint_id, merchant_id=merchant_id, kind="webhook endpoint", lock=lock, deleted_at=None
    )
    if not any_kind and endpoint.kind != STANDARD:
        raise not_found("webhook endpoint", endpoint_id)
    return endpoint


async def create_endpoint(
    merchant_id: str, *, url: str, events: list[str], allow_insecure: bool, actor: Actor
) -> tuple[WebhookEndpoint, str]:
    """A new endpoint and its signing secret (answered once); at most 16 per merchant."""
    url = await _checked_url(url, allow_insecure=allow_insecure)
    async with in_transaction():
        if (
            await WebhookEndpoint.filter(merchant_id=merchant_id, kind=STANDARD, deleted_at=None).count()
            >= MAX_ENDPOINTS
        ):
            raise Conflict(  # the merchant's endpoints, not this request, stand in the way
                f"At most {MAX_ENDPOINTS} endpoints per merchant.", param="url", code="too_many_endpoints"
            )
        secret = new_secret()
        endpoint = await WebhookEndpoint.create(
            merchant_id=merchant_id, url=url, events=events, secret=secret, created_at=await clock.now()
        )
        await audit(actor, "webhook_endpoint.create", "webhook_endpoint", endpoint.id, url=url, events=events)
    return endpoint, secret


async def update_endpoint(  # noqa: PLR0913 - the fields that may change, keyword-only
    merchant_id: str,
    endpoint_id: str,
    *,
    url: str | None,
    events: list[str] | None,
    enabled: bool | None,
    allow_insecure: bool,
    actor: Actor,
) -> WebhookEndpoint:
    """Only the fields given change; enabling again clears the failure count."""
    checked = await _checked_url(url, allow_insecure=allow_insecure) if url is not None else None
    async with in_transaction():
        endpoint = await _endpoint(merchant_id, endpoint_id, lock=True)
        if checked is not None:
            endpoint.url = checked
        if events is not None:
            endpoint.events = events
        if enabled is not None:
            endpoint.enabled = enabled
            if enabled:
                endpoint.consecutive_failures, endpoint.disabled_reason = 0, None
        await endpoint.save()
        changes = {"url": checked, "events": events, "enabled": enabled}
        await audit(
            actor,
            "webhook_endpoint.update",
            "webhook_endpoint",
            endpoint.id,
            **{name: value for name, value in changes.items() if value is not None},
        )
    return endpoint


async def find_endpoint(merchant_id: str, endpoint_id: str, *, any_kind: bool = False) -> WebhookEndpoint:
    """One of the merchant's endpoints that is not deleted (a CAMARA sink's too if ``any_kind``)."""
    return await _endpoint(merchant_id, endpoint_id, any_kind=any_kind)


async def delete_endpoint(merchant_id: str, endpoint_id: str, *, actor: Actor) -> WebhookEndpoint:
    """Nothing more is sent to it; its delivery log stays readable for the records."""
    async with in_transaction():
        endpoint = await _endpoint(merchant_id, endpoint_id, lock=True)
        endpoint.deleted_at, endpoint.enabled = await clock.now(), False
        await endpoint.save(update_fields=["deleted_at", "enabled"])
        await audit(actor, "webhook_endpoint.delete", "webhook_endpoint", endpoint.id)
    return endpoint


async def rotate_secret(merchant_id: str, endpoint_id: str, *, actor: Actor) -> tuple[WebhookEndpoint, str]:
    """A new secret (answered once); for 24 hours deliveries carry both signatures."""
    async with in_transaction():
        endpoint = await _endpoint(merchant_id, endpoint_id, lock=True)
        secret = new_secret()
        endpoint.previous_secret = endpoint.secret
        endpoint.previous_secret_expires_at = await clock.now() + ROTATION_OVERLAP
        endpoint.secret = secret
        await endpoint.save(update_fields=["previous_secret", "previous_secret_expires_at", "secret"])
        await audit(actor, "webhook_endpoint.rotate_secret", "webhook_endpoint", endpoint.id)
    return endpoint, secret


async def _send_again(delivery: WebhookDelivery, *, now: datetime) -> None:
    """A locked delivery pending again with its retries counted afresh, handed to the worker at commit."""
    delivery.status, delivery.attempts, delivery.next_attempt_at = "pending", 0, now + DELIVERY_LEASE
    await delivery.save(update_fields=["status", "attempts", "next_attempt_at"])
    await send(DELIVER_WEBHOOK, delivery.id)


async def redeliver_event(merchant_id: str, event_id: str, *, actor: Actor) -> Event:
    """Every enabled endpoint that wants the event gets it again, under the same ``webhook-id``;
    so does every enabled CAMARA sink it was delivered to."""
    async with in_transaction():
        event = await Event.get_or_none(id=event_id, merchant_id=merchant_id) if fits_id_column(event_id) else None
        if event is None:
            raise not_found("event", event_id)
        now = await clock.now()
        endpoints = await WebhookEndpoint.filter(merchant_id=merchant_id, kind=STANDARD, enabled=True, deleted_at=None)
        sinks = await WebhookDelivery.select_for_update().filter(
            event_id=event.id, endpoint__kind=CAMARA_SINK, endpoint__enabled=True
        )
        for sent in sinks:
            await _send_again(sent, now=now)
        for endpoint in (e for e in endpoints if e.wants(event.type)):
            delivery = await WebhookDelivery.select_for_update().get_or_none(event_id=event.id, endpoint_id=endpoint.id)
            if delivery is None:
                await WebhookDelivery.schedule(event, endpoint, now=now)
            else:
                await _send_again(delivery, now=now)
        await audit(actor, "event.redeliver", "event", event.id)
    return event


async def redeliver(merchant_id: str, endpoint_id: str, delivery_id: str, *, actor: Actor) -> WebhookDelivery:
    """One delivery to one endpoint sent again, under the same ``webhook-id``, its retries
    counted afresh; a disabled endpoint must be enabled first (it would not be called)."""
    async with in_transaction():
        endpoint = await _endpoint(merchant_id, endpoint_id, any_kind=True)
        found = (
            await WebhookDelivery.select_for_update().get_or_none(id=delivery_id, endpoint_id=endpoint.id)
            if fits_id_column(delivery_id)
            else None
        )
        if found is None:
            raise not_found("webhook delivery", delivery_id)
        if not endpoint.enabled:
            raise Conflict("Enable the endpoint before sending to it again.", code="endpoint_disabled")
        await _send_again(found, now=await clock.now())
        await audit(actor, "webhook_delivery.redeliver", "webhook_delivery", found.id, event=found.event_id)
    return found


@dataclass(frozen=True)
class Claim:
    """A delivery claimed for one attempt: what the worker sends, and to whom."""

    delivery: WebhookDelivery
    endpoint: WebhookEndpoint
    event: Event
    now: datetime


@dataclass
class Outcome:
    """What one HTTP attempt came to."""

    status_code: int | None
    error: str | None
    duration_ms: int
    retry_after: timedelta | None = None
    # Not sent, and never to be (a CAMARA sink's credential has expired): the delivery fails,
    # the endpoint is left as it is.
    withheld: bool = False

    @property
    def delivered(self) -> bool:
        """2xx."""
        return self.status_code is not None and 200 <= self.status_code < 300


async def claim_delivery(delivery_id: str) -> Claim | None:
    """Claim one attempt of a pending delivery (committed before any request goes out); None
    when there is nothing to send: delivered or failed already, or its endpoint is gone."""
    async with in_transaction():
        delivery = await WebhookDelivery.select_for_update().get_or_none(id=delivery_id)
        if delivery is None or delivery.status != "pending":
            return None
        endpoint = await WebhookEndpoint.get(id=delivery.endpoint_id)
        now = await clock.now()
        if not endpoint.enabled or endpoint.deleted_at is not None:
            delivery.status, delivery.next_attempt_at = "failed", None
            await delivery.save(update_fields=["status", "next_attempt_at"])
            return None
        delivery.attempts += 1
        delivery.next_attempt_at = now + DELIVERY_LEASE  # claimed: not handed out again meanwhile
        await delivery.save(update_fields=["attempts", "next_attempt_at"])
        event = await Event.get(id=delivery.event_id)
    return Claim(delivery=delivery, endpoint=endpoint, event=event, now=now)


async def record_attempt(delivery_id: str, endpoint_id: str, outcome: Outcome) -> None:
    """Write what an attempt came to: 2xx delivered; 410 disables the endpoint; anything else
    waits for the next retry (or ``Retry-After``), and fails the delivery and disables the
    endpoint once the retries are spent."""
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
        elif outcome.withheld:
            delivery.status, delivery.next_attempt_at = "failed", None
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
    await Event.record("webhook_endpoint.disabled", merchant_id=endpoint.merchant_id, obj=endpoint.to_api())


async def enqueue_due_deliveries(now: datetime) -> int:
    """Scheduler job: hand every pending delivery whose time has come to the worker, once per lease."""
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
            await send(DELIVER_WEBHOOK, delivery.id)
            handed += 1
    return handed
