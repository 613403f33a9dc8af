"""CAMARA notifications (product.md §13): a payment's or refund's sink gets CloudEvents 1.0 in
structured JSON, with the sink credential's bearer token, through the webhook engine (retries,
410, replay), each body valid against the event schemas of the CAMARA YAMLs."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import unused_port
from cloudevents.core.bindings.http import HTTPMessage, from_structured_event
from openapi_schema_validator import OAS30Validator
from tortoise.transactions import in_transaction

from api.camara.bodies import check_sink, sink_of
from billing.periods import next_period, period_end, period_of
from camara_support import BASE, PHONE, Aggregator, payment_body, register_aggregator
from conftest import OpsClient
from models.audit_log import Actor
from models.camara import CamaraRefund
from models.clock import clock
from models.events import CAMARA_SINK, DeliveryAttempt, Event, WebhookDelivery, WebhookEndpoint
from models.operations.camara import Refusal
from models.operations.camara_sinks import notify_refund
from models.operations.charges import refund_charge
from models.passwords import seal_password
from settings import Settings
from tests_support import answer, close, settle
from workers.scheduler import run_due_jobs

pytestmark = pytest.mark.usefixtures("worker")
TOKEN = "agg-sink-token-a1b2c3"
PAYMENT = "org.camaraproject.carrier-billing.v0."
REFUND = "org.camaraproject.carrier-billing-refund.v0."


def _camara_dir() -> Path | None:
    """The CAMARA r3.2 folder: MATOMETE_CAMARA_DIR, beside the repository, or the shared one."""
    here = Path(__file__).resolve().parents[2]
    for candidate in (
        os.environ.get("MATOMETE_CAMARA_DIR"),
        here.parent / "shared" / "camara" / "carrier-billing-r3.2",
        Path("/work/shared/camara/carrier-billing-r3.2"),
    ):
        if candidate and (Path(candidate) / "API_definitions").is_dir():
            return Path(candidate)
    return None


def assert_valid_event(body: dict[str, Any]) -> None:
    """``body`` against the YAML's schema for its type (the discriminator's mapping), its ``$ref``s
    resolved in the YAML itself; skipped, saying why, when the CAMARA folder is absent."""
    folder = _camara_dir()
    if folder is None:
        pytest.skip("the CAMARA r3.2 folder is absent (set MATOMETE_CAMARA_DIR): event schemas not checked")
    name = "carrier-billing-refund.yaml" if body["type"].startswith(REFUND) else "carrier-billing.yaml"
    spec = yaml.safe_load((folder / "API_definitions" / name).read_text())
    mapping = spec["components"]["schemas"]["CloudEvent"]["discriminator"]["mapping"]
    schema = {"$ref": mapping[body["type"]], "components": spec["components"]}
    OAS30Validator(schema, format_checker=OAS30Validator.FORMAT_CHECKER).validate(body)


@dataclass
class Sink:
    """An aggregator's notification receiver: remembers each request, answers ``answers`` in turn
    (then ``answer``)."""

    port: int
    answer: int = 204
    answers: list[int] = field(default_factory=list)
    received: list[dict[str, Any]] = field(default_factory=list)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The sink as a payment names it."""
        return f"http://127.0.0.1:{self.port}/notify"

    async def handle(self, request: web.Request) -> web.Response:
        """Keep the headers and the CloudEvent as the package reads it back."""
        raw = await request.read()
        headers = {key.lower(): value for key, value in request.headers.items()}
        event = from_structured_event(HTTPMessage(headers=headers, body=raw))
        self.received.append({"headers": headers, "body": json.loads(raw), "event": event})
        return web.Response(status=self.answers.pop(0) if self.answers else self.answer)

    async def up(self) -> None:
        """Listen."""
        app = web.Application()
        app.router.add_post("/notify", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    @property
    def types(self) -> list[str]:
        """The CloudEvent types received, in order."""
        return [item["body"]["type"] for item in self.received]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test platform, allowed to call a sink on this machine (as under `matomete up`)."""
    return settings.replace(webhooks_allow_insecure=True)


@pytest.fixture
async def sink() -> AsyncIterator[Sink]:
    """A running sink."""
    started = Sink(port=unused_port())
    await started.up()
    yield started
    if started.runner is not None:
        await started.runner.cleanup()


@pytest.fixture
async def aggregator(client: Any, ops: OpsClient, settings: Settings) -> Aggregator:
    """A shop whose line has a phone number, and an aggregator client of its merchant."""
    return await register_aggregator(client, ops, settings)


def with_sink(sink: Sink, expires: str = "2099-01-01T00:00:00Z") -> dict[str, Any]:
    """The sink and its ACCESSTOKEN credential, as the aggregator sends them."""
    credential = {
        "credentialType": "ACCESSTOKEN",
        "accessToken": TOKEN,
        "accessTokenExpiresUtc": expires,
        "accessTokenType": "bearer",
    }
    return {"sink": sink.url, "sinkCredential": credential}


async def prepared(aggregator: Aggregator, sink: Sink, headers: dict[str, str], **extra: Any) -> dict[str, Any]:
    """A two-step payment with the sink, confirmed by the subscriber (or denied) on its page."""
    body = payment_body(phoneNumber=PHONE)
    body.update(with_sink(sink, **extra))
    response = await aggregator.client.post(f"{BASE}/payments/prepare", json=body, headers=headers)
    assert response.status == 201, await response.text()
    made = await response.json()
    assert made["sink"] == sink.url
    await confirmed_by_subscriber(aggregator, made)
    return dict(made)


async def confirmed_by_subscriber(aggregator: Aggregator, made: dict[str, Any]) -> None:
    """The subscriber's confirmation on the payment's validation page, decided."""
    shop = aggregator.shop
    response = await answer(
        aggregator.client, made["validationInfo"]["validationURL"], login_id=shop.login_id, password=shop.password
    )
    assert response.status == 303


async def received(settings: Settings, sink: Sink, count: int) -> None:
    """Relay and work until ``count`` delivery attempts have been made in all."""

    async def enough() -> bool:
        return await DeliveryAttempt.all().count() >= count

    await settle(settings, enough)


def check_cloud_event(item: dict[str, Any], *, kind: str, source: str) -> None:
    """A structured CloudEvent 1.0 of ``kind`` from ``source``, with the bearer token, valid per the YAML."""
    headers, body = item["headers"], item["body"]
    assert headers["content-type"] == "application/cloudevents+json"
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["x-correlator"] == headers["webhook-id"]
    assert (body["type"], body["source"], body["specversion"]) == (kind, source, "1.0")
    assert body["datacontenttype"] == "application/json"
    assert body["id"]
    assert body["time"].endswith("Z")
    assert item["event"].get_type() == kind
    assert_valid_event(body)


async def test_a_two_step_payment_notifies_reserved_then_completed(
    aggregator: Aggregator, sink: Sink, settings: Settings
) -> None:
    """Prepared with a sink, confirmed by the subscriber then by the aggregator: payment-reserved then
    payment-completed, each once, with the bearer token, valid CloudEvents whose data the YAML allows."""
    headers = await aggregator.two_legged()
    made = await prepared(aggregator, sink, headers)
    await received(settings, sink, 1)
    payment_id = made["paymentId"]
    source = made["amountTransaction"]["resourceURL"]
    assert source == f"{settings.base_url}{BASE}/payments/{payment_id}"
    confirm = await aggregator.client.post(
        f"{BASE}/payments/{payment_id}/confirm", json={"phoneNumber": PHONE}, headers=headers
    )
    assert confirm.status == 202, await confirm.text()
    await received(settings, sink, 2)
    assert sink.types == [PAYMENT + "payment-reserved", PAYMENT + "payment-completed"]
    for item, kind in zip(sink.received, sink.types, strict=True):
        check_cloud_event(item, kind=kind, source=source)
    first, second = (item["body"] for item in sink.received)
    assert first["data"] == {
        "paymentId": payment_id,
        "status": "succeeded",
        "description": first["data"]["description"],
    }
    assert (second["data"]["paymentId"], second["data"]["status"]) == (payment_id, "succeeded")
    assert "paymentDate" in second["data"]
    assert first["id"] != second["id"]
    endpoint = await WebhookEndpoint.get(kind=CAMARA_SINK)
    assert (endpoint.url, endpoint.merchant_id) == (sink.url, aggregator.shop.merchant_id)
    listed = await aggregator.client.get("/v1/webhook_endpoints", headers=aggregator.shop.auth)
    assert (await listed.json())["data"] == []  # the merchant's own endpoints only


async def test_a_denied_and_a_cancelled_payment_are_notified(
    aggregator: Aggregator, sink: Sink, ops: OpsClient, settings: Settings
) -> None:
    """Over the line's limit the subscriber's confirmation denies it: payment-denied (failed, with the
    reason); a reserved payment cancelled by the aggregator: payment-reserved then payment-cancelled."""
    headers = await aggregator.two_legged()
    status, _ = await ops.patch(f"/ops/v1/lines/{aggregator.shop.line_id}", json={"monthly_limit": 100})
    assert status == 200
    denied = await prepared(aggregator, sink, headers)
    await received(settings, sink, 1)
    assert sink.types == [PAYMENT + "payment-denied"]
    data = sink.received[0]["body"]["data"]
    assert (data["paymentId"], data["status"]) == (denied["paymentId"], "failed")
    assert "limit" in data["denialReason"]
    check_cloud_event(
        sink.received[0], kind=PAYMENT + "payment-denied", source=denied["amountTransaction"]["resourceURL"]
    )
    status, _ = await ops.patch(f"/ops/v1/lines/{aggregator.shop.line_id}", json={"monthly_limit": 10000})
    assert status == 200
    made = await prepared(aggregator, sink, headers)
    await received(settings, sink, 2)
    cancel = await aggregator.client.post(
        f"{BASE}/payments/{made['paymentId']}/cancel", json={"phoneNumber": PHONE}, headers=headers
    )
    assert cancel.status == 202, await cancel.text()
    await received(settings, sink, 3)
    assert sink.types[1:] == [PAYMENT + "payment-reserved", PAYMENT + "payment-cancelled"]
    check_cloud_event(
        sink.received[2], kind=PAYMENT + "payment-cancelled", source=made["amountTransaction"]["resourceURL"]
    )
    assert sink.received[2]["body"]["data"]["paymentId"] == made["paymentId"]


async def camara_refund(aggregator: Aggregator, sink: Sink, settings: Settings, amount: int) -> tuple[str, str]:
    """A completed one-step payment and a CAMARA refund of ``amount`` yen of it with the sink, made
    as createRefund makes it (the /v1 refund and its CamaraRefund in one transaction, then
    ``notify_refund``): the payment's and the refund's ids."""
    headers = await aggregator.three_legged(consent=330)
    response = await aggregator.client.post(f"{BASE}/payments", json=payment_body(), headers=headers)
    assert response.status == 201, await response.text()
    payment_id = (await response.json())["paymentId"]
    async with in_transaction():
        refund = await refund_charge(
            aggregator.shop.merchant_id, payment_id, amount=amount, reason=None, actor=Actor("test", None)
        )
        side = await CamaraRefund.create(
            refund_id=refund.id,
            client_id=aggregator.client_id,
            request_hash="h",
            reference_code=f"refund-{refund.id}",
            sink=sink.url,
            sealed_sink_credential=seal(with_sink(sink)["sinkCredential"], settings),
            created_at=refund.created_at,
        )
        await notify_refund(side)
    return payment_id, refund.id


async def test_a_refund_notifies_refund_completed(aggregator: Aggregator, sink: Sink, settings: Settings) -> None:
    """A CAMARA refund of a completed payment notifies the refund's sink: refund-completed, valid per
    the YAML, from the refund's resource."""
    payment_id, refund_id = await camara_refund(aggregator, sink, settings, 100)
    await received(settings, sink, 1)
    assert sink.types == [REFUND + "refund-completed"]
    source = f"{settings.base_url}/carrier-billing-refund/v0.3/payments/{payment_id}/refunds/{refund_id}"
    check_cloud_event(sink.received[0], kind=REFUND + "refund-completed", source=source)
    data = sink.received[0]["body"]["data"]
    assert (data["paymentId"], data["refundId"], data["status"]) == (payment_id, refund_id, "succeeded")


async def test_a_refund_accounted_for_on_the_bill_notifies_refund_in_bill(
    aggregator: Aggregator, sink: Sink, ops: OpsClient, settings: Settings
) -> None:
    """The month close nets the refund from the bill: refund.credited for the merchant, and the
    refund's sink gets refund-in-bill after refund-completed; a second close sends nothing more."""
    payment_id, refund_id = await camara_refund(aggregator, sink, settings, 100)
    await received(settings, sink, 1)
    period = period_of(await clock.now())
    await clock.move_to(period_end(period) + timedelta(minutes=10))
    await close(ops, settings, period)
    await received(settings, sink, 2)
    assert sink.types == [REFUND + "refund-completed", REFUND + "refund-in-bill"]
    source = f"{settings.base_url}/carrier-billing-refund/v0.3/payments/{payment_id}/refunds/{refund_id}"
    check_cloud_event(sink.received[1], kind=REFUND + "refund-in-bill", source=source)
    data = sink.received[1]["body"]["data"]
    assert (data["paymentId"], data["refundId"], data["status"]) == (payment_id, refund_id, "succeeded")
    events = await aggregator.client.get("/v1/events?type=refund.credited", headers=aggregator.shop.auth)
    assert [e["data"]["object"]["id"] for e in (await events.json())["data"]] == [refund_id]
    await clock.move_to(period_end(next_period(period)) + timedelta(minutes=10))
    await close(ops, settings, next_period(period))
    assert await Event.filter(type="refund.credited").count() == 1


def seal(credential: dict[str, Any], settings: Settings) -> str:
    """The credential sealed as the CAMARA operations store it."""
    return seal_password(json.dumps(credential), settings.secret_key)


async def test_a_410_stops_deliveries_to_the_sink(aggregator: Aggregator, sink: Sink, settings: Settings) -> None:
    """The sink answers 410 to payment-reserved: it is disabled, and the confirmation's payment-completed
    is not sent; a later payment naming the sink enables it again."""
    headers = await aggregator.two_legged()
    sink.answer = 410
    made = await prepared(aggregator, sink, headers)
    await received(settings, sink, 1)
    endpoint = await WebhookEndpoint.get(kind=CAMARA_SINK)
    assert (endpoint.enabled, endpoint.disabled_reason) == (False, "gone")
    confirm = await aggregator.client.post(
        f"{BASE}/payments/{made['paymentId']}/confirm", json={"phoneNumber": PHONE}, headers=headers
    )
    assert confirm.status == 202
    assert await WebhookDelivery.filter(endpoint_id=endpoint.id).count() == 1
    assert len(sink.received) == 1
    sink.answer = 204
    await prepared(aggregator, sink, headers)
    await received(settings, sink, 2)
    assert (await WebhookEndpoint.get(id=endpoint.id)).enabled
    assert await WebhookEndpoint.filter(kind=CAMARA_SINK).count() == 1


async def test_a_500_is_retried_with_the_same_event(aggregator: Aggregator, sink: Sink, settings: Settings) -> None:
    """The sink answers 500 then 204: the retry, once due, carries the same CloudEvent id and is
    delivered; the merchant's replay of the event (/v1) sends it to the sink again, unchanged."""
    headers = await aggregator.two_legged()
    sink.answers = [500]
    await prepared(aggregator, sink, headers)
    await received(settings, sink, 1)
    delivery = await WebhookDelivery.get()
    assert (delivery.status, delivery.attempts) == ("pending", 1)
    await clock.move_to(await clock.now() + timedelta(minutes=1))
    await run_due_jobs()
    await received(settings, sink, 2)
    assert (await WebhookDelivery.get()).status == "delivered"
    first, second = sink.received
    assert first["body"]["id"] == second["body"]["id"]
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
    event_id = first["body"]["id"]
    replay = await aggregator.client.post(f"/v1/events/{event_id}/redeliver", headers=aggregator.shop.auth)
    assert replay.status == 202, await replay.text()
    await received(settings, sink, 3)
    assert sink.received[2]["body"] == first["body"]  # replayed as it was, to the sink only


async def test_an_expired_credential_withholds_the_notification(
    aggregator: Aggregator, sink: Sink, settings: Settings
) -> None:
    """Once accessTokenExpiresUtc has passed, nothing is sent (the client stops receiving notifications):
    the delivery fails without an HTTP request, and the sink stays enabled."""
    headers = await aggregator.two_legged()
    await prepared(aggregator, sink, headers, expires="2000-01-01T00:00:00Z")
    await received(settings, sink, 1)
    assert sink.received == []
    delivery = await WebhookDelivery.get()
    attempt = await DeliveryAttempt.get()
    assert (delivery.status, attempt.status_code, attempt.error) == ("failed", None, "the sink credential has expired")
    assert (await WebhookEndpoint.get(kind=CAMARA_SINK)).enabled


@pytest.mark.parametrize(
    ("sink", "allow_insecure"),
    [
        ("http://127.0.0.1:9/notify", False),
        ("http://agg.example/notify", True),
        ("ftp://agg.example/notify", True),
        ("https://", True),
    ],
)
def test_sinks_are_https_or_loopback_when_allowed(sink: str, allow_insecure: bool) -> None:
    """A sink is https; http only to this machine and only under webhooks_allow_insecure: else INVALID_SINK."""
    with pytest.raises(Refusal) as refused:
        sink_of(sink, None, allow_insecure=allow_insecure)
    assert (refused.value.status, refused.value.code) == (400, "INVALID_SINK")


async def test_sinks_pass_the_engine_destination_checks() -> None:
    """An https sink to a loopback or private address is refused in production, allowed under insecure."""
    for address in ("https://127.0.0.1/notify", "https://10.1.2.3/notify", "https://169.254.169.254/x"):
        with pytest.raises(Refusal) as refused:
            await check_sink(address, allow_insecure=False)
        assert refused.value.code == "INVALID_SINK"
        await check_sink(address, allow_insecure=True)
    assert sink_of("http://127.0.0.1:9/notify", None, allow_insecure=True) == ("http://127.0.0.1:9/notify", None)
