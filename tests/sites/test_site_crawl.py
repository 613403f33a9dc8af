"""Every page a signed-in person can reach by following links answers without a server error, in
Japanese and in English: a crawl from each site's home over its own links."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from sites_support import SiteBrowser, ops_signed_in, signed_in

from conftest import OpsClient
from models.clock import clock
from settings import Settings
from tests_support import buy, close, collect_in_full, make_payouts, open_shop

pytestmark = pytest.mark.usefixtures("worker")
LINK = re.compile(r'href="(/(?:merchant|my|ops)[^"#]*)"')
MOST_PAGES = 80


async def crawl(browser: Any, start: str, prefix: str) -> dict[str, int]:
    """Status of every page reachable from ``start`` by links under ``prefix`` (the CSV downloads too)."""
    seen: dict[str, int] = {}
    queue = [start]
    while queue and len(seen) < MOST_PAGES:
        path = queue.pop(0).replace("&amp;", "&")
        if path in seen or "logout" in path:
            continue
        status, page = await browser.get(path)
        seen[path] = status
        queue.extend(link for link in LINK.findall(page) if link.startswith(prefix))
    return seen


@pytest.mark.parametrize("language", ["ja", "en"])
async def test_every_linked_merchant_page_renders(
    ops: OpsClient, client: Any, settings: Settings, language: str
) -> None:
    """An admin of a merchant with a purchase, a refund, a subscription and a webhook endpoint reaches
    every page by its links; none answers 5xx."""
    shop = await open_shop(ops)
    charge_id = await buy(client, settings, shop, amount=1200)
    await client.post("/v1/refunds", headers=shop.auth, json={"charge": charge_id, "amount": 200})
    await client.post(
        "/v1/webhook_endpoints", headers=shop.auth, json={"url": "https://hooks.example.jp/in", "events": ["*"]}
    )
    await client.post(
        "/v1/subscriptions",
        headers=shop.auth,
        json={"amount": 500, "description": "月額", "return_url": "https://shop.example/r"},
    )
    browser = await signed_in(ops, client, shop.merchant_id, role="admin")
    await browser.get(f"/merchant?lang={language}")
    statuses = await crawl(browser, "/merchant", "/merchant")
    assert len(statuses) >= 12, statuses
    assert f"/merchant/purchases/{charge_id}" in statuses
    assert {path: status for path, status in statuses.items() if status >= 500} == {}


async def test_the_crawl_sees_the_site(ops: OpsClient, client: Any, settings: Settings) -> None:
    """The crawl really walks: it reaches the developer pages, a subscription and the account page."""
    shop = await open_shop(ops)
    await client.post(
        "/v1/subscriptions",
        headers=shop.auth,
        json={"amount": 500, "description": "月額", "return_url": "https://shop.example/r"},
    )
    browser = await signed_in(ops, client, shop.merchant_id, role="admin")
    statuses = await crawl(browser, "/merchant", "/merchant")
    for page in ("/merchant/webhooks", "/merchant/api-keys", "/merchant/users", "/merchant/account"):
        assert statuses.get(page) == 200, statuses
    assert any(path.startswith("/merchant/subscriptions/sub_") for path in statuses), statuses


@pytest.mark.parametrize("language", ["ja", "en"])
async def test_every_linked_my_page_renders(ops: OpsClient, client: Any, settings: Settings, language: str) -> None:
    """A subscriber with a purchase reaches every my page by its links; none answers 5xx."""
    shop = await open_shop(ops)
    await buy(client, settings, shop, amount=800)
    browser = SiteBrowser(client)
    await browser.get(f"/my/login?lang={language}")
    signed = await browser.post("/my/login", {"login_id": shop.login_id, "password": shop.password})
    assert signed.status == 303, signed.body_text
    statuses = await crawl(browser, "/my", "/my")
    assert statuses.get("/my/subscriptions") == 200, statuses
    assert statuses.get("/my/password") == 200, statuses
    assert {path: status for path, status in statuses.items() if status >= 500} == {}


@pytest.mark.parametrize("language", ["ja", "en"])
async def test_every_linked_console_page_renders(
    ops: OpsClient, client: Any, settings: Settings, language: str
) -> None:
    """An admin of the console, with a line that bought, was refunded, subscribed, was billed,
    collected and paid out, reaches every console page by its links; none answers 5xx."""
    await clock.move_to(datetime.fromisoformat("2030-11-10T10:00:00+09:00"))
    shop = await open_shop(ops)
    charge_id = await buy(client, settings, shop, amount=1200)
    await client.post("/v1/refunds", headers=shop.auth, json={"charge": charge_id, "amount": 200})
    await client.post(
        "/v1/subscriptions",
        headers=shop.auth,
        json={"amount": 500, "description": "月額", "return_url": "https://shop.example/r"},
    )
    await clock.move_to(datetime.fromisoformat("2030-12-05T10:00:00+09:00"))
    await close(ops, settings, "2030-11")
    await collect_in_full(ops, shop.line_id, "2030-11", paid_at="2030-12-20T10:00:00+09:00")
    await clock.move_to(datetime.fromisoformat("2031-01-01T00:10:00+09:00"))
    await make_payouts(ops, settings, "2030-11")
    browser = await ops_signed_in(client, role="admin")
    await browser.get(f"/ops?lang={language}")
    statuses = await crawl(browser, f"/ops/lines/{shop.line_id}", "/ops")
    statuses.update(await crawl(browser, f"/ops?q={shop.merchant_id}", "/ops"))
    reached = {path.split("?")[0] for path, status in statuses.items() if status == 200}
    for page in ("/ops/billing", "/ops/collections", "/ops/payouts", "/ops/system", "/ops/staff"):
        assert page in reached, statuses
    for kind in ("/ops/lines/", "/ops/merchants/mer_", "/ops/billing/runs/run_", "/ops/payouts/files/"):
        assert any(path.startswith(kind) for path in reached), (kind, statuses)
    assert {path: status for path, status in statuses.items() if status >= 500} == {}
