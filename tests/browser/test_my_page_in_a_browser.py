"""The subscriber's my page in a real browser (Debian's Chromium, driven by Playwright), on a phone:
sign in from the ID's own line, see this month's purchase under its merchant with what is left of
the limit, cancel a subscription through its confirmation step; from another line's address the
same ID and password are refused with the line problem named."""

from __future__ import annotations

import ipaddress
from typing import Any

from aiohttp.test_utils import unused_port
from browser_support import chromium, needs_chromium, screenshot
from my_support import AWAY, buy, other_line

from conftest import OpsClient
from settings import Settings
from tests_support import open_shop, settle

pytestmark = needs_chromium
PHONE = {"width": 390, "height": 844}


async def test_a_subscriber_sees_and_stops_what_they_pay_for(
    aiohttp_server: Any, aiohttp_client: Any, settings: Settings, worker: Any
) -> None:
    """From the line: the purchase under its merchant, the limit left, a confirmed cancel the merchant hears
    of; from another line's address: refused as not the subscriber's own line."""
    from api.app import create_app

    port = unused_port()
    live = settings.replace(
        public_url=f"http://127.0.0.1:{port}", trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),)
    )
    server = await aiohttp_server(create_app(live), port=port)
    ops = OpsClient(await aiohttp_client(server))
    base = f"http://127.0.0.1:{port}"
    shop = await open_shop(ops)
    await other_line(ops, login_id="jiro")
    await buy(ops.client, settings, shop.auth, login_id=shop.login_id, password=shop.password, amount=1200)
    subscription_id = await buy(
        ops.client, settings, shop.auth, login_id=shop.login_id, password=shop.password, amount=980, monthly=True
    )

    async with chromium(**PHONE) as context:
        page = await context.new_page()
        await page.goto(f"{base}/my/login")
        await page.fill("#login_id", shop.login_id)
        await page.fill("#password", shop.password)
        await page.click("#sign-in")
        await page.wait_for_url(f"{base}/my")
        group = page.locator(f"#merchant-{shop.merchant_id}")
        assert "1,200円" in await group.inner_text()
        assert await page.inner_text("#month-total") == "2,180円"
        assert await page.inner_text("#limit-left") == "47,820円"
        await screenshot(page, "my-page-phone")

        await page.goto(f"{base}/my/subscriptions")
        await page.click(f"#cancel-{subscription_id}")
        await page.wait_for_selector("#cancel-form")
        await screenshot(page, "my-cancel-confirm-phone")
        await page.click("#confirm-cancel")
        await page.wait_for_selector("#canceled-notice")
        await screenshot(page, "my-subscription-canceled-phone")

    async def merchant_told() -> bool:
        _, events = await ops.get("/v1/events", headers=shop.auth)
        return "subscription.canceled" in [event["type"] for event in events["data"]]

    await settle(settings, merchant_told)

    async with chromium(**PHONE) as away:
        await away.set_extra_http_headers({"X-Forwarded-For": AWAY})
        page = await away.new_page()
        await page.goto(f"{base}/my/login")
        await page.fill("#login_id", shop.login_id)
        await page.fill("#password", shop.password)
        await page.click("#sign-in")
        await page.wait_for_selector("#login-error")
        assert await page.get_attribute("#login-error", "data-problem") == "line_mismatch"
        assert page.url.startswith(f"{base}/my/login")
        await screenshot(page, "my-login-other-line-phone")
