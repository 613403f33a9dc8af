"""The merchant site's payouts: the list, one payout's figures and statement, the CSV, and 404s."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime
from typing import Any

import pytest
from sites_support import signed_in

from api.merchant_site.payouts import spreadsheet_text
from conftest import OpsClient
from models.clock import clock
from models.payouts import PayoutLine
from settings import Settings
from tests_support import MERCHANT_BODY, buy, close, collect_in_full, make_payouts, open_shop

FIGURES = (
    "period",
    "billed",
    "lines",
    "fee",
    "fee_rule",
    "setup_fee",
    "collected",
    "adjustments",
    "carried_forward",
    "net",
    "scheduled_date",
    "status",
)


@pytest.fixture
async def paid_out(client: Any, ops: OpsClient, settings: Settings, worker: Any) -> dict[str, Any]:
    """November 2030: two purchases, billed, collected in December, paid out in January."""
    await clock.move_to(datetime.fromisoformat("2030-11-10T10:00:00+09:00"))
    shop = await open_shop(ops)
    for amount in (1000, 2500):
        await buy(client, settings, shop, amount=amount)
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    await collect_in_full(ops, shop.line_id, "2030-11", paid_at="2030-12-20T10:00:00+09:00")
    await clock.move_to(datetime.fromisoformat("2031-01-01T00:10:00+09:00"))
    (payout,) = await make_payouts(ops, settings, "2030-11")
    return {"shop": shop, "payout": payout}


async def test_a_viewer_lists_the_payouts_with_their_figures(
    client: Any, ops: OpsClient, paid_out: dict[str, Any]
) -> None:
    """The list shows the payout's month, net and status; the status filter keeps or drops it."""
    payout = paid_out["payout"]
    browser = await signed_in(ops, client, paid_out["shop"].merchant_id)
    status, page = await browser.get("/merchant/payouts")
    assert status == 200
    row = re.search(rf'<tr id="payout-{payout["id"]}" data-period="2030-11">.*?</tr>', page, re.DOTALL)
    assert row
    assert f"{payout['net']:,}円" in row.group(0)
    assert f"{payout['billed']:,}円" in row.group(0)
    assert f'id="payout-{payout["id"]}"' in (await browser.get("/merchant/payouts?status=scheduled"))[1]
    status, paid_page = await browser.get("/merchant/payouts?status=paid")
    assert status == 200
    assert f'id="payout-{payout["id"]}"' not in paid_page
    status, bad = await browser.get("/merchant/payouts?status=lost")
    assert status == 400
    assert 'id="status-error"' in bad


async def test_the_payout_page_shows_every_figure_and_statement_line(
    client: Any, ops: OpsClient, paid_out: dict[str, Any]
) -> None:
    """Each §11 figure of the payout is on its page, and one row per statement line with its amount."""
    payout = paid_out["payout"]
    browser = await signed_in(ops, client, paid_out["shop"].merchant_id)
    status, page = await browser.get(f"/merchant/payouts/{payout['id']}")
    assert status == 200
    shown = {
        name: re.search(rf'id="payout-{name.replace("_", "-")}" data-value="([^"]*)"', page).group(1)  # type: ignore[union-attr]
        for name in FIGURES
    }
    assert shown == {name: str(payout[name]) for name in FIGURES}
    lines = await PayoutLine.filter(payout_id=payout["id"]).order_by("id")
    assert len(lines) == 3  # two collected purchases and the fee
    rows = re.findall(r'<tr data-kind="([^"]+)" data-amount="(-?\d+)">', page)
    assert rows == [(line.kind, str(line.amount)) for line in lines]
    assert sum(line.amount for line in lines) == payout["net"]
    assert f'href="/merchant/payouts/{payout["id"]}.csv"' in page
    for bad in ("x", "²", "9" * 5000, "9" * 30):  # not a number, not ASCII, past int()'s limit, past BIGINT
        assert (await browser.get(f"/merchant/payouts/{payout['id']}?after_line={bad}"))[0] == 400, bad


async def test_the_statement_csv_has_a_bom_a_header_and_one_row_per_line(
    client: Any, ops: OpsClient, paid_out: dict[str, Any]
) -> None:
    """The CSV starts with the UTF-8 BOM, is named for the payout, and its rows are the statement lines."""
    payout = paid_out["payout"]
    await signed_in(ops, client, paid_out["shop"].merchant_id)
    response = await client.get(f"/merchant/payouts/{payout['id']}.csv")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert f"matomete-payout-2030-11-{payout['id']}.csv" in response.headers["Content-Disposition"]
    body = await response.read()
    assert body.startswith(b"\xef\xbb\xbf")
    header, *rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert header == ["payout_id", "period", "kind", "charge", "invoice_item", "description", "amount"]
    lines = await PayoutLine.filter(payout_id=payout["id"]).order_by("id").prefetch_related("item")
    assert rows == [
        [
            payout["id"],
            "2030-11",
            line.kind,
            (line.item.charge_id or "") if line.item else "",
            str(line.item.id) if line.item else "",
            line.description,
            str(line.amount),
        ]
        for line in lines
    ]
    assert "コンテンツ 1000円" in {row[5] for row in rows}


async def test_another_merchants_payout_is_not_found(client: Any, ops: OpsClient, paid_out: dict[str, Any]) -> None:
    """A user of another merchant gets 404 for the payout's page and its CSV, and an empty list."""
    payout = paid_out["payout"]
    status, other = await ops.post("/ops/v1/merchants", json=MERCHANT_BODY)
    assert status == 201
    browser = await signed_in(ops, client, other["id"], role="admin")
    assert (await browser.get(f"/merchant/payouts/{payout['id']}"))[0] == 404
    response = await client.get(f"/merchant/payouts/{payout['id']}.csv")
    assert response.status == 404
    assert "payout_id,period" not in await response.text()  # an error page, not the statement
    status, page = await browser.get("/merchant/payouts")
    assert status == 200
    assert payout["id"] not in page
    assert (await browser.get("/merchant/payouts/po_nothing_here"))[0] == 404


async def test_without_a_session_the_csv_sends_to_sign_in(client: Any, paid_out: dict[str, Any]) -> None:
    """The statement CSV is a signed-in page: no session, no file."""
    response = await client.get(f"/merchant/payouts/{paid_out['payout']['id']}.csv", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/merchant/login")


def test_a_description_that_looks_like_a_formula_is_not_run_by_a_spreadsheet() -> None:
    """=, +, - and @ at the start of a description get an apostrophe; other text is unchanged."""
    assert [spreadsheet_text(t) for t in ("=SUM(A1)", "+1", "-2", "@x", "コンテンツ 1000円")] == [
        "'=SUM(A1)",
        "'+1",
        "'-2",
        "'@x",
        "コンテンツ 1000円",
    ]
