"""Notifications to a CAMARA payment's or refund's ``sink`` (product.md §13), as CloudEvents 1.0
in structured JSON, delivered by the webhook engine (``models.operations.webhooks``,
``workers/webhooks.py``): the same retries and backoff, a 410 that stops deliveries to the sink,
the same delivery log and replay.

A sink is a ``WebhookEndpoint`` of kind ``camara_sink``, one per merchant (the aggregator's) and
sink URL, made (or enabled again) by the payment or refund that names it, in that payment's or
refund's transaction. It subscribes to nothing: a charge's lifecycle event goes to the sink of
the CAMARA payment the charge is (``Event.to_payment_sink``), and a CAMARA refund's to the sink
of that refund, never to another payment's sink at the same URL: ``refund-completed`` when the
refund is made (``notify_refund``, in createRefund's transaction), ``refund-in-bill`` when the
month close accounts for it on the subscriber's bill (its ``refund.credited`` event: credited on
the bill, netted from the charge billed, or the charge refunded in full before billing).

Each request carries the payment's or refund's own credential, ``Authorization: Bearer``, read
sealed from its row at every attempt. Once its ``accessTokenExpiresUtc`` has passed nothing is
sent: the YAML says the client stops receiving notifications then, and a notification without
the token the aggregator asked for would be refused by it or, worse, trusted unauthenticated.
The delivery is failed ("credential expired") without counting against the sink.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cloudevents.core.bindings.http import to_structured_event
from cloudevents.core.v1.event import CloudEvent

from models.camara import CamaraPayment, CamaraRefund
from models.charges import Refund
from models.clock import clock
from models.events import CAMARA_SINK, REFUND_SINK_EVENT, Event, WebhookDelivery, WebhookEndpoint
from models.merchants import Merchant
from models.operations.webhooks import Claim, new_secret
from models.passwords import unseal_password

__all__ = [
    "PAYMENTS_PREFIX",
    "PAYMENT_TYPES",
    "REFUNDS_PREFIX",
    "REFUND_COMPLETED",
    "REFUND_IN_BILL",
    "SinkMessage",
    "ensure_sink",
    "notify_refund",
    "payment_url",
    "refund_url",
    "sink_message",
]

PAYMENTS_PREFIX = "/carrier-billing/v0.5"
REFUNDS_PREFIX = "/carrier-billing-refund/v0.3"
_PAYMENT = "org.camaraproject.carrier-billing.v0."
_REFUND = "org.camaraproject.carrier-billing-refund.v0."
PAYMENT_TYPES = {
    "charge.reserved": _PAYMENT + "payment-reserved",
    "charge.succeeded": _PAYMENT + "payment-completed",
    "charge.failed": _PAYMENT + "payment-denied",
    "charge.canceled": _PAYMENT + "payment-cancelled",
}
REFUND_COMPLETED = _REFUND + "refund-completed"
REFUND_IN_BILL = _REFUND + "refund-in-bill"
# Why a payment was denied, for people (``denialReason``), by the charge's failure code.
DENIALS = {
    "invalid_credentials": "The subscriber's sign-in failed.",
    "account_locked": "The subscriber's ID is locked.",
    "line_mismatch": "The confirmation did not come from the payment's line.",
    "line_inactive": "The line is not active.",
    "line_ineligible": "Carrier billing is not available for this line.",
    "limit_exceeded": "The amount is above the subscriber's monthly limit.",
    "merchant_inactive": "The merchant may not charge at present.",
}


def payment_url(base_url: str, payment_id: str) -> str:
    """The payment's ``resourceURL``: its notifications' ``source``."""
    return f"{base_url}{PAYMENTS_PREFIX}/payments/{payment_id}"


def refund_url(base_url: str, payment_id: str, refund_id: str) -> str:
    """The refund's resource: its notifications' ``source``."""
    return f"{base_url}{REFUNDS_PREFIX}/payments/{payment_id}/refunds/{refund_id}"


async def ensure_sink(merchant_id: str, url: str) -> WebhookEndpoint:
    """The merchant's endpoint for the sink ``url``, made if new, enabled again if a 410 or
    spent retries had disabled it (a payment naming it anew wants its notifications there).
    Call it in the transaction of the payment or refund that names the sink."""
    endpoint = await WebhookEndpoint.sink_of(merchant_id, url)
    if endpoint is None:
        await Merchant.select_for_update().get(id=merchant_id)  # one row per sink, however many race
        endpoint = await WebhookEndpoint.sink_of(merchant_id, url)
    if endpoint is None:
        return await WebhookEndpoint.create(
            merchant_id=merchant_id,
            url=url,
            kind=CAMARA_SINK,
            events=[],
            secret=new_secret(),
            created_at=await clock.now(),
        )
    if not endpoint.enabled:
        endpoint = await WebhookEndpoint.select_for_update().get(id=endpoint.id)
        endpoint.enabled, endpoint.disabled_reason, endpoint.consecutive_failures = True, None, 0
        await endpoint.save(update_fields=["enabled", "disabled_reason", "consecutive_failures"])
    return endpoint


async def notify_refund(side: CamaraRefund) -> WebhookDelivery | None:
    """``refund-completed`` to the refund's sink: call it in the refund's transaction, after its
    ``CamaraRefund`` row is made (the refund's ``charge.refunded`` event is written already)."""
    if side.sink is None:
        return None
    refund = await Refund.get(id=side.refund_id)
    event = await (
        Event.filter(object_id=refund.charge_id, type="charge.refunded")  # type: ignore[attr-defined]
        .order_by("-created_at", "-id")
        .first()
    )
    if event is None:  # pragma: no cover - refund_charge records it in the same transaction
        return None
    endpoint = await ensure_sink(event.merchant_id, side.sink)  # type: ignore[attr-defined]
    return await WebhookDelivery.schedule(event, endpoint, now=await clock.now(), refund_id=refund.id)


@dataclass(frozen=True)
class SinkMessage:
    """What one attempt sends to a sink, or why nothing is sent (``withheld``)."""

    body: str = ""
    headers: dict[str, str] | None = None
    withheld: str | None = None


def _stamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _payment_data(event: Event) -> tuple[str, dict[str, Any]]:
    """The CloudEvent type and data of a charge event, as the payment YAML's event schemas say."""
    charge = event.data["object"]
    payment_id = str(charge["id"])
    expired = event.type == "charge.failed" and charge.get("failure_code") == "expired"
    if expired:
        return PAYMENT_TYPES["charge.canceled"], {
            "paymentId": payment_id,
            "status": "failed",
            "description": "The subscriber did not confirm the payment in time: it is cancelled.",
        }
    if event.type == "charge.reserved":
        description = "The subscriber confirmed the payment: it is reserved until confirmed or cancelled."
        return PAYMENT_TYPES[event.type], {"paymentId": payment_id, "status": "succeeded", "description": description}
    if event.type == "charge.succeeded":
        return PAYMENT_TYPES[event.type], {
            "paymentId": payment_id,
            "status": "succeeded",
            "description": "The payment is completed.",
            "paymentDate": _stamp(event.created_at),
        }
    if event.type == "charge.failed":
        reason = DENIALS.get(str(charge.get("failure_code")), "The payment was denied.")
        return PAYMENT_TYPES[event.type], {
            "paymentId": payment_id,
            "status": "failed",
            "description": f"The payment was denied: {reason}",
            "denialReason": reason,
        }
    return PAYMENT_TYPES["charge.canceled"], {
        "paymentId": payment_id,
        "status": "succeeded",
        "description": "The payment is cancelled.",
    }


def _credential(sealed: str | None, secret_key: str, now: datetime) -> tuple[str | None, bool]:
    """The bearer token of a sealed sink credential (None without one), and whether it expired."""
    if sealed is None:
        return None, False
    opened = unseal_password(sealed, secret_key)
    if opened is None:
        return None, True  # unreadable (the secret key changed): treated as spent, never sent bare
    credential = json.loads(opened)
    expires = datetime.fromisoformat(str(credential["accessTokenExpiresUtc"]))
    return str(credential["accessToken"]), expires <= now


async def sink_message(claim: Claim, *, base_url: str, secret_key: str) -> SinkMessage:
    """The CloudEvent one attempt sends to the sink of ``claim``: the ``id`` is the event's (the
    same on every retry), the ``source`` the payment's or refund's resource, ``time`` when it
    happened; authorised by the payment's or refund's credential."""
    event, delivery = claim.event, claim.delivery
    if delivery.refund_id is not None:
        refund = await Refund.get(id=delivery.refund_id)
        side_refund = await CamaraRefund.get(refund_id=refund.id)
        sealed = side_refund.sealed_sink_credential
        source = refund_url(base_url, refund.charge_id, refund.id)  # type: ignore[attr-defined]
        data: dict[str, Any] = {
            "paymentId": refund.charge_id,  # type: ignore[attr-defined]
            "refundId": refund.id,
            "status": "succeeded",
        }
        if event.type == REFUND_SINK_EVENT:
            kind = REFUND_IN_BILL
            data["description"] = f"The refund of {refund.amount} yen is accounted for on the subscriber's bill."
        else:
            kind = REFUND_COMPLETED
            data["description"] = f"The refund of {refund.amount} yen is completed."
            data["refundDate"] = _stamp(refund.created_at)
    else:
        payment = await CamaraPayment.get(charge_id=event.object_id)
        sealed = payment.sealed_sink_credential
        source = payment_url(base_url, payment.charge_id)
        kind, data = _payment_data(event)
    token, expired = _credential(sealed, secret_key, claim.now)
    if expired:
        return SinkMessage(withheld="the sink credential has expired")
    cloud_event = CloudEvent(
        {
            "id": event.id,
            "source": source,
            "type": kind,
            "specversion": "1.0",
            "time": event.created_at,
            "datacontenttype": "application/json",
        },
        data,
    )
    message = to_structured_event(cloud_event)
    headers = {key.lower(): value for key, value in message.headers.items()}
    headers["x-correlator"] = delivery.id
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return SinkMessage(body=message.body.decode(), headers=headers)
