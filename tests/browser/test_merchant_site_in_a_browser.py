"""The merchant data management site in a real browser (Debian's Chromium, driven by Playwright).
Each journey saves screenshots under ``artifacts/browser/<backend>/`` for a person to look at."""

from __future__ import annotations

from typing import Any

import pyotp
from aiohttp.test_utils import unused_port
from browser_support import chromium, needs_chromium, screenshot
from sites_support import merchant_user

from conftest import OpsClient
from models.merchants import MerchantUser
from tests_support import open_shop

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
