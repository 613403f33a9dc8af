"""The console's month close in a real browser (Debian's Chromium, driven by Playwright): an admin
signs in, the test clock passes the month end, the admin starts the close from /ops/billing and
watches the run page reload itself until the run has succeeded. Screenshots go to
``artifacts/browser/<backend>/``."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp.test_utils import unused_port
from browser_support import chromium, needs_chromium, screenshot
from sites_support import staff_member

from conftest import OpsClient
from models.audit_log import AuditEntry
from models.invoices import BillingRun, Invoice
from settings import Settings
from tests_support import buy, open_shop, settle

pytestmark = needs_chromium


async def _live(aiohttp_server: Any, aiohttp_client: Any, settings: Settings) -> tuple[str, OpsClient]:
    from api.app import create_app

    port = unused_port()
    live = settings.replace(public_url=f"http://127.0.0.1:{port}")
    server = await aiohttp_server(create_app(live), port=port)
    return f"http://127.0.0.1:{port}", OpsClient(await aiohttp_client(server))


async def test_an_admin_starts_a_month_close_and_watches_it_finish(  # noqa: PLR0915 - one journey, told in order
    aiohttp_server: Any, aiohttp_client: Any, settings: Settings, worker: Any
) -> None:
    """November's purchases; the clock moves to 1 December; the close started on the page runs
    while the run page reloads itself, and the page says it succeeded with the bill it wrote;
    the payouts, collections and merchant pages follow."""
    base, ops = await _live(aiohttp_server, aiohttp_client, settings)
    status, _ = await ops.post("/ops/v1/clock", json={"now": "2030-11-10T10:00:00+09:00"})
    assert status == 200
    shop = await open_shop(ops)
    for amount in (1200, 800):
        await buy(ops.client, settings, shop, amount=amount)
    status, _ = await ops.post("/ops/v1/clock", json={"now": "2030-12-01T00:10:00+09:00"})
    assert status == 200
    email, password = await staff_member("admin")

    async with chromium() as context:
        page = await context.new_page()
        await page.goto(f"{base}/ops/login")
        await page.fill("#email", email)
        await page.fill("#password", password)
        await page.click("button[type=submit].primary")
        await page.wait_for_url(f"{base}/ops")
        await screenshot(page, "ops-signed-in")

        await page.goto(f"{base}/ops/billing")
        assert await page.input_value("#period") == "2030-11"  # the month just ended
        await page.fill("#period", "2030-12")
        await page.fill("#reason", "month end")
        await page.click("#start-close")
        await page.wait_for_selector("#period-error")
        assert await BillingRun.all().count() == 0  # December has not ended: nothing opened
        await screenshot(page, "ops-billing-month-not-ended")

        await page.fill("#period", "2030-11")
        await page.fill("#reason", "November month end")
        await page.click("#start-close")
        await page.wait_for_url(f"{base}/ops/billing/runs/**")
        assert await page.get_attribute("#run-status", "data-status") == "running"
        assert await page.locator("meta[http-equiv=refresh]").count() == 1
        await screenshot(page, "ops-billing-run-running")

        run = await BillingRun.get(period="2030-11")

        async def finished() -> bool:
            return (await BillingRun.get(id=run.id)).status == "succeeded"

        relay = asyncio.create_task(settle(settings, finished))
        # No script: the page's own <meta refresh> brings the new status in.
        await page.wait_for_selector("#run-status[data-status=succeeded]", timeout=60_000)
        await relay
        assert await page.locator("meta[http-equiv=refresh]").count() == 0
        assert await page.inner_text("#run-invoices") == "1"
        assert await Invoice.filter(period="2030-11").count() == 1
        await screenshot(page, "ops-billing-run-succeeded")

        await page.goto(f"{base}/ops/billing")
        assert await page.get_attribute(f"#run-{run.id}", "data-status") == "succeeded"
        await screenshot(page, "ops-billing-runs")

        # The month's other money pages, as the admin goes on to them.
        await page.goto(f"{base}/ops/payouts?period=2030-11")
        assert await page.locator("#generate-form").count() == 1
        await screenshot(page, "ops-payouts-closed-month")
        await page.goto(f"{base}/ops/collections")
        assert await page.locator("#import-form input[type=file]").count() == 1
        await screenshot(page, "ops-collections")
        await page.goto(f"{base}/ops/merchants/{shop.merchant_id}")
        assert await page.locator("#suspend-merchant").count() == 1
        await screenshot(page, "ops-merchant")

    (entry,) = await AuditEntry.filter(action="billing.close")
    assert entry.details == {"period": "2030-11", "reason": "November month end"}
    assert entry.actor.startswith("staff:")
