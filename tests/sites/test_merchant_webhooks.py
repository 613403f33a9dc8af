"""The merchant site's webhooks: endpoints, their delivery log, replaying a delivery, rotating the
secret, switching off and deleting, each through the operations /v1 uses; developers and
admins only, and only their own merchant's endpoints."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port
from sites_support import SiteBrowser, signed_in

from conftest import OpsClient, row_counts
from models.audit_log import AuditEntry
from models.events import DeliveryAttempt, WebhookDelivery, WebhookEndpoint
from models.outbox import OutboxMessage
from settings import Settings
from tests_support import MERCHANT_BODY, Shop, open_shop, settle

HOOK_URL = "https://hooks.shop.example.jp/matomete"
SECRET = re.compile(r'<code id="endpoint-secret">(whsec_[^<]+)</code>')


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test platform, allowed to call a receiver on this machine (as under `matomete up`)."""
    return settings.replace(webhooks_allow_insecure=True)


@pytest.fixture
async def shop(ops: OpsClient) -> Shop:
    """A merchant (and a line)."""
    return await open_shop(ops)


async def add_endpoint(browser: SiteBrowser, url: str = HOOK_URL, events: tuple[str, ...] = ("*",)) -> tuple[str, str]:
    """Add an endpoint through the site's form; its id and the secret shown."""
    await browser.get("/merchant/webhooks")
    response = await browser.post("/merchant/webhooks", {"url": url, "events": list(events)})
    assert response.status == 201, response.body_text
    shown = SECRET.search(response.body_text)
    assert shown is not None
    endpoint = await WebhookEndpoint.get(url=url)
    return endpoint.id, shown.group(1)


async def canceled_charge(client: Any, shop: Shop) -> str:
    """A charge created and canceled through /v1: its charge.canceled event is delivered."""
    response = await client.post(
        "/v1/charges",
        headers=shop.auth,
        json={"amount": 500, "description": "テスト", "return_url": "https://shop.example/back"},
    )
    charge = await response.json()
    assert response.status == 201, charge
    response = await client.post(f"/v1/charges/{charge['id']}/cancel", headers=shop.auth)
    assert response.status == 200, await response.text()
    return str(charge["id"])


async def other_merchant(ops: OpsClient) -> str:
    """A second merchant's id."""
    status, merchant = await ops.post("/ops/v1/merchants", json={**MERCHANT_BODY, "name": "別の店"})
    assert status == 201
    return str(merchant["id"])


@pytest.mark.parametrize("role", ["developer", "admin"])
async def test_an_endpoint_is_added_and_its_secret_shown_once(
    client: Any, ops: OpsClient, shop: Shop, role: str
) -> None:
    """The add form creates the endpoint through the shared operation; the secret is on that
    answer only: the list and the endpoint's page never show it again."""
    browser = await signed_in(ops, client, shop.merchant_id, role=role)
    endpoint_id, secret = await add_endpoint(browser, events=("charge.succeeded", "charge.refunded"))
    stored = await WebhookEndpoint.get(id=endpoint_id)
    assert (stored.merchant_id, stored.secret) == (shop.merchant_id, secret)
    assert stored.events == ["charge.refunded", "charge.succeeded"]
    assert await AuditEntry.filter(action="webhook_endpoint.create", target_id=endpoint_id).count() == 1
    _, listing = await browser.get("/merchant/webhooks")
    assert f'href="/merchant/webhooks/{endpoint_id}"' in listing
    assert HOOK_URL in listing
    _, page = await browser.get(f"/merchant/webhooks/{endpoint_id}")
    assert HOOK_URL in page
    assert secret not in page
    assert secret not in listing


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ({"url": "ftp://hooks.shop.example.jp/x", "events": ["*"]}, "url"),
        ({"url": "hooks.shop.example.jp/no-scheme", "events": ["*"]}, "url"),
        ({"url": "https://hooks.shop.example.jp/" + "x" * 2100, "events": ["*"]}, "url"),
        ({"url": "", "events": ["*"]}, "url"),
        ({"url": HOOK_URL}, "events"),
        ({"url": HOOK_URL, "events": ["charge.exploded"]}, "events"),
    ],
)
async def test_bad_input_is_named_and_nothing_is_written(
    client: Any, ops: OpsClient, shop: Shop, form: dict[str, Any], field: str
) -> None:
    """A bad URL or event choice re-renders the form (400) naming the field; no row is written."""
    browser = await signed_in(ops, client, shop.merchant_id, role="developer")
    await browser.get("/merchant/webhooks")
    before = await row_counts()
    response = await browser.post("/merchant/webhooks", form)
    assert response.status == 400
    assert f'id="{field}-error"' in response.body_text
    assert 'id="add-endpoint-form"' in response.body_text
    assert await row_counts() == before


async def test_a_viewer_can_neither_see_nor_change_webhooks(client: Any, ops: OpsClient, shop: Shop) -> None:
    """A viewer has no Webhooks link; the pages answer 403 and a forged add, rotate or delete changes nothing."""
    owner = await signed_in(ops, client, shop.merchant_id, role="admin")
    endpoint_id, secret = await add_endpoint(owner)
    browser = await signed_in(ops, client, shop.merchant_id, role="viewer")
    _, home = await browser.get("/merchant")
    assert 'href="/merchant/webhooks"' not in home
    for path in ("/merchant/webhooks", f"/merchant/webhooks/{endpoint_id}"):
        status, _ = await browser.get(path)
        assert status == 403
    before = await row_counts()
    for path, form in (
        ("/merchant/webhooks", {"url": "https://other.example.jp/h", "events": ["*"]}),
        (f"/merchant/webhooks/{endpoint_id}/rotate", {}),
        (f"/merchant/webhooks/{endpoint_id}/enabled", {"enabled": "0"}),
        (f"/merchant/webhooks/{endpoint_id}/delete", {}),
    ):
        assert (await browser.post(path, form)).status == 403
    assert await row_counts() == before
    stored = await WebhookEndpoint.get(id=endpoint_id)
    assert (stored.secret, stored.enabled, stored.deleted_at) == (secret, True, None)


async def test_another_merchants_endpoint_and_delivery_are_not_found(client: Any, ops: OpsClient, shop: Shop) -> None:
    """Another merchant's endpoint answers 404 to every page and action, and so does its delivery
    replayed under one's own endpoint; nothing changes."""
    owner = await signed_in(ops, client, shop.merchant_id, role="developer")
    endpoint_id, secret = await add_endpoint(owner)
    await canceled_charge(client, shop)
    delivery = await WebhookDelivery.get(endpoint_id=endpoint_id)
    stranger = await signed_in(ops, client, await other_merchant(ops), role="developer")
    own_id, _ = await add_endpoint(stranger, url="https://hooks.other.example.jp/in")
    status, _ = await stranger.get(f"/merchant/webhooks/{endpoint_id}")
    assert status == 404
    before = await row_counts()
    for path in (
        f"/merchant/webhooks/{endpoint_id}/rotate",
        f"/merchant/webhooks/{endpoint_id}/enabled",
        f"/merchant/webhooks/{endpoint_id}/delete",
        f"/merchant/webhooks/{endpoint_id}/deliveries/{delivery.id}/replay",
        f"/merchant/webhooks/{own_id}/deliveries/{delivery.id}/replay",
    ):
        assert (await stranger.post(path, {"enabled": "0"})).status == 404, path
    assert await row_counts() == before
    stored = await WebhookEndpoint.get(id=endpoint_id)
    assert (stored.secret, stored.enabled, stored.deleted_at) == (secret, True, None)


async def test_rotating_shows_the_new_secret_once_and_keeps_the_old_one_a_day(
    client: Any, ops: OpsClient, shop: Shop
) -> None:
    """Rotate answers the new secret (the stored one); the old one overlaps; a later GET shows neither."""
    browser = await signed_in(ops, client, shop.merchant_id, role="developer")
    endpoint_id, old = await add_endpoint(browser)
    await browser.get(f"/merchant/webhooks/{endpoint_id}")
    response = await browser.post(f"/merchant/webhooks/{endpoint_id}/rotate")
    assert response.status == 200
    shown = SECRET.search(response.body_text)
    assert shown is not None
    stored = await WebhookEndpoint.get(id=endpoint_id)
    assert (stored.secret, stored.previous_secret) == (shown.group(1), old)
    assert stored.previous_secret_expires_at is not None
    assert await AuditEntry.filter(action="webhook_endpoint.rotate_secret", target_id=endpoint_id).count() == 1
    _, later = await browser.get(f"/merchant/webhooks/{endpoint_id}")
    assert shown.group(1) not in later
    assert 'id="endpoint-secret"' not in later


async def test_the_delivery_log_shows_each_delivery_with_a_replay_button(
    client: Any, ops: OpsClient, shop: Shop
) -> None:
    """A real event's delivery is listed with its event id and type, status and attempts, and a replay form."""
    browser = await signed_in(ops, client, shop.merchant_id, role="developer")
    endpoint_id, _ = await add_endpoint(browser)
    charge_id = await canceled_charge(client, shop)
    delivery = await WebhookDelivery.get(endpoint_id=endpoint_id)
    status, page = await browser.get(f"/merchant/webhooks/{endpoint_id}?lang=en")
    assert status == 200
    row = page[page.index(f'<tr id="delivery-{delivery.id}">') :]
    row = row[: row.index("</tr>")]
    assert delivery.event_id in row
    assert "charge.canceled" in row
    assert "Pending" in row
    assert f'id="replay-{delivery.id}"' in row
    assert f'action="/merchant/webhooks/{endpoint_id}/deliveries/{delivery.id}/replay"' in row
    assert charge_id not in row  # the event's id is shown, not its object's


async def test_replay_requeues_the_delivery_through_the_shared_operation(
    client: Any, ops: OpsClient, shop: Shop
) -> None:
    """Replaying a failed delivery makes it pending again with its attempts counted afresh and
    hands it to the webhooks worker (one more outbox message), audited."""
    browser = await signed_in(ops, client, shop.merchant_id, role="developer")
    endpoint_id, _ = await add_endpoint(browser)
    await canceled_charge(client, shop)
    delivery = await WebhookDelivery.get(endpoint_id=endpoint_id)
    await WebhookDelivery.filter(id=delivery.id).update(status="failed", attempts=10, next_attempt_at=None)
    messages = await OutboxMessage.filter(actor_name="deliver_webhook").count()
    await browser.get(f"/merchant/webhooks/{endpoint_id}")
    response = await browser.post(f"/merchant/webhooks/{endpoint_id}/deliveries/{delivery.id}/replay")
    assert response.status == 303
    assert response.headers["Location"] == f"/merchant/webhooks/{endpoint_id}?done=replayed"
    stored = await WebhookDelivery.get(id=delivery.id)
    assert (stored.status, stored.attempts) == ("pending", 0)
    assert stored.next_attempt_at is not None
    queued = await OutboxMessage.filter(actor_name="deliver_webhook").order_by("-created_at").first()
    assert await OutboxMessage.filter(actor_name="deliver_webhook").count() == messages + 1
    assert queued is not None
    assert queued.args == [delivery.id]
    assert await AuditEntry.filter(action="webhook_delivery.redeliver", target_id=delivery.id).count() == 1


async def test_a_switched_off_endpoint_refuses_replay_until_switched_on(
    client: Any, ops: OpsClient, shop: Shop
) -> None:
    """Stop sending switches the endpoint off; a replay then answers 409 naming why and changes
    nothing; Start sending again switches it back on."""
    browser = await signed_in(ops, client, shop.merchant_id, role="developer")
    endpoint_id, _ = await add_endpoint(browser)
    await canceled_charge(client, shop)
    delivery = await WebhookDelivery.get(endpoint_id=endpoint_id)
    _, page = await browser.get(f"/merchant/webhooks/{endpoint_id}")
    assert 'id="disable-endpoint"' in page
    assert (await browser.post(f"/merchant/webhooks/{endpoint_id}/enabled", {"enabled": "0"})).status == 303
    assert (await WebhookEndpoint.get(id=endpoint_id)).enabled is False
    before = await row_counts()
    refused = await browser.post(f"/merchant/webhooks/{endpoint_id}/deliveries/{delivery.id}/replay?lang=en")
    assert refused.status == 409
    assert "This endpoint is switched off." in refused.body_text
    assert await row_counts() == before
    assert 'id="enable-endpoint"' in refused.body_text
    assert (await browser.post(f"/merchant/webhooks/{endpoint_id}/enabled", {"enabled": "1"})).status == 303
    assert (await WebhookEndpoint.get(id=endpoint_id)).enabled is True


async def test_a_deleted_endpoint_leaves_the_list(client: Any, ops: OpsClient, shop: Shop) -> None:
    """Delete marks the endpoint deleted (audited); it leaves the list and its page answers 404."""
    browser = await signed_in(ops, client, shop.merchant_id, role="admin")
    endpoint_id, _ = await add_endpoint(browser)
    await browser.get(f"/merchant/webhooks/{endpoint_id}")
    response = await browser.post(f"/merchant/webhooks/{endpoint_id}/delete")
    assert response.status == 303
    assert (await WebhookEndpoint.get(id=endpoint_id)).deleted_at is not None
    assert await AuditEntry.filter(action="webhook_endpoint.delete", target_id=endpoint_id).count() == 1
    _, listing = await browser.get("/merchant/webhooks")
    assert f"/merchant/webhooks/{endpoint_id}" not in listing
    status, _ = await browser.get(f"/merchant/webhooks/{endpoint_id}")
    assert status == 404


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[str, list[str]]]:
    """A merchant's receiver on this machine answering 200: its URL and the webhook-ids it got."""
    received: list[str] = []

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        received.append(request.headers["webhook-id"])
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/hooks", hook)
    runner = web.AppRunner(app)
    await runner.setup()
    port = unused_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield f"http://127.0.0.1:{port}/hooks", received
    await runner.cleanup()


@pytest.mark.usefixtures("worker")
async def test_a_replayed_delivery_is_sent_again_under_the_same_webhook_id(
    client: Any, ops: OpsClient, shop: Shop, settings: Settings, receiver: tuple[str, list[str]]
) -> None:
    """Through the real worker: delivered once (200 in the log), replayed from the page, delivered
    again with the same webhook-id and a second attempt in the log."""
    url, received = receiver
    browser = await signed_in(ops, client, shop.merchant_id, role="developer")
    endpoint_id, _ = await add_endpoint(browser, url=url, events=("charge.canceled",))
    await canceled_charge(client, shop)
    delivery = await WebhookDelivery.get(endpoint_id=endpoint_id)

    async def attempts(count: int) -> bool:
        return await DeliveryAttempt.filter(delivery_id=delivery.id).count() >= count

    await settle(settings, lambda: attempts(1))
    _, page = await browser.get(f"/merchant/webhooks/{endpoint_id}?lang=en")
    row = page[page.index(f'<tr id="delivery-{delivery.id}">') :]
    assert "Delivered" in row[: row.index("</tr>")]
    assert "<code>200</code>" in row[: row.index("</tr>")]
    response = await browser.post(f"/merchant/webhooks/{endpoint_id}/deliveries/{delivery.id}/replay")
    assert response.status == 303
    await settle(settings, lambda: attempts(2))
    assert received == [delivery.id, delivery.id]
    assert (await WebhookDelivery.get(id=delivery.id)).status == "delivered"
