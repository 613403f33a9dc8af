"""The merchant data management site in a real browser (Debian's Chromium, driven by Playwright).
Each journey saves screenshots under ``artifacts/browser/<backend>/`` for a person to look at."""

from __future__ import annotations

import asyncio
import csv
import io
from pathlib import Path
from typing import Any

import pyotp
import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port
from browser_support import chromium, needs_chromium, screenshot
from sites_support import merchant_user

from api.site.formatting import JST
from conftest import OpsClient
from models.audit_log import SYSTEM
from models.charges import Refund
from models.clock import clock
from models.merchants import ApiKey, MerchantUser
from models.operations import site_users
from models.operations.merchants import hash_api_key
from settings import Settings
from tests_support import RETURN_URL, buy, open_shop, settle

pytestmark = needs_chromium


async def _live(aiohttp_server: Any, aiohttp_client: Any, settings: Any) -> tuple[str, OpsClient]:
    from api.app import create_app

    port = unused_port()
    live = settings.replace(public_url=f"http://127.0.0.1:{port}")
    server = await aiohttp_server(create_app(live), port=port)
    return f"http://127.0.0.1:{port}", OpsClient(await aiohttp_client(server))


async def _sign_in(page: Any, base: str, email: str, password: str) -> None:
    await page.goto(f"{base}/merchant/login")
    await page.fill("#email", email)
    await page.fill("#password", password)
    await page.click("button[type=submit].primary")


async def test_admin_requires_totp_enrols_and_signs_in_with_a_code(
    aiohttp_server: Any, aiohttp_client: Any, settings: Any
) -> None:
    """An admin requires TOTP for everyone, enrols from the QR page, and the next sign-in asks for a code."""
    base, ops = await _live(aiohttp_server, aiohttp_client, settings)
    shop = await open_shop(ops)
    admin = await merchant_user(ops, shop.merchant_id, role="admin")
    async with chromium() as context:
        page = await context.new_page()
        await _sign_in(page, base, admin["email"], admin["initial_password"])
        await page.wait_for_url(f"{base}/merchant")
        await page.goto(f"{base}/merchant/users")
        await page.click("form[action='/merchant/users/totp'] button")
        await page.wait_for_url(f"{base}/merchant/account/totp")
        assert await page.locator("img.qr").count() == 1
        await screenshot(page, "merchant-totp-enrolment")
        secret = (await MerchantUser.get(id=admin["id"])).totp_secret
        await page.fill("#otp", pyotp.TOTP(secret).now())
        await page.click("form[action='/merchant/account/totp'] button")
        await page.wait_for_url(f"{base}/merchant/account?saved=totp")
        await page.click("form[action='/merchant/logout'] button")
        await page.wait_for_url(f"{base}/merchant/login")
        await _sign_in(page, base, admin["email"], admin["initial_password"])
        await page.wait_for_url(f"{base}/merchant/login/otp**")
        await page.fill("#otp", pyotp.TOTP(secret).now())
        await page.click("button[type=submit].primary")
        await page.wait_for_url(f"{base}/merchant")
        await screenshot(page, "merchant-home-after-totp")


async def test_six_wrong_passwords_lock_the_user_in_the_browser(
    aiohttp_server: Any, aiohttp_client: Any, settings: Any
) -> None:
    """Wrong passwords are named on the form; after five the form says the sign-in is locked."""
    base, ops = await _live(aiohttp_server, aiohttp_client, settings)
    shop = await open_shop(ops)
    viewer = await merchant_user(ops, shop.merchant_id, role="viewer")
    async with chromium(width=390, height=844) as context:  # a phone
        page = await context.new_page()
        for _ in range(6):
            await _sign_in(page, base, viewer["email"], "not-the-password")
            await page.wait_for_selector("p.error")
        assert "30分" in await page.inner_text("p.error")
        await screenshot(page, "merchant-login-locked-phone")
        await _sign_in(page, base, viewer["email"], viewer["initial_password"])
        await page.wait_for_selector("p.error")
        assert page.url.startswith(f"{base}/merchant/login")


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test platform, allowed to deliver webhooks to a receiver on this machine."""
    return settings.replace(webhooks_allow_insecure=True)


def _receiver(received: list[dict[str, Any]]) -> web.Application:
    """The merchant's webhook receiver: it keeps what arrives and answers 200."""

    async def hook(request: web.Request) -> web.Response:
        received.append(await request.json())
        return web.Response(text="ok")

    app = web.Application()
    app.router.add_post("/hook", hook)
    return app


async def test_a_merchant_admin_walks_the_site_and_a_viewer_cannot_refund(  # noqa: PLR0915 - one journey, told in order
    aiohttp_server: Any, aiohttp_client: Any, settings: Settings, worker: Any
) -> None:
    """An admin with TOTP sees the home figures and charts, filters purchases, refunds 300 yen and sees it on
    the timeline, exports the CSV (its rows are the API's list), replays a webhook, creates and revokes a key;
    a viewer has no refund button and a forged refund answers 403; English shows the same pages in English."""
    base, ops = await _live(aiohttp_server, aiohttp_client, settings)
    shop = await open_shop(ops)
    received: list[dict[str, Any]] = []
    receiver = await aiohttp_server(_receiver(received))
    status, endpoint = await ops.post(
        "/v1/webhook_endpoints",
        headers=shop.auth,
        json={"url": f"http://127.0.0.1:{receiver.port}/hook", "events": ["*"]},
    )
    assert status == 201, endpoint
    charge_ids = [await buy(ops.client, settings, shop, amount=amount) for amount in (1200, 800, 500)]
    declined = await (
        await ops.client.post(
            "/v1/charges", headers=shop.auth, json={"amount": 300, "description": "取り消し", "return_url": RETURN_URL}
        )
    ).json()
    await ops.client.post(f"/v1/charges/{declined['id']}/cancel", headers=shop.auth)
    await settle(settings, lambda: _arrived(received, 4))
    admin = await merchant_user(ops, shop.merchant_id, role="admin")
    user = await MerchantUser.get(id=admin["id"])
    await site_users.start_totp_enrolment(user)
    assert await site_users.confirm_totp(user, pyotp.TOTP(user.totp_secret).now(), actor=SYSTEM)
    await site_users.require_totp(shop.merchant_id, required=True, actor=SYSTEM)
    today = (await clock.now()).astimezone(JST).date().isoformat()

    async with chromium() as context:
        page = await context.new_page()
        await _sign_in(page, base, admin["email"], admin["initial_password"])
        await page.wait_for_url(f"{base}/merchant/login/otp**")
        await page.fill("#otp", pyotp.TOTP(user.totp_secret).now())
        await page.click("button[type=submit].primary")
        await page.wait_for_url(f"{base}/merchant")
        assert await page.get_attribute("#figure-purchases", "data-value") == "3"
        assert await page.get_attribute("#figure-sales", "data-value") == "2500"
        assert await page.locator("svg#daily-chart rect[data-series=sales]").count() >= 1
        await screenshot(page, "merchant-home")

        await page.goto(f"{base}/merchant/purchases")
        await page.select_option("#status", "succeeded")
        await page.fill("#from", today)
        await page.fill("#to", today)
        await page.click("#filter-button")
        await page.wait_for_url("**status=succeeded**")
        assert await page.locator("#purchases-table a.purchase-link").count() == 3
        await screenshot(page, "merchant-purchases-filtered")

        async with page.expect_download() as download_info:
            await page.click("#purchases-csv")
        exported = await asyncio.to_thread(Path(await (await download_info.value).path()).read_bytes)
        assert exported.startswith(b"\xef\xbb\xbf")
        rows = list(csv.DictReader(io.StringIO(exported.decode("utf-8-sig"))))
        _, listed = await ops.get("/v1/charges?status=succeeded&limit=100", headers=shop.auth)
        assert [(row["id"], int(row["amount"])) for row in rows] == [(c["id"], c["amount"]) for c in listed["data"]]

        await page.goto(f"{base}/merchant/purchases/{charge_ids[0]}")
        await page.fill("#refund-amount", "300")
        await page.click("#refund-button")
        await page.wait_for_selector("#refund-made")
        assert "300" in await page.inner_text("#refunds-table")
        assert await page.locator("#purchase-timeline li[data-type='charge.refunded']").count() == 1
        await screenshot(page, "merchant-purchase-refunded")

        await page.goto(f"{base}/merchant/webhooks/{endpoint['id']}")
        before = len(received)
        await page.locator("#webhook-deliveries button.replay").first.click()
        await page.wait_for_selector("#replayed")
        await settle(settings, lambda: _arrived(received, before + 1))
        await screenshot(page, "merchant-webhook-replayed")

        await page.goto(f"{base}/merchant/api-keys")
        await page.click("#create-api-key")
        new_key = (await page.inner_text("#new-api-key")).strip()
        assert new_key.startswith("sk_live_")
        assert (await ops.client.get("/v1/charges", headers={"Authorization": f"Bearer {new_key}"})).status == 200
        await screenshot(page, "merchant-api-key-created")
        record = await ApiKey.get(key_hash=hash_api_key(new_key))
        await page.click(f"#revoke-{record.id}")
        await page.wait_for_selector("#key-revoked")
        assert (await ops.client.get("/v1/charges", headers={"Authorization": f"Bearer {new_key}"})).status == 401

        await page.goto(f"{base}/merchant/purchases?lang=en")
        assert await page.inner_text("h1") == "Purchases"
        await page.goto(f"{base}/merchant")
        assert "Sign out" in await page.inner_text("header")
        await screenshot(page, "merchant-home-english")

    viewer = await merchant_user(ops, shop.merchant_id, role="viewer")
    async with chromium() as context:
        page = await context.new_page()
        await _sign_in(page, base, viewer["email"], viewer["initial_password"])
        await page.wait_for_url(f"{base}/merchant/account/totp")  # TOTP is required of everyone now
        viewer_user = await MerchantUser.get(id=viewer["id"])
        await page.fill("#otp", pyotp.TOTP(viewer_user.totp_secret).now())
        await page.click("form[action='/merchant/account/totp'] button")
        await page.goto(f"{base}/merchant/purchases/{charge_ids[1]}")
        assert await page.locator("#refund-form").count() == 0
        await screenshot(page, "merchant-purchase-as-viewer")
        token = await page.get_attribute("form[action='/merchant/logout'] input[name=csrf_token]", "value")
        refunds_before = await Refund.all().count()
        forged = await page.request.post(
            f"{base}/merchant/purchases/{charge_ids[1]}/refund",
            form={"csrf_token": token or "", "amount": "100", "reason": ""},
            max_redirects=0,
        )
        assert forged.status == 403
        assert await Refund.all().count() == refunds_before


async def _arrived(received: list[dict[str, Any]], count: int) -> bool:
    return len(received) >= count
