"""Webhooks under the Standard Webhooks specification (product.md §8): every delivery verifies
with the `standardwebhooks` package alone; retries survive a receiver that is down for days;
410 disables; a rotation's overlap carries both signatures."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from tortoise.transactions import in_transaction

from conftest import OpsClient, row_counts
from models.clock import clock
from models.events import EVENT_TYPES, DeliveryAttempt, Event, WebhookDelivery, WebhookEndpoint
from settings import Settings
from tests_support import MERCHANT_BODY, Shop, open_shop, settle
from workers.scheduler import run_due_jobs

pytestmark = pytest.mark.usefixtures("worker")
PRODUCT_EVENT_TYPES = [t for t in EVENT_TYPES if t != "webhook_endpoint.disabled"]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test platform, allowed to call a receiver on this machine (as under `matomete up`)."""
    return settings.replace(webhooks_allow_insecure=True)


@dataclass
class Receiver:
    """A merchant's webhook receiver that verifies every request with standardwebhooks."""

    port: int
    secrets: list[str] = field(default_factory=list)
    answer: int = 200
    received: list[dict[str, Any]] = field(default_factory=list)
    runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Where the endpoint points."""
        return f"http://127.0.0.1:{self.port}/hooks"

    async def handle(self, request: web.Request) -> web.Response:
        """Verify with each known secret; remember what arrived and which secrets verified it."""
        body = await request.text()
        headers = {k.lower(): v for k, v in request.headers.items()}
        verified = []
        for secret in self.secrets:
            with contextlib.suppress(WebhookVerificationError):
                Webhook(secret).verify(body, headers)
                verified.append(secret)
        self.received.append(
            {
                "id": headers["webhook-id"],
                "type": json.loads(body)["type"],
                "verified": verified,
                "body": json.loads(body),
            }
        )
        return web.Response(status=self.answer)

    async def up(self) -> None:
        """Listen (again) on the same port."""
        app = web.Application()
        app.router.add_post("/hooks", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def down(self) -> None:
        """Stop listening: connections are refused."""
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """A running receiver."""
    started = Receiver(port=unused_port())
    await started.up()
    yield started
    await started.down()


@pytest.fixture
async def shop(ops: OpsClient) -> Shop:
    """A merchant (and a line) to send events for."""
    return await open_shop(ops)


async def endpoint(client: Any, shop: Shop, receiver: Receiver, events: list[str] | None = None) -> dict[str, Any]:
    """Register the receiver; it learns the secret from the answer, as a merchant would."""
    response = await client.post(
        "/v1/webhook_endpoints", headers=shop.auth, json={"url": receiver.url, "events": events or ["*"]}
    )
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["secret"].startswith("whsec_")
    receiver.secrets.append(created["secret"])
    return created


async def emit(shop: Shop, event_type: str, object_id: str = "ch_test") -> Event:
    """An event as the platform writes it (in a transaction with its change)."""
    async with in_transaction():
        return await Event.record(event_type, merchant_id=shop.merchant_id, obj={"id": object_id, "object": "x"})


async def attempts_reach(settings: Settings, count: int) -> None:
    """Relay and work until ``count`` HTTP attempts have been made in all."""

    async def enough() -> bool:
        return await DeliveryAttempt.all().count() >= count

    await settle(settings, enough)


async def test_every_event_type_arrives_verified(client, shop: Shop, receiver: Receiver, settings: Settings) -> None:
    """Each event type of §8 reaches the receiver once, and verifies with the endpoint's secret."""
    await endpoint(client, shop, receiver)
    for event_type in PRODUCT_EVENT_TYPES:
        await emit(shop, event_type)
    await attempts_reach(settings, len(PRODUCT_EVENT_TYPES))
    assert sorted(r["type"] for r in receiver.received) == sorted(PRODUCT_EVENT_TYPES)
    assert all(r["verified"] == receiver.secrets for r in receiver.received)
    assert all(r["body"]["data"]["id"] == "ch_test" for r in receiver.received)
    assert set(await WebhookDelivery.all().values_list("status", flat=True)) == {"delivered"}


async def test_a_real_change_is_delivered(client, shop: Shop, receiver: Receiver, settings: Settings) -> None:
    """A charge canceled through the API becomes a verified charge.canceled webhook with the charge."""
    await endpoint(client, shop, receiver, ["charge.canceled"])
    created = await (
        await client.post(
            "/v1/charges",
            headers=shop.auth,
            json={"amount": 300, "description": "x", "return_url": "https://shop.example/r"},
        )
    ).json()
    await client.post(f"/v1/charges/{created['id']}/cancel", headers=shop.auth)
    await attempts_reach(settings, 1)
    (only,) = receiver.received
    assert (only["type"], only["body"]["data"]["id"], only["body"]["data"]["status"]) == (
        "charge.canceled",
        created["id"],
        "canceled",
    )
    assert only["verified"]


async def test_receiver_down_for_days_gets_everything_once(
    client, shop: Shop, receiver: Receiver, settings: Settings
) -> None:
    """Receiver down, clock moved a day at a time, receiver back: each pending event arrives once, verified."""
    await endpoint(client, shop, receiver)
    await receiver.down()
    for n in range(3):
        await emit(shop, "charge.succeeded", f"ch_{n}")
    await attempts_reach(settings, 3)
    for day in range(1, 3):
        await clock.move_to(await clock.now() + timedelta(days=1))
        await run_due_jobs()
        await attempts_reach(settings, 3 + 3 * day)
    assert receiver.received == []
    assert set(await WebhookDelivery.all().values_list("status", flat=True)) == {"pending"}
    await receiver.up()
    await clock.move_to(await clock.now() + timedelta(days=1))
    await run_due_jobs()
    await attempts_reach(settings, 12)
    assert sorted(r["body"]["data"]["id"] for r in receiver.received) == ["ch_0", "ch_1", "ch_2"]
    assert len({r["id"] for r in receiver.received}) == 3
    assert all(r["verified"] for r in receiver.received)
    await clock.move_to(await clock.now() + timedelta(days=1))
    await run_due_jobs()
    assert len(receiver.received) == 3  # delivered ones are never sent again


async def test_gone_disables_the_endpoint(client, shop: Shop, receiver: Receiver, settings: Settings) -> None:
    """A 410 answer disables the endpoint at once, with an event the merchant can read."""
    created = await endpoint(client, shop, receiver)
    receiver.answer = 410
    await emit(shop, "charge.succeeded")
    await attempts_reach(settings, 1)
    stored = await WebhookEndpoint.get(id=created["id"])
    assert (stored.enabled, stored.disabled_reason) == (False, "gone")
    events = await (await client.get("/v1/events?type=webhook_endpoint.disabled", headers=shop.auth)).json()
    assert [e["data"]["object"]["id"] for e in events["data"]] == [created["id"]]
    await emit(shop, "charge.failed")
    assert await WebhookDelivery.filter(endpoint_id=created["id"]).count() == 1  # nothing new for it


async def test_retry_after_is_honoured(client, shop: Shop, receiver: Receiver, settings: Settings) -> None:
    """A 503 with Retry-After: 3600 puts the next attempt an hour later."""
    await endpoint(client, shop, receiver)
    receiver.answer = 503

    async def busy(request: web.Request) -> web.Response:
        return web.Response(status=503, headers={"Retry-After": "3600"})

    receiver.handle = busy  # type: ignore[method-assign]
    await receiver.down()
    await receiver.up()
    await emit(shop, "charge.succeeded")
    before = await clock.now()
    await attempts_reach(settings, 1)
    delivery = await WebhookDelivery.get()
    assert timedelta(minutes=59) < delivery.next_attempt_at - before < timedelta(minutes=61)  # type: ignore[operator]


async def test_rotation_signs_with_both_secrets_for_a_day(
    client, shop: Shop, receiver: Receiver, settings: Settings
) -> None:
    """After a rotation both the old and the new secret verify; after 24 hours only the new one."""
    created = await endpoint(client, shop, receiver)
    old = receiver.secrets[0]
    rotated = await (
        await client.post(f"/v1/webhook_endpoints/{created['id']}/rotate_secret", headers=shop.auth)
    ).json()
    new = rotated["secret"]
    receiver.secrets.append(new)
    await emit(shop, "charge.succeeded", "ch_during")
    await attempts_reach(settings, 1)
    assert receiver.received[-1]["verified"] == [old, new]
    await clock.move_to(await clock.now() + timedelta(hours=25))
    await emit(shop, "charge.succeeded", "ch_after")
    await attempts_reach(settings, 2)
    assert receiver.received[-1]["verified"] == [new]


async def test_redelivery_keeps_the_webhook_id(client, shop: Shop, receiver: Receiver, settings: Settings) -> None:
    """Replaying an event sends it again under the same webhook-id, and the log shows both attempts."""
    created = await endpoint(client, shop, receiver)
    event = await emit(shop, "charge.succeeded")
    await attempts_reach(settings, 1)
    response = await client.post(f"/v1/events/{event.id}/redeliver", headers=shop.auth)
    assert response.status == 202
    await attempts_reach(settings, 2)
    first, second = receiver.received
    assert first["id"] == second["id"]
    log = await (await client.get(f"/v1/webhook_endpoints/{created['id']}/deliveries", headers=shop.auth)).json()
    (delivery,) = log["data"]
    assert [a["status_code"] for a in delivery["attempts"]] == [200, 200]
    assert all(a["duration_ms"] >= 0 for a in delivery["attempts"])


async def test_disabled_or_unsubscribed_endpoints_get_nothing(client, shop: Shop, receiver: Receiver) -> None:
    """Only enabled endpoints that asked for a type get deliveries of it."""
    created = await endpoint(client, shop, receiver, ["payout.paid"])
    await emit(shop, "charge.succeeded")
    assert await WebhookDelivery.all().count() == 0
    await client.post(f"/v1/webhook_endpoints/{created['id']}", headers=shop.auth, json={"enabled": False})
    await emit(shop, "payout.paid", "po_1")
    assert await WebhookDelivery.all().count() == 0


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"url": "not a url", "events": ["*"]}, "url"),
        ({"url": "ftp://files.example/hook", "events": ["*"]}, "url"),
        ({"url": "https://shop.example/hook", "events": ["charge.exploded"]}, "events.0"),
        ({"url": "https://shop.example/hook", "events": []}, "events"),
        ({"url": "https://shop.example/hook", "events": ["*"], "secret": "mine"}, "secret"),
        ({"events": ["*"]}, "url"),
    ],
)
async def test_bad_endpoint_input_is_refused(client, shop: Shop, body: dict[str, Any], param: str) -> None:
    """Each bad field answers 400 naming it; no endpoint is stored."""
    before = await row_counts()
    response = await client.post("/v1/webhook_endpoints", headers=shop.auth, json=body)
    assert response.status == 400
    assert (await response.json())["error"]["param"] == param
    assert await row_counts() == before


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://169.254.169.254/latest",
        "https://[::1]/hook",
        "https://192.168.0.10/hook",
    ],
)
async def test_internal_addresses_are_refused_unless_allowed(
    aiohttp_client, settings: Settings, ops: OpsClient, url: str
) -> None:
    """Loopback, private, link-local and metadata addresses are refused in the split deployment."""
    from api.app import create_app

    strict = await aiohttp_client(create_app(settings.replace(webhooks_allow_insecure=False)))
    _, merchant = await ops.post("/ops/v1/merchants", json=MERCHANT_BODY)
    response = await strict.post(
        "/v1/webhook_endpoints",
        headers={"Authorization": f"Bearer {merchant['api_key']}"},
        json={"url": url, "events": ["*"]},
    )
    assert response.status == 400
    assert (await response.json())["error"]["param"] == "url"
    assert await WebhookEndpoint.all().count() == 0


async def test_another_merchants_endpoint_is_404(client, ops: OpsClient, shop: Shop, receiver: Receiver) -> None:
    """A merchant cannot read, change, rotate or delete another's endpoint."""
    created = await endpoint(client, shop, receiver)
    _, rival = await ops.post("/ops/v1/merchants", json=MERCHANT_BODY)
    auth = {"Authorization": f"Bearer {rival['api_key']}"}
    for method, path in (("GET", ""), ("POST", "/rotate_secret"), ("DELETE", ""), ("GET", "/deliveries")):
        response = await client.request(method, f"/v1/webhook_endpoints/{created['id']}{path}", headers=auth)
        assert response.status == 404, (method, path)
    assert (await WebhookEndpoint.get(id=created["id"])).deleted_at is None


async def test_three_days_of_failures_fail_the_delivery_and_disable_the_endpoint(
    client, shop: Shop, receiver: Receiver, settings: Settings
) -> None:
    """A receiver answering 500 through the whole schedule: the delivery fails, the endpoint is disabled."""
    created = await endpoint(client, shop, receiver)
    receiver.answer = 500
    await emit(shop, "charge.succeeded")
    await attempts_reach(settings, 1)
    for attempt in range(2, 11):
        await clock.move_to(await clock.now() + timedelta(hours=30))
        await run_due_jobs()
        await attempts_reach(settings, attempt)
    delivery = await WebhookDelivery.get()
    assert (delivery.status, delivery.attempts) == ("failed", 10)
    stored = await WebhookEndpoint.get(id=created["id"])
    assert (stored.enabled, stored.disabled_reason) == (False, "failing")
    assert await Event.filter(type="webhook_endpoint.disabled").count() == 1
    assert len(receiver.received) == 10
