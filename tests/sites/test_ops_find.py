"""The console's Find page (/ops?q=): one box for a line id, a login id, a charge id, a
subscription id, a merchant id or a merchant's name; results grouped by kind on one page, a
single line (by its id or a login id) opened at once, bad input named with a 400."""

from __future__ import annotations

from typing import Any

import pytest
from sites_support import SiteBrowser, ops_signed_in

from conftest import OpsClient, row_counts
from models.accounts import SubscriberAccount
from models.charges import Charge
from models.clock import clock
from models.subscriptions import Subscription
from tests_support import MERCHANT_BODY, Shop, open_shop


@pytest.fixture
async def shop(ops: OpsClient) -> Shop:
    """A line with the ID ``taro`` and a merchant named ストリーム動画株式会社."""
    return await open_shop(ops)


@pytest.fixture
async def support(client: Any, shop: Shop) -> SiteBrowser:
    """A support member signed in to the console."""
    return await ops_signed_in(client, role="support")


async def a_charge(shop: Shop, *, confirmed: bool = True) -> Charge:
    """A charge of the shop's merchant: from its line when ``confirmed``, still waiting otherwise."""
    account = await SubscriberAccount.get(login_id=shop.login_id)
    mine = {"line_id": shop.line_id, "account_id": account.id, "status": "succeeded"} if confirmed else {}
    return await Charge.create(
        merchant_id=shop.merchant_id, amount=500, description="動画", created_at=await clock.now(), **mine
    )


async def find(browser: SiteBrowser, query: str) -> tuple[int, str, str]:
    """GET /ops?q=query: (status, page, Location)."""
    response = await browser.client.get("/ops", params={"q": query, "lang": "en"}, allow_redirects=False)
    return response.status, await response.text(), response.headers.get("Location", "")


@pytest.mark.parametrize("query", ["CAF0000001001", "caf0000001001", " CAF0000001001 ", "taro"])
async def test_a_line_id_or_a_login_id_opens_the_line_page(shop: Shop, support: SiteBrowser, query: str) -> None:
    """One line found (by its id, any case, or by one of its login ids) and nothing else: 303 to its page."""
    status, _, location = await find(support, query)
    assert status == 303
    assert location == f"/ops/lines/{shop.line_id}"


async def test_a_charge_id_shows_the_charge_with_its_line_and_merchant(shop: Shop, support: SiteBrowser) -> None:
    """A charge id: the charge under Purchases, linked to its line and to its merchant."""
    charge = await a_charge(shop)
    status, page, _ = await find(support, charge.id)
    assert status == 200
    found = page.split('id="found-charges"')[1].split("</section>")[0]
    assert charge.id in found
    assert f'href="/ops/lines/{shop.line_id}"' in found
    assert f'href="/ops/merchants/{shop.merchant_id}"' in found
    assert 'id="found-lines"' not in page


async def test_a_charge_not_yet_confirmed_has_no_line_to_link(shop: Shop, support: SiteBrowser) -> None:
    """A charge still waiting for its subscriber is shown, saying it has no line yet."""
    charge = await a_charge(shop, confirmed=False)
    status, page, _ = await find(support, charge.id)
    assert status == 200
    found = page.split('id="found-charges"')[1].split("</section>")[0]
    assert charge.id in found
    assert "/ops/lines/" not in found
    assert "not yet confirmed from a line" in found


async def test_a_subscription_id_shows_the_subscription_with_its_line(shop: Shop, support: SiteBrowser) -> None:
    """A subscription id: the subscription under Subscriptions, linked to its line."""
    subscription = await Subscription.create(
        merchant_id=shop.merchant_id,
        line_id=shop.line_id,
        amount=980,
        description="月額",
        status="active",
        created_at=await clock.now(),
    )
    status, page, _ = await find(support, subscription.id)
    assert status == 200
    found = page.split('id="found-subscriptions"')[1].split("</section>")[0]
    assert subscription.id in found
    assert f'href="/ops/lines/{shop.line_id}"' in found


async def test_a_merchant_id_shows_the_merchant(shop: Shop, support: SiteBrowser) -> None:
    """A merchant id: the merchant, linked to its console page."""
    status, page, _ = await find(support, shop.merchant_id)
    assert status == 200
    found = page.split('id="found-merchants"')[1].split("</section>")[0]
    assert f'href="/ops/merchants/{shop.merchant_id}" class="found-merchant"' in found
    assert found.count('class="found-merchant"') == 1


@pytest.mark.parametrize("query", ["動画", "ストリーム", "Video Shop", "video", "VIDEO SH"])
async def test_a_merchant_name_matches_any_part_in_any_case(
    ops: OpsClient, shop: Shop, support: SiteBrowser, query: str
) -> None:
    """Part of a merchant's name, upper or lower case, finds it (and only the merchants it names)."""
    status, other = await ops.post("/ops/v1/merchants", json={**MERCHANT_BODY, "name": "Video Shop KK"})
    assert status == 201
    status, page, _ = await find(support, query)
    assert status == 200
    found = page.split('id="found-merchants"')[1].split("</section>")[0]
    expected = shop.merchant_id if query in ("動画", "ストリーム") else other["id"]
    assert f'href="/ops/merchants/{expected}"' in found
    assert found.count('class="found-merchant"') == 1


async def test_one_query_shows_every_kind_it_matches_grouped(ops: OpsClient, shop: Shop, support: SiteBrowser) -> None:
    """A login id that is also part of a merchant's name: both groups on one page, no redirect."""
    status, _ = await ops.post("/ops/v1/merchants", json={**MERCHANT_BODY, "name": "Taro Games"})
    assert status == 201
    status, page, _ = await find(support, "taro")
    assert status == 200
    assert 'id="found-accounts"' in page
    assert 'id="found-merchants"' in page
    accounts = page.split('id="found-accounts"')[1].split("</section>")[0]
    assert f'href="/ops/lines/{shop.line_id}"' in accounts


@pytest.mark.parametrize(
    "query",
    ["CAF9999999999", "nobody", "ch_" + "f" * 60, "sub_" + "0" * 40, "mer_" + "1" * 40, "x" * 64 + "y", "%", "_"],
)
async def test_nothing_found_says_so(shop: Shop, support: SiteBrowser, query: str) -> None:
    """An unknown id, an id longer than its column, or a LIKE wildcard: 200 saying nothing was found."""
    status, page, _ = await find(support, query)
    assert status == 200
    assert 'id="nothing-found"' in page


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("a" * 201, "query_too_long"),
        ("a\tb", "query_invalid"),
        # NUL and escape are refused for every site before any handler (api/site/sessions.py).
        ("taro\x00", "control_characters"),
        ("a\x1bb", "control_characters"),
    ],
)
async def test_bad_input_is_a_400_naming_it(shop: Shop, support: SiteBrowser, query: str, code: str) -> None:
    """Too long, or holding control characters: 400 with the problem named, nothing searched, nothing written."""
    before = await row_counts()
    status, page, _ = await find(support, query)
    assert status == 400
    assert f'data-problem="{code}"' in page
    assert 'id="find-results"' not in page
    assert await row_counts() == before


async def test_an_empty_query_shows_the_box(support: SiteBrowser) -> None:
    """No query: the search box and no results."""
    status, page, _ = await find(support, "   ")
    assert status == 200
    assert 'id="find-form"' in page
    assert 'id="find-results"' not in page


@pytest.mark.parametrize("role", ["support", "billing", "admin"])
async def test_every_role_may_search(client: Any, shop: Shop, role: str) -> None:
    """Find is READ: each role gets the results."""
    browser = await ops_signed_in(client, role=role)
    status, _, location = await find(browser, shop.login_id)
    assert (status, location) == (303, f"/ops/lines/{shop.line_id}")


async def test_without_a_session_find_asks_to_sign_in(client: Any, shop: Shop) -> None:
    """A visitor not signed in is sent to the console's sign-in page."""
    response = await client.get("/ops", params={"q": shop.login_id}, allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/ops/login")
