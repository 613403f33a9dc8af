"""Queue ``webhooks``: signed delivery of events to merchants' endpoints (product.md §8), under
the Standard Webhooks specification, so a merchant verifies with the ``standardwebhooks`` package;
and to CAMARA sinks (product.md §13) as CloudEvents with the sink's bearer token
(``models.operations.camara_sinks``), by the same claims, retries and log.

One delivery is one event to one endpoint; its id is the ``webhook-id`` of every attempt. The
worker claims an attempt, sends it with no database lock held, and records what came of it
(``models.operations.webhooks``). A worker killed mid-request leaves the delivery due again once
its lease passes, and the scheduler hands it out again: nothing is lost, at worst sent twice with
one ``webhook-id``.
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import aiohttp
import dramatiq
import structlog
from standardwebhooks.webhooks import Webhook

from models.clock import Clock
from models.events import CAMARA_SINK, Event, WebhookEndpoint
from models.operations.camara_sinks import sink_message
from models.operations.webhooks import Outcome, UnsafeDestination, check_destination, claim_delivery, record_attempt
from queues import ACTOR_OPTIONS, PERMANENT_ERRORS, worker_settings

__all__ = ["deliver_webhook", "payload", "signature_header"]

log = structlog.get_logger("matomete.workers.webhooks")
TIMEOUT = aiohttp.ClientTimeout(total=15)
MAX_RESPONSE_BYTES = 4096
MAX_RETRY_AFTER = timedelta(hours=24)


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


@dramatiq.actor(queue_name="webhooks", throws=PERMANENT_ERRORS, **ACTOR_OPTIONS)
async def deliver_webhook(delivery_id: str) -> None:
    """One attempt at one delivery, if it is still pending."""
    claim = await claim_delivery(delivery_id)
    if claim is None:
        return
    delivery, endpoint, event = claim.delivery, claim.endpoint, claim.event
    settings = worker_settings()
    headers = {"content-type": "application/json"}
    body = payload(event)
    if endpoint.kind == CAMARA_SINK:  # a CAMARA sink: a CloudEvent, with the payment's or refund's token
        message = await sink_message(claim, base_url=settings.base_url, secret_key=settings.secret_key)
        if message.withheld is not None:
            await record_attempt(delivery.id, endpoint.id, Outcome(None, message.withheld, 0, withheld=True))
            log.info("webhook_withheld", delivery_id=delivery.id, event_type=event.type, reason=message.withheld)
            return
        body, headers = message.body, dict(message.headers or {})
    sent_at = Clock.system_now()  # receivers check the timestamp against their own clock
    headers.update(
        {
            "webhook-id": delivery.id,
            "webhook-timestamp": str(int(sent_at.timestamp())),
            "webhook-signature": signature_header(endpoint, delivery.id, sent_at, body, claim.now),
            "user-agent": "Matomete-Webhooks/1",
        }
    )
    outcome = await _post(endpoint.url, headers, body, allow_insecure=settings.webhooks_allow_insecure)
    await record_attempt(delivery.id, endpoint.id, outcome)
    log.info(
        "webhook_attempt",
        delivery_id=delivery.id,
        event_type=event.type,
        status_code=outcome.status_code,
        error=outcome.error,
        attempt=delivery.attempts,
    )
