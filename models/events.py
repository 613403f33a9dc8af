"""Events a merchant cares about, and their delivery to the merchant's webhook endpoints.

An event is written in the same transaction as the change it reports, with a snapshot of the
object as the API showed it then. In that same transaction it gets one ``WebhookDelivery`` per
enabled endpoint that wants its type, and one outbox message per delivery for the webhooks
worker; so a change, its event and its webhooks commit or vanish together.

Endpoints are of two kinds: a merchant's own (``standard``, which it registers and subscribes),
and a CAMARA payment's or refund's ``sink`` (``camara_sink``, one per merchant and sink URL,
made when a payment or refund names it): a charge's event goes to its payment's sink only, as a
CloudEvent (``models.operations.camara_sinks``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from models.base import id_factory
from models.camara import CamaraPayment, CamaraRefund
from models.clock import clock
from models.outbox import DELIVER_WEBHOOK, send, send_many

if TYPE_CHECKING:
    from models.charges import Refund
    from models.merchants import Merchant

__all__ = [
    "CAMARA_SINK",
    "EVENT_TYPES",
    "PAYMENT_SINK_EVENTS",
    "REFUND_SINK_EVENT",
    "STANDARD",
    "DeliveryAttempt",
    "Event",
    "WebhookDelivery",
    "WebhookEndpoint",
]

EVENT_TYPES = (
    "charge.reserved",
    "charge.succeeded",
    "charge.failed",
    "charge.canceled",
    "charge.refunded",
    "charge.billed",
    "charge.collected",
    "charge.uncollectible",
    "refund.credited",
    "subscription.activated",
    "subscription.renewed",
    "subscription.past_due",
    "subscription.canceled",
    "payout.created",
    "payout.paid",
    "webhook_endpoint.disabled",
)
# The kinds of endpoint: a merchant's own, and a CAMARA payment's or refund's sink.
STANDARD, CAMARA_SINK = "standard", "camara_sink"
# The charge events a CAMARA payment's sink is told of (as payment-reserved, -completed, -denied
# or -cancelled; models/operations/camara_sinks.py).
PAYMENT_SINK_EVENTS = ("charge.reserved", "charge.succeeded", "charge.failed", "charge.canceled")
# A refund accounted for on the subscriber's bill: a CAMARA refund's sink is told (refund-in-bill).
REFUND_SINK_EVENT = "refund.credited"
# A delivery handed to the worker is not handed again before this has passed; if the worker
# died meanwhile, the scheduler finds the delivery due again and retries it.
DELIVERY_LEASE = timedelta(minutes=2)


class Event(Model):
    """``{id, type, created, data: {object}}`` as ``GET /v1/events`` shows it."""

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("evt"))
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="events", on_delete=fields.RESTRICT
    )
    type = fields.CharField(max_length=40)
    object_id = fields.CharField(max_length=32)
    data: dict[str, Any] = fields.JSONField()
    created_at = fields.DatetimeField()

    class Meta:
        table = "events"
        indexes = (("merchant_id", "created_at"), ("object_id",))

    @classmethod
    async def record(cls, event_type: str, *, merchant_id: str, obj: dict[str, Any]) -> Event:
        """Write one event; call it inside the transaction that made the change."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        now = await clock.now()
        event = await cls.create(
            type=event_type, merchant_id=merchant_id, object_id=str(obj["id"]), data={"object": obj}, created_at=now
        )
        for endpoint in await WebhookEndpoint.filter(
            merchant_id=merchant_id, kind=STANDARD, enabled=True, deleted_at=None
        ):
            if endpoint.wants(event_type):
                await WebhookDelivery.schedule(event, endpoint, now=now)
        if event_type in PAYMENT_SINK_EVENTS:
            await event.to_payment_sink(now=now)
        elif event_type == REFUND_SINK_EVENT:
            await cls.to_refund_sinks([event], now=now)
        return event

    async def to_payment_sink(self, *, now: Any) -> WebhookDelivery | None:
        """A delivery to the sink of the CAMARA payment this charge event is about, if it names
        one whose endpoint is enabled; else None."""
        payment = await CamaraPayment.get_or_none(charge_id=self.object_id)
        if payment is None or payment.sink is None:
            return None
        endpoint = await WebhookEndpoint.sink_of(self.merchant_id, payment.sink)  # type: ignore[attr-defined]
        if endpoint is None or not endpoint.enabled:
            return None
        return await WebhookDelivery.schedule(self, endpoint, now=now)

    @classmethod
    async def to_refund_sinks(cls, events: list[Event], *, now: Any) -> None:
        """``refund.credited`` events to the sinks of the CAMARA refunds they are about (those
        that name one whose endpoint is enabled), as refund-in-bill."""
        refunds = {event.object_id: event for event in events}
        for side in await CamaraRefund.filter(refund_id__in=list(refunds), sink__not_isnull=True):
            event = refunds[side.refund_id]
            endpoint = await WebhookEndpoint.sink_of(event.merchant_id, str(side.sink))  # type: ignore[attr-defined]
            if endpoint is not None and endpoint.enabled:
                await WebhookDelivery.schedule(event, endpoint, now=now, refund_id=side.refund_id)

    @classmethod
    async def record_many(cls, event_type: str, objects: list[tuple[str, dict[str, Any]]]) -> int:
        """Write one event per ``(merchant_id, object)`` with set-sized statements (a month
        close bills thousands of charges per batch), with their deliveries and messages."""
        if event_type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {event_type!r}")
        if not objects:
            return 0
        now = await clock.now()
        events = [
            cls(
                type=event_type, merchant_id=merchant_id, object_id=str(obj["id"]), data={"object": obj}, created_at=now
            )
            for merchant_id, obj in objects
        ]
        for event in events:
            event.id = id_factory("evt")()
        await cls.bulk_create(events, batch_size=1000)
        await cls.fan_out(event_type, events, now=now)
        if event_type == REFUND_SINK_EVENT:
            await cls.to_refund_sinks(events, now=now)
        return len(events)

    @classmethod
    async def fan_out(cls, event_type: str, events: list[Event], *, now: Any) -> None:
        """Deliveries and worker messages for events written in bulk, to every endpoint that wants them."""
        merchants = {event.merchant_id for event in events}  # type: ignore[attr-defined]
        endpoints = [
            endpoint
            for endpoint in await WebhookEndpoint.filter(
                merchant_id__in=merchants, kind=STANDARD, enabled=True, deleted_at=None
            )
            if endpoint.wants(event_type)
        ]
        if endpoints:
            deliveries = [
                WebhookDelivery(
                    id=id_factory("msg")(),
                    event_id=event.id,
                    endpoint_id=endpoint.id,
                    next_attempt_at=now + DELIVERY_LEASE,
                    created_at=now,
                )
                for event in events
                for endpoint in endpoints
                if endpoint.merchant_id == event.merchant_id  # type: ignore[attr-defined]
            ]
            await WebhookDelivery.bulk_create(deliveries, batch_size=1000)
            await send_many(DELIVER_WEBHOOK, [(delivery.id,) for delivery in deliveries])


class WebhookEndpoint(Model):
    """An HTTPS receiver of a merchant and the event types it wants (``*`` for all)."""

    # Of ``kind`` ``camara_sink``: a CAMARA sink, its events chosen by the payments that name it.
    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("we"))
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="webhook_endpoints", on_delete=fields.RESTRICT
    )
    url = fields.CharField(max_length=2048)
    kind = fields.CharField(max_length=16, default=STANDARD, db_default=STANDARD)
    events: list[str] = fields.JSONField()
    secret = fields.CharField(max_length=128)
    previous_secret = fields.CharField(max_length=128, null=True)
    previous_secret_expires_at = fields.DatetimeField(null=True)
    enabled = fields.BooleanField(default=True)
    consecutive_failures = fields.IntField(default=0)
    disabled_reason = fields.CharField(max_length=64, null=True)
    deleted_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    if TYPE_CHECKING:
        merchant_id: str

    class Meta:
        table = "webhook_endpoints"
        # A merchant's endpoints of one kind; a sink found by its URL.
        indexes = (("merchant_id", "kind", "url"),)

    @classmethod
    async def sink_of(cls, merchant_id: str, url: str) -> WebhookEndpoint | None:
        """The merchant's endpoint for the CAMARA sink ``url`` (the oldest, were there two)."""
        return (
            await cls.filter(merchant_id=merchant_id, kind=CAMARA_SINK, url=url, deleted_at=None)
            .order_by("created_at", "id")
            .first()
        )

    def wants(self, event_type: str) -> bool:
        """True when this endpoint subscribed to ``event_type`` (or to ``*``)."""
        return "*" in self.events or event_type in self.events

    def to_api(self, *, secret: str | None = None) -> dict[str, Any]:
        """The webhook endpoint object of the merchant API; the secret only when just made."""
        view: dict[str, Any] = {
            "id": self.id,
            "object": "webhook_endpoint",
            "url": self.url,
            "events": self.events,
            "enabled": self.enabled,
            "disabled_reason": self.disabled_reason,
            "created": int(self.created_at.timestamp()),
        }
        if secret is not None:
            view["secret"] = secret
        return view


class WebhookDelivery(Model):
    """One event to one endpoint: its ``webhook-id`` stays the same on every retry."""

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("msg"))
    event: fields.ForeignKeyRelation[Event] = fields.ForeignKeyField(
        "models.Event", related_name="deliveries", on_delete=fields.RESTRICT
    )
    endpoint: fields.ForeignKeyRelation[WebhookEndpoint] = fields.ForeignKeyField(
        "models.WebhookEndpoint", related_name="deliveries", on_delete=fields.RESTRICT
    )
    # A CAMARA sink's refund event (refund-completed): the refund it reports.
    refund: fields.ForeignKeyNullableRelation[Refund] = fields.ForeignKeyField(
        "models.Refund", related_name="sink_deliveries", null=True, on_delete=fields.RESTRICT
    )
    status = fields.CharField(max_length=16, default="pending")
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    if TYPE_CHECKING:
        event_id: str
        endpoint_id: str
        refund_id: str | None

    class Meta:
        table = "webhook_deliveries"
        unique_together = (("event_id", "endpoint_id"),)
        # (endpoint_id, created_at): an endpoint's delivery log, newest first, page by page.
        indexes = (("status", "next_attempt_at"), ("endpoint_id", "created_at"))

    @classmethod
    async def schedule(
        cls, event: Event, endpoint: WebhookEndpoint, *, now: Any, refund_id: str | None = None
    ) -> WebhookDelivery:
        """A pending delivery of ``event`` to ``endpoint``, handed to the worker at commit."""
        delivery = await cls.create(
            event_id=event.id,
            endpoint_id=endpoint.id,
            refund_id=refund_id,
            next_attempt_at=now + DELIVERY_LEASE,
            created_at=now,
        )
        await send(DELIVER_WEBHOOK, delivery.id)
        return delivery


class DeliveryAttempt(Model):
    """One HTTP attempt of a delivery, as the delivery log shows it."""

    id = fields.BigIntField(primary_key=True)
    delivery: fields.ForeignKeyRelation[WebhookDelivery] = fields.ForeignKeyField(
        "models.WebhookDelivery", related_name="attempt_log", on_delete=fields.RESTRICT
    )
    attempted_at = fields.DatetimeField()
    status_code = fields.SmallIntField(null=True)
    duration_ms = fields.IntField()
    error = fields.CharField(max_length=500, null=True)

    class Meta:
        table = "webhook_attempts"
        indexes = (("delivery_id",),)
