"""The operator console in a real browser (Debian's Chromium, driven by Playwright): a support
member finds a locked ID by its login id, unlocks it and resets its password, and the subscriber
buys with the new one; support has no refund button and a forged refund is refused; a billing
member refunds a purchase from the line's page and the merchant's webhook hears charge.refunded.
Each journey saves screenshots under ``artifacts/browser/<backend>/``."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port
from browser_support import chromium, needs_chromium, screenshot
from sites_support import staff_member

import queues
from conftest import OpsClient
from models.accounts import SubscriberAccount
from models.audit_log import AuditEntry
from models.charges import Charge, Refund
from models.events import Event
from settings import Settings
from tests_support import RETURN_URL, answer, buy, open_shop, settle

pytestmark = needs_chromium


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test platform, allowed to deliver webhooks to a receiver on this machine."""
    return settings.replace(webhooks_allow_insecure=True)


async def _live(aiohttp_server: Any, aiohttp_client: Any, settings: Settings) -> tuple[str, OpsClient, Settings]:
    from api.app import create_app

    port = unused_port()
    live = settings.replace(public_url=f"http://127.0.0.1:{port}")
    server = await aiohttp_server(create_app(live), port=port)
    return f"http://127.0.0.1:{port}", OpsClient(await aiohttp_client(server)), live


async def _sign_in(page: Any, base: str, role: str) -> None:
    email, password = await staff_member(role)
    await page.goto(f"{base}/ops/login")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("button[type=submit].primary")
    await page.wait_for_url(f"{base}/ops")


async def _lock_by_wrong_confirmations(ops: OpsClient, settings: Settings, shop: Any) -> None:
    """Five wrong passwords on a purchase's confirmation page: the ID locks and the purchase fails."""
    response = await ops.client.post(
        "/v1/charges", headers=shop.auth, json={"amount": 300, "description": "鍵", "return_url": RETURN_URL}
    )
    created = await response.json()
    for attempt in range(5):
        posted = await answer(ops.client, created["confirmation_url"], login_id=shop.login_id, password=f"no-{attempt}")
        assert posted.status == 303

        async def decided() -> bool:
            return (await Charge.get(id=created["id"])).status != "processing"

        await settle(settings, decided)
    assert (await Charge.get(id=created["id"])).failure_code == "account_locked"
    assert (await SubscriberAccount.get(login_id=shop.login_id)).locked_until is not None


async def _forge_a_refund(page: Any, base: str, line_id: str, charge_id: str) -> None:
    """A refund posted by the signed-in support member (with a valid CSRF token): 403, and no
    refund, no audit row, the charge unchanged."""
    token = await page.get_attribute("form[action='/ops/logout'] input[name=csrf_token]", "value")
    refunds, audits = await Refund.all().count(), await AuditEntry.all().count()
    forged = await page.request.post(
        f"{base}/ops/lines/{line_id}/charges/{charge_id}/refund",
        form={"csrf_token": token or "", "amount": "100", "reason": "forged"},
        max_redirects=0,
    )
    assert forged.status == 403
    assert (await Refund.all().count(), await AuditEntry.all().count()) == (refunds, audits)
    assert (await Charge.get(id=charge_id)).refunded_amount == 0


async def test_support_unlocks_and_resets_a_locked_id_and_cannot_refund(
    aiohttp_server: Any, aiohttp_client: Any, settings: Settings, worker: Any
) -> None:
    """Find by login id → the line page shows the ID locked; unlock, reset (the new password shown
    once), the subscriber confirms a purchase with it; no refund button, and a forged refund is a
    403 with no refund and no audit row."""
    base, ops, live = await _live(aiohttp_server, aiohttp_client, settings)
    shop = await open_shop(ops)
    bought = await buy(ops.client, settings, shop, amount=1200)
    await _lock_by_wrong_confirmations(ops, settings, shop)
    account = await SubscriberAccount.get(login_id=shop.login_id)

    async with chromium() as context:
        page = await context.new_page()
        await _sign_in(page, base, "support")
        await page.fill("#q", shop.login_id)
        await page.click("#find-button")
        await page.wait_for_url(f"{base}/ops/lines/{shop.line_id}")
        assert await page.get_attribute(f"#id-{account.id}", "data-locked") == "yes"
        assert await page.locator("[id^=refund-button-]").count() == 0
        await screenshot(page, "ops-line-locked-id")

        await page.fill(f"#unlock-{account.id} input[name=reason]", "本人確認済み・ロック解除の依頼")
        await page.click(f"#unlock-button-{account.id}")
        await page.wait_for_selector("#done-notice[data-done=unlocked]")
        assert await page.get_attribute(f"#id-{account.id}", "data-locked") == "no"
        await page.fill(f"#reset-{account.id} input[name=reason]", "パスワード失念のため再発行")
        await page.click(f"#reset-button-{account.id}")
        await page.wait_for_selector("#new-password")
        password = (await page.inner_text("#new-password")).strip()
        await screenshot(page, "ops-password-reset-shown-once")

        await _forge_a_refund(page, base, shop.line_id, bought)

    shop_site = await aiohttp_server(_merchant_site())
    return_url = f"http://127.0.0.1:{shop_site.port}/return"
    response = await ops.client.post(
        "/v1/charges", headers=shop.auth, json={"amount": 800, "description": "新しい鍵で", "return_url": return_url}
    )
    charge = await response.json()
    stop = asyncio.Event()
    relay = asyncio.create_task(queues.relay_forever(queues.publisher_for(live), stop=stop))
    try:
        async with chromium(width=390, height=844) as context:  # the subscriber's phone
            page = await context.new_page()
            await page.goto(charge["confirmation_url"])
            await page.fill("input[name=login_id]", shop.login_id)
            await page.fill("input[name=password]", password)
            await screenshot(page, "ops-subscriber-confirms-with-new-password-phone")
            await page.click("button[value=confirm]")
            await page.wait_for_url(f"{return_url}*", timeout=30_000)
            assert "status=succeeded" in page.url
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await relay
    assert (await Charge.get(id=charge["id"])).status == "succeeded"


def _merchant_site() -> web.Application:
    """The merchant's return page: it shows the status the platform sent back."""

    async def back(request: web.Request) -> web.Response:
        return web.Response(text=f"<h1 id=result>{request.query.get('status')}</h1>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/return", back)
    return app


def _receiver(received: list[dict[str, Any]]) -> web.Application:
    """The merchant's webhook receiver: it keeps what arrives and answers 200."""

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    return app


async def test_billing_refunds_from_the_line_page_and_the_merchant_hears_it(
    aiohttp_server: Any, aiohttp_client: Any, settings: Settings, worker: Any
) -> None:
    """A billing member finds a purchase by its id, opens its line and refunds 500 yen with a reason:
    the page, the charge and the audit row show it, and the merchant's endpoint gets charge.refunded."""
    base, ops, _ = await _live(aiohttp_server, aiohttp_client, settings)
    shop = await open_shop(ops)
    received: list[dict[str, Any]] = []
    receiver = await aiohttp_server(_receiver(received))
    status, _ = await ops.post(
        "/v1/webhook_endpoints",
        headers=shop.auth,
        json={"url": f"http://127.0.0.1:{receiver.port}/hook", "events": ["charge.refunded"]},
    )
    assert status == 201
    charge_id = await buy(ops.client, settings, shop, amount=1500)

    async with chromium() as context:
        page = await context.new_page()
        await _sign_in(page, base, "billing")
        await page.fill("#q", charge_id)
        await page.click("#find-button")
        await page.wait_for_selector("#found-charges")
        await screenshot(page, "ops-find-a-charge")
        await page.click("#found-charges a.found-line")
        await page.wait_for_url(f"{base}/ops/lines/{shop.line_id}")
        await page.fill(f"#refund-amount-{charge_id}", "500")
        await page.fill(f"#refund-{charge_id} input[name=reason]", "二重購入のお申し出")
        await screenshot(page, "ops-line-refund-form")
        await page.click(f"#refund-button-{charge_id}")
        await page.wait_for_selector("#done-notice[data-done=refunded]")
        assert "500" in await page.inner_text(f"#charge-{charge_id} .refunded-amount")
        assert await page.locator("#audit-table tr[data-action='charge.refund']").count() == 1
        await screenshot(page, "ops-line-refunded")

    assert (await Charge.get(id=charge_id)).refunded_amount == 500
    entry = await AuditEntry.get(action="charge.refund", target_id=charge_id)
    assert entry.actor.startswith("staff:")
    assert entry.details["reason"] == "二重購入のお申し出"
    assert await Event.filter(merchant_id=shop.merchant_id, type="charge.refunded", object_id=charge_id).exists()

    async def heard() -> bool:
        return any(event.get("type") == "charge.refunded" for event in received)

    await settle(settings, heard)
    (event,) = [event for event in received if event["type"] == "charge.refunded"]
    assert (event["data"]["id"], event["data"]["refunded_amount"]) == (charge_id, 500)
