"""The merchant site's home page: this month's figures and the SVG charts, from real purchases."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from sites_support import signed_in

from conftest import OpsClient
from models.clock import clock
from models.subscriptions import Subscription
from settings import Settings
from tests_support import RETURN_URL, Shop, answer, buy, close, collect_in_full, make_payouts, open_shop, settle

pytestmark = pytest.mark.usefixtures("worker")


def figure(page: str, name: str) -> int:
    """The data-value of the home page's figure ``figure-<name>``."""
    found = re.search(rf'id="figure-{name}" data-value="(-?\d+)"', page)
    assert found, f"no figure {name}"
    return int(found.group(1))


def bars(page: str, chart: str, series: str) -> dict[str, int]:
    """The drawn bars of one series of the chart ``chart``: {label: value}."""
    svg = re.search(rf'<svg id="{chart}".*?</svg>', page, re.DOTALL)
    assert svg, f"no chart {chart}"
    found = re.findall(rf'data-series="{series}" data-label="([^"]+)" data-value="(\d+)"', svg.group(0))
    return {label: int(value) for label, value in found}


async def subscribe(client: Any, settings: Settings, shop: Shop, *, amount: int) -> str:
    """A subscription confirmed by the shop's subscriber (its first month is a purchase); its id."""
    created = await (
        await client.post(
            "/v1/subscriptions",
            headers=shop.auth,
            json={"amount": amount, "description": "月額プラン", "return_url": RETURN_URL},
        )
    ).json()
    await answer(client, created["confirmation_url"], login_id=shop.login_id, password=shop.password)

    async def active() -> bool:
        return (await Subscription.get(id=created["id"])).status == "active"

    await settle(settings, active)
    return str(created["id"])


async def create_and_cancel(client: Any, shop: Shop, kind: str) -> None:
    """Create one of ``kind`` (charges, subscriptions) and cancel it before anyone confirms it."""
    body = {"amount": 400, "description": "取り消し", "return_url": RETURN_URL}
    created = await (await client.post(f"/v1/{kind}", headers=shop.auth, json=body)).json()
    assert (await client.post(f"/v1/{kind}/{created['id']}/cancel", headers=shop.auth)).status == 200


async def test_this_months_figures_and_daily_bars_equal_the_purchases(
    client: Any, ops: OpsClient, settings: Settings
) -> None:
    """October's sale is charted but not in November's figures; November's sales, refund and cancellations add up."""
    await clock.move_to(datetime.fromisoformat("2030-10-25T10:00:00+09:00"))
    shop = await open_shop(ops)
    await buy(client, settings, shop, amount=700)
    await clock.move_to(datetime.fromisoformat("2030-11-10T10:00:00+09:00"))
    big = await buy(client, settings, shop, amount=1000)
    await buy(client, settings, shop, amount=500)
    refund = await client.post("/v1/refunds", headers=shop.auth, json={"charge": big, "amount": 300})
    assert refund.status == 201
    await create_and_cancel(client, shop, "charges")
    await subscribe(client, settings, shop, amount=980)
    await create_and_cancel(client, shop, "subscriptions")
    await clock.move_to(datetime.fromisoformat("2030-11-12T09:00:00+09:00"))
    await buy(client, settings, shop, amount=200)

    browser = await signed_in(ops, client, shop.merchant_id)
    status, page = await browser.get("/merchant")
    assert status == 200
    assert 'id="month-period">2030-11<' in page
    assert figure(page, "purchases") == 4  # 1,000 + 500 + the subscription's first 980 + 200
    assert figure(page, "sales") == 2680
    assert (figure(page, "refunds"), figure(page, "refunded")) == (1, 300)
    assert figure(page, "cancellations") == 2  # the unconfirmed charge and the unwanted subscription
    assert figure(page, "active-subscriptions") == 1
    assert "2,680円" in page
    assert bars(page, "daily-chart", "sales") == {"2030-10-25": 700, "2030-11-10": 2480, "2030-11-12": 200}
    assert bars(page, "daily-chart", "refunds") == {"2030-11-10": 300}
    assert '<tr data-label="2030-10-25">' in page  # the data table has the days with sales
    assert 'id="monthly-empty"' in page  # nothing closed yet


async def test_the_charts_are_plain_svg_with_a_title_and_no_inline_style(
    client: Any, ops: OpsClient, settings: Settings
) -> None:
    """The daily chart is inline SVG with its <title> and <desc>, sixty days, and no style= or script."""
    await clock.move_to(datetime.fromisoformat("2030-11-10T10:00:00+09:00"))
    shop = await open_shop(ops)
    await buy(client, settings, shop, amount=1200)
    browser = await signed_in(ops, client, shop.merchant_id)
    status, page = await browser.get("/merchant?lang=en")
    assert status == 200
    svg = re.search(r'<svg id="daily-chart".*?</svg>', page, re.DOTALL)
    assert svg
    chart = svg.group(0)
    assert '<title id="daily-chart-title">Daily sales and refunds</title>' in chart
    assert '<desc id="daily-chart-desc">' in chart
    assert "style=" not in page
    assert "<script" not in page
    assert 'aria-label="Sales 2030-11-10: ¥1,200"' in chart
    assert ">11/10</text>" in chart  # the latest day is labelled
    assert "fill=" in chart


async def test_closed_months_show_billed_collected_and_paid_out(
    client: Any, ops: OpsClient, settings: Settings
) -> None:
    """November paid out shows its payout's figures; December, closed and not paid out, its billed items."""
    await clock.move_to(datetime.fromisoformat("2030-11-10T10:00:00+09:00"))
    shop = await open_shop(ops)
    await buy(client, settings, shop, amount=1000)
    await clock.move_to(datetime.fromisoformat("2030-12-05T10:00:00+09:00"))
    await close(ops, settings, "2030-11")
    await collect_in_full(ops, shop.line_id, "2030-11", paid_at="2030-12-20T10:00:00+09:00")
    await buy(client, settings, shop, amount=2000)
    await clock.move_to(datetime.fromisoformat("2031-01-01T00:10:00+09:00"))
    (payout,) = await make_payouts(ops, settings, "2030-11")
    await close(ops, settings, "2030-12")
    browser = await signed_in(ops, client, shop.merchant_id)
    status, page = await browser.get("/merchant")
    assert status == 200
    assert bars(page, "monthly-chart", "billed") == {"2030-11": 1000, "2030-12": 2000}
    assert bars(page, "monthly-chart", "collected") == {"2030-11": 1000}
    assert bars(page, "monthly-chart", "paid") == {"2030-11": payout["net"]}
    assert payout["net"] == 1000 - payout["fee"]
    assert f'href="/merchant/payouts/{payout["id"]}"' in page
    december = re.search(r'<tr data-period="2030-12">.*?</tr>', page, re.DOTALL)
    assert december
    assert "2,000円" in december.group(0)
    assert 'class="muted"' in december.group(0)  # not paid out yet
