"""A subscriber in a real browser (Debian's Chromium, driven by Playwright): open the merchant's
confirmation link, sign in, confirm, wait, and land on the merchant's return page, which checks
the signature with nothing but its return-signing secret."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web
from aiohttp.test_utils import unused_port
from browser_support import chromium, needs_chromium, screenshot

import queues
from billing.signing import verify_return
from conftest import OpsClient
from tests_support import open_shop

pytestmark = needs_chromium


def merchant_site(secret: str) -> web.Application:
    """The merchant's own return page: it trusts the status only if the signature verifies."""

    async def back(request: web.Request) -> web.Response:
        params = {k: request.query[k] for k in ("charge", "status", "signature") if k in request.query}
        verdict = "signature ok" if verify_return(params, secret) else "signature BAD"
        return web.Response(text=f"<h1 id=result>{verdict}: {params.get('status')}</h1>", content_type="text/html")

    app = web.Application()
    app.router.add_get("/return", back)
    return app


async def test_subscriber_mistypes_then_confirms_in_chromium(
    aiohttp_server: Any, aiohttp_client: Any, settings, worker
) -> None:
    """A mistyped password brings the same page back naming the problem; the right one then pays,
    and the merchant's page shows a verified 'succeeded'."""
    from api.app import create_app

    port = unused_port()
    live = settings.replace(public_url=f"http://127.0.0.1:{port}")
    server = await aiohttp_server(create_app(live), port=port)
    ops = OpsClient(await aiohttp_client(server))
    shop = await open_shop(ops)
    merchant = await aiohttp_server(merchant_site(shop.signing_secret))
    response = await ops.client.post(
        "/v1/charges",
        headers=shop.auth,
        json={
            "amount": 1200,
            "description": "電子書籍「はじめての光回線」",
            "return_url": f"http://127.0.0.1:{merchant.port}/return",
        },
    )
    charge = await response.json()
    stop = asyncio.Event()
    relay = asyncio.create_task(queues.relay_forever(queues.publisher_for(live), stop=stop))
    try:
        async with chromium(width=390, height=844) as context:  # a phone
            page = await context.new_page()
            await page.goto(charge["confirmation_url"])
            assert "1,200円" in await page.content()
            await screenshot(page, "confirm-page-phone")
            await page.fill("input[name=login_id]", shop.login_id)
            await page.fill("input[name=password]", "mistyped-password")
            await page.click("button[value=confirm]")
            await page.wait_for_selector("#problem", timeout=30_000)
            assert page.url == charge["confirmation_url"]
            assert "パスワードが違います" in await page.inner_text("#problem")
            await screenshot(page, "confirm-page-mistyped-phone")
            await page.fill("input[name=login_id]", shop.login_id)
            await page.fill("input[name=password]", shop.password)
            await page.click("button[value=confirm]")
            await page.wait_for_url(f"http://127.0.0.1:{merchant.port}/return*", timeout=30_000)
            assert await page.inner_text("#result") == "signature ok: succeeded"
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await relay
