"""The merchant site's purchases: the filtered, cursor-paged list, one purchase with its timeline,
bill and payout, the admin's refund form, and the streamed CSV (product.md §10)."""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import tracemalloc
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from sites_support import SiteBrowser, signed_in
from tortoise import connections

from api.merchant_site.purchases import CSV_COLUMNS
from api.site.formatting import JST
from conftest import OpsClient, row_counts
from models.audit_log import AuditEntry
from models.base import new_id
from models.charges import Charge, Refund
from models.events import Event
from models.invoices import Invoice, InvoiceItem, ItemKind
from models.payouts import Payout
from models.sql import Dialect, execute
from models.subscriptions import Subscription
from tests_support import MERCHANT_BODY, Shop, open_shop

# Noon JST on 10 March 2026; charges are spread out one minute apart before and after it.
NOON = datetime(2026, 3, 10, 12, 0, tzinfo=JST)
ROW_LINK = re.compile(r'href="/merchant/purchases/(ch_[0-9a-f]+)" class="purchase-link"')
UNBOUNDED = re.compile(r"\bOFFSET\b|\bCOUNT\s*\(", re.IGNORECASE)
PAGER = re.compile(r'<a href="([^"]+)" rel="(prev|next)">')


# Every NOT NULL column of ``charges`` without a database default, and the nullable ones tests set.
CHARGE_COLUMNS = (
    ("id", "varchar"),
    ("merchant_id", "varchar"),
    ("amount", "bigint"),
    ("currency", "varchar"),
    ("description", "varchar"),
    ("metadata", "text"),
    ("status", "varchar"),
    ("billing_status", "varchar"),
    ("failure_code", "varchar"),
    ("refunded_amount", "bigint"),
    ("merchant_reference", "varchar"),
    ("subscription_id", "varchar"),
    ("created_at", "timestamptz"),
)


async def insert_charges(
    merchant_id: str,
    count: int,
    *,
    start: datetime = NOON,
    step: timedelta = timedelta(minutes=1),
    batch: int = 10_000,
    **values: Any,
) -> list[str]:
    """``count`` charges written straight to the table, one ``INSERT ... SELECT`` per ``batch``
    (not through the API: 100,000 take seconds), the first at ``start`` and each ``step`` later,
    their ids sorting like their times; the ids, oldest first."""
    dialect = Dialect.for_connection()
    fields = {
        "merchant_id": merchant_id,
        "amount": 500,
        "currency": "jpy",
        "description": "映画レンタル",
        "metadata": {},
        "status": "succeeded",
        "billing_status": "unbilled",
        "failure_code": None,
        "refunded_amount": 0,
        "merchant_reference": None,
        "subscription_id": None,
        **values,
    }
    fields["metadata"] = json.dumps(fields["metadata"])
    names = ", ".join(name for name, _ in CHARGE_COLUMNS)
    picked = ", ".join(
        ("CAST(v.metadata AS jsonb)" if dialect.postgres else "v.metadata") if name == "metadata" else f"v.{name}"
        for name, _ in CHARGE_COLUMNS
    )
    statement = f"INSERT INTO charges ({names}) SELECT {picked} FROM {dialect.rows('v', CHARGE_COLUMNS)}"  # noqa: S608
    ids: list[str] = []
    for first in range(0, count, batch):
        rows = []
        for number in range(first, min(first + batch, count)):
            at = (start + step * number).astimezone(UTC)
            ids.append(new_id("ch", milliseconds=int(at.timestamp() * 1000)))
            # SQLite keeps times as Tortoise writes them: ISO text with a space, in UTC.
            row = {**fields, "id": ids[-1], "created_at": at if dialect.postgres else at.isoformat(" ")}
            rows.append(tuple(row[name] for name, _ in CHARGE_COLUMNS))
        await execute(statement, dialect.row_values("v", CHARGE_COLUMNS, rows))
    return ids


@pytest.fixture
async def shop(ops: OpsClient) -> Shop:
    """A line, an ID and a merchant."""
    return await open_shop(ops)


@pytest.fixture
async def rival(ops: OpsClient) -> str:
    """Another merchant's id."""
    status, merchant = await ops.post("/ops/v1/merchants", json=MERCHANT_BODY)
    assert status == 201
    return str(merchant["id"])


@pytest.fixture
async def admin(ops: OpsClient, client: Any, shop: Shop) -> SiteBrowser:
    """The shop's admin, signed in."""
    return await signed_in(ops, client, shop.merchant_id, role="admin")


def pager_links(page: str) -> dict[str, str]:
    """The pager's links by ``rel`` (``prev``: Newer, ``next``: Older)."""
    return {rel: url.replace("&amp;", "&") for url, rel in PAGER.findall(page)}


def listed(page: str) -> list[str]:
    """The charge ids a list page shows, in order."""
    return ROW_LINK.findall(page)


async def test_the_list_is_newest_first_and_each_filter_narrows_it(shop: Shop, rival: str, admin: SiteBrowser) -> None:
    """Status (charge, refunded, billing), q (id, reference, description) and JST days each select their rows."""
    merchant = shop.merchant_id
    plain = await insert_charges(merchant, 3, start=NOON)
    failed = await insert_charges(merchant, 2, start=NOON + timedelta(hours=1), status="failed", billing_status=None)
    refunded = await insert_charges(merchant, 1, start=NOON + timedelta(hours=2), refunded_amount=200)
    billed = await insert_charges(merchant, 1, start=NOON + timedelta(hours=3), billing_status="billed")
    referenced = await insert_charges(
        merchant, 1, start=NOON + timedelta(hours=4), merchant_reference="order-77", description="Premium 月額"
    )
    # 23:59 JST on the 9th is 14:59 UTC: a UTC day would put it on the wrong side of "from".
    late_on_ninth = await insert_charges(merchant, 1, start=datetime(2026, 3, 9, 23, 59, tzinfo=JST))
    # 00:30 JST on the 10th is 15:30 UTC on the 9th: stored (UTC) on the 9th, it belongs to the 10th.
    early_on_tenth = await insert_charges(merchant, 1, start=datetime(2026, 3, 10, 0, 30, tzinfo=JST))
    await insert_charges(rival, 2)
    everything = late_on_ninth + early_on_tenth + plain + failed + refunded + billed + referenced
    cases = {
        "": everything[::-1],
        "?status=failed": failed[::-1],
        "?status=succeeded": [c for c in everything[::-1] if c not in failed],
        "?status=refunded": refunded,
        "?status=billed": billed,
        "?q=order-77": referenced,
        f"?q={plain[1]}": [plain[1]],
        "?q=premium": referenced,
        "?q=%25": [],  # a LIKE wildcard typed in the box is a plain character
        "?from=2026-03-10": (early_on_tenth + plain + failed + refunded + billed + referenced)[::-1],
        "?to=2026-03-09": late_on_ninth,
        "?from=2026-03-10&to=2026-03-10&status=failed": failed[::-1],
    }
    for query, expected in cases.items():
        status, page = await admin.get(f"/merchant/purchases{query}")
        assert status == 200, query
        assert listed(page) == expected, query


async def test_pages_follow_the_cursor_both_ways(shop: Shop, admin: SiteBrowser) -> None:
    """120 purchases: 50, 50, 20 by the Older links (filters kept), and Newer leads back to the same rows."""
    ids = (await insert_charges(shop.merchant_id, 120, status="failed", billing_status=None))[::-1]
    status, first = await admin.get("/merchant/purchases?status=failed")
    assert listed(first) == ids[:50]
    links = pager_links(first)
    assert set(links) == {"next"}
    assert "status=failed" in links["next"]
    _, second = await admin.get(links["next"])
    assert listed(second) == ids[50:100]
    second_links = pager_links(second)
    _, third = await admin.get(second_links["next"])
    assert listed(third) == ids[100:]
    third_links = pager_links(third)
    assert set(third_links) == {"prev"}
    _, back = await admin.get(third_links["prev"])
    assert listed(back) == ids[50:100]
    _, back_again = await admin.get(pager_links(back)["prev"])
    assert listed(back_again) == ids[:50]
    assert status == 200


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=everything", "status"),
        ("from=2026-02-30", "from"),
        ("to=yesterday", "to"),
        ("from=20260301", "from"),
        ("q=" + "x" * 501, "q"),
    ],
)
async def test_a_bad_filter_is_named_with_a_400(shop: Shop, admin: SiteBrowser, query: str, field: str) -> None:
    """An unknown status or a malformed date re-renders the list naming the field, on the page and the CSV."""
    await insert_charges(shop.merchant_id, 1)
    for path in ("/merchant/purchases", "/merchant/purchases.csv"):
        status, page = await admin.get(f"{path}?{query}")
        assert status == 400, path
        assert f'id="{field}-error"' in page
        assert 'id="purchase-filters"' in page


async def test_a_cursor_that_is_not_in_the_list_is_a_400(rival: str, admin: SiteBrowser) -> None:
    """after= naming another merchant's charge (or nonsense) answers 400 naming it, not a page of theirs."""
    theirs = await insert_charges(rival, 1)
    for cursor in (theirs[0], "nonsense", "x" * 80):
        status, page = await admin.get(f"/merchant/purchases?after={cursor}")
        assert status == 400
        assert 'id="cursor-error"' in page


async def _billed_and_paid_out(shop: Shop, charge_id: str) -> tuple[Invoice, Payout]:
    """The charge on a closed month's bill, collected, and in a payout (rows as the close writes them)."""
    invoice = await Invoice.create(
        line_id=shop.line_id, period="2026-03", status="paid", total=6000, due_date=date(2026, 4, 30), created_at=NOON
    )
    await InvoiceItem.create(
        invoice=invoice,
        position=2,
        kind=ItemKind.CHARGE,
        charge_id=charge_id,
        merchant_id=shop.merchant_id,
        description="映画レンタル",
        amount=500,
        tax_rate="0.10",
        collected_amount=500,
        collection_status="collected",
    )
    payout = await Payout.create(
        merchant_id=shop.merchant_id,
        period="2026-03",
        billed=500,
        lines=1,
        fee=25,
        fee_rule="percent",
        collected=500,
        net=475,
        scheduled_date=date(2026, 5, 29),
        created_at=NOON,
    )
    await Charge.filter(id=charge_id).update(billing_status="collected", period="2026-03", payout_id=payout.id)
    return invoice, payout


async def test_the_purchase_page_shows_fields_timeline_bill_and_payout(shop: Shop, admin: SiteBrowser) -> None:
    """A collected, paid-out purchase shows every API field, its events in JST, its bill item and its payout."""
    subscription = await Subscription.create(
        merchant_id=shop.merchant_id, amount=500, description="月額", status="active", created_at=NOON
    )
    (charge_id,) = await insert_charges(
        shop.merchant_id, 1, merchant_reference="order-9", metadata={"plan": "gold"}, subscription_id=subscription.id
    )
    _, payout = await _billed_and_paid_out(shop, charge_id)
    charge = await Charge.get(id=charge_id)
    for kind, minutes in (("charge.succeeded", 0), ("charge.billed", 10)):
        await Event.create(
            merchant_id=shop.merchant_id,
            type=kind,
            object_id=charge_id,
            data={"object": charge.to_api()},
            created_at=NOON + timedelta(minutes=minutes),
        )
    status, page = await admin.get(f"/merchant/purchases/{charge_id}")
    assert status == 200
    for shown in (charge_id, "order-9", "gold", subscription.id, payout.id, "2026-03", "2026-05-29", "500円"):
        assert shown in page, shown
    timeline = page.split('id="purchase-timeline"')[1].split("</ol>")[0]
    assert re.findall(r'data-type="([a-z._]+)"', timeline) == ["charge.succeeded", "charge.billed"]
    assert "2026-03-10 12:10" in timeline
    invoice = page.split('id="purchase-invoice"')[1].split("</section>")[0]
    assert "badge paid" in invoice
    assert "badge collected" in invoice
    assert 'id="refund-form"' in page


async def test_an_admin_refunds_part_of_a_purchase(shop: Shop, admin: SiteBrowser) -> None:
    """The form refunds through the API's operation: 303 back, refund and charge.refunded on the page, audited."""
    (charge_id,) = await insert_charges(shop.merchant_id, 1, amount=1200)
    await admin.get(f"/merchant/purchases/{charge_id}")
    response = await admin.post(f"/merchant/purchases/{charge_id}/refund", {"amount": "300", "reason": "duplicate"})
    assert response.status == 303
    assert response.headers["Location"].startswith(f"/merchant/purchases/{charge_id}?refunded=re_")
    refund = await Refund.get(charge_id=charge_id)
    assert (refund.amount, refund.reason) == (300, "duplicate")
    assert (await Charge.get(id=charge_id)).refunded_amount == 300
    status, page = await admin.get(response.headers["Location"])
    assert status == 200
    assert 'id="refund-made"' in page
    assert refund.id in page
    assert 'data-type="charge.refunded"' in page
    assert 'name="amount" value="900"' in page
    entry = await AuditEntry.get(action="charge.refund", target_id=charge_id)
    assert entry.actor.startswith("muser:")
    assert entry.details["amount"] == 300


@pytest.mark.parametrize(
    ("form", "field", "code_text"),
    [
        ({"amount": "abc", "reason": ""}, "amount", "Enter a whole number of yen"),
        ({"amount": "0", "reason": ""}, "amount", "Enter a whole number of yen"),
        ({"amount": "-5", "reason": ""}, "amount", "Enter a whole number of yen"),
        ({"amount": "1.5", "reason": ""}, "amount", "Enter a whole number of yen"),
        ({"amount": "", "reason": ""}, "amount", "Enter a whole number of yen"),
        ({"amount": "1201", "reason": ""}, "amount", "more than what is left"),
        ({"amount": "9" * 5000, "reason": ""}, "amount", "Enter a whole number of yen"),  # past int()'s digit limit
        ({"amount": "100", "reason": "changed my mind"}, "reason", "not one of the choices"),
    ],
)
async def test_bad_refund_input_is_named_and_writes_nothing(
    shop: Shop, admin: SiteBrowser, form: dict[str, str], field: str, code_text: str
) -> None:
    """A non-integer, ≤0 or too large amount, or an unknown reason: 400 on the page naming it, no row written."""
    (charge_id,) = await insert_charges(shop.merchant_id, 1, amount=1200)
    await admin.get(f"/merchant/purchases/{charge_id}?lang=en")
    before = await row_counts()
    response = await admin.post(f"/merchant/purchases/{charge_id}/refund", form)
    assert response.status == 400
    assert f'id="{field}-error"' in response.body_text
    assert code_text in response.body_text
    assert await row_counts() == before


async def test_a_purchase_that_did_not_succeed_cannot_be_refunded(shop: Shop, admin: SiteBrowser) -> None:
    """A failed purchase shows no form; posting anyway answers 409 naming why, and nothing is written."""
    (charge_id,) = await insert_charges(shop.merchant_id, 1, status="failed", billing_status=None)
    status, page = await admin.get(f"/merchant/purchases/{charge_id}")
    assert 'id="refund-form"' not in page
    before = await row_counts()
    response = await admin.post(f"/merchant/purchases/{charge_id}/refund", {"amount": "100", "reason": ""})
    assert (status, response.status) == (200, 409)
    assert 'id="charge-error"' in response.body_text
    assert await row_counts() == before


@pytest.mark.parametrize("role", ["viewer", "developer"])
async def test_only_an_admin_may_refund(ops: OpsClient, client: Any, shop: Shop, role: str) -> None:
    """A viewer or developer sees the purchase without the form; their POST answers 403 and changes nothing."""
    (charge_id,) = await insert_charges(shop.merchant_id, 1, amount=1200)
    browser = await signed_in(ops, client, shop.merchant_id, role=role)
    status, page = await browser.get(f"/merchant/purchases/{charge_id}")
    assert status == 200
    assert 'id="refund-form"' not in page
    before = await row_counts()
    response = await browser.post(f"/merchant/purchases/{charge_id}/refund", {"amount": "100", "reason": ""})
    assert response.status == 403
    assert await row_counts() == before


async def test_another_merchants_purchase_is_404(rival: str, admin: SiteBrowser) -> None:
    """Another merchant's charge id answers 404 to the page and the refund form, and is not refunded."""
    (theirs,) = await insert_charges(rival, 1, amount=1200)
    status, _ = await admin.get(f"/merchant/purchases/{theirs}")
    assert status == 404
    await admin.get("/merchant/purchases")
    for form in ({"amount": "100", "reason": ""}, {"amount": "abc", "reason": ""}):
        response = await admin.post(f"/merchant/purchases/{theirs}/refund", form)
        assert response.status == 404
    assert (await Charge.get(id=theirs)).refunded_amount == 0
    assert (await admin.get("/merchant/purchases/ch_missing"))[0] == 404


def _csv_rows(body: bytes) -> list[dict[str, str]]:
    assert body.startswith(codecs.BOM_UTF8)
    return list(csv.DictReader(io.StringIO(body[len(codecs.BOM_UTF8) :].decode("utf-8"))))


async def test_the_csv_has_the_fixed_columns_and_is_safe_in_a_spreadsheet(
    client: Any, shop: Shop, admin: SiteBrowser
) -> None:
    """UTF-8 with BOM, the ten columns in order, a filename, JST ISO times, and formulas defused with '."""
    await insert_charges(shop.merchant_id, 1, description='=HYPERLINK("http://evil")', merchant_reference="@SUM(1)")
    await insert_charges(shop.merchant_id, 1, start=NOON + timedelta(hours=1), description='普通の説明, "quoted"')
    response = await client.get("/merchant/purchases.csv")
    assert response.status == 200
    assert response.headers["Content-Type"].startswith("text/csv")
    assert re.match(r'attachment; filename="purchases-\d{8}-\d{4}\.csv"', response.headers["Content-Disposition"])
    body = await response.read()
    header = body[len(codecs.BOM_UTF8) :].split(b"\r\n")[0].decode()
    assert header == (
        "id,created,status,billing_status,amount,refunded_amount,description,merchant_reference,subscription,payout_id"
    )
    newest, oldest = _csv_rows(body)
    assert newest["description"] == '普通の説明, "quoted"'
    assert oldest["description"] == '\'=HYPERLINK("http://evil")'
    assert oldest["merchant_reference"] == "'@SUM(1)"
    assert oldest["created"] == "2026-03-10T12:00:00+09:00"


async def _api_list(client: Any, shop: Shop, query: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = ""
    while True:
        response = await client.get(f"/v1/charges?limit=100&{query}{cursor}", headers=shop.auth)
        page = await response.json()
        found.extend(page["data"])
        if not page["has_more"]:
            return found
        cursor = f"&starting_after={page['data'][-1]['id']}"


async def test_the_csv_rows_equal_the_api_list_for_the_same_filter(
    client: Any, shop: Shop, rival: str, admin: SiteBrowser
) -> None:
    """For status=failed over 300 mixed purchases, the CSV rows are GET /v1/charges?status=failed, field by field."""
    subscription = await Subscription.create(
        merchant_id=shop.merchant_id, amount=800, description="月額", status="active", created_at=NOON
    )
    await insert_charges(shop.merchant_id, 150, step=timedelta(seconds=7))
    failed_kinds = (
        (90, 3, 11, {"merchant_reference": "ref-1", "failure_code": "expired", "status": "failed"}),
        (60, 5, 13, {"subscription_id": subscription.id, "amount": 800, "status": "failed"}),
    )
    for count, offset, seconds, extra in failed_kinds:
        start, step = NOON + timedelta(seconds=offset), timedelta(seconds=seconds)
        await insert_charges(shop.merchant_id, count, start=start, step=step, billing_status=None, **extra)
    await insert_charges(rival, 20, status="failed", billing_status=None)
    rows = _csv_rows(await (await client.get("/merchant/purchases.csv?status=failed")).read())
    listed_by_api = await _api_list(client, shop, "status=failed")
    assert len(rows) == len(listed_by_api) == 150
    for row, charge in zip(rows, listed_by_api, strict=True):
        assert datetime.fromisoformat(row["created"]).astimezone(UTC).timestamp() == charge["created"]
        assert datetime.fromisoformat(row["created"]).utcoffset() == timedelta(hours=9)
        for column in set(CSV_COLUMNS) - {"created"}:
            assert row[column] == ("" if charge[column] is None else str(charge[column])), column


@dataclass
class QueryLog:
    """Every statement the application ran (its SQL and how many rows came back)."""

    statements: list[tuple[str, int]] = field(default_factory=list)

    def reads_of(self, table: str) -> list[int]:
        """The rows each SELECT from ``table`` fetched, in order."""
        reads = [(sql, rows) for sql, rows in self.statements if sql.lstrip().upper().startswith("SELECT")]
        return [rows for sql, rows in reads if f'FROM "{table}"' in sql]

    def unbounded(self) -> list[str]:
        """Statements that skip rows by OFFSET or count them: the costs paging must not have."""
        return [sql for sql, _ in self.statements if UNBOUNDED.search(sql)]


@pytest.fixture
def query_log(client: Any, monkeypatch: pytest.MonkeyPatch) -> QueryLog:
    """Log what the database client executes: the real client, its two read methods wrapped."""
    log = QueryLog()
    kind = type(connections.get("default"))
    for name in ("execute_query", "execute_query_dict"):
        original = getattr(kind, name)

        def logged(original: Any = original, name: str = name) -> Any:
            async def execute(self: Any, query: str, values: list[Any] | None = None) -> Any:
                result = await original(self, query, values)
                log.statements.append((query, len(result[1] if name == "execute_query" else result)))
                return result

            return execute

        monkeypatch.setattr(kind, name, logged())
    return log


async def test_pages_and_the_csv_stay_bounded_at_100000_purchases(
    client: Any, shop: Shop, admin: SiteBrowser, query_log: QueryLog
) -> None:
    """With 100,000 purchases, page 1 and a page 25,000 rows back each read at most 51 rows in one page
    query, and the CSV of them all reads 1,000-row chunks while the process's memory stays flat."""
    newest_first = (await insert_charges(shop.merchant_id, 100_000, step=timedelta(seconds=1), batch=10_000))[::-1]

    query_log.statements.clear()
    status, page = await admin.get("/merchant/purchases")
    assert (status, listed(page)) == (200, newest_first[:50])
    assert query_log.reads_of("charges") == [51]
    assert len(query_log.statements) <= 8, query_log.statements  # the session, user, merchant, the page
    assert query_log.unbounded() == []

    query_log.statements.clear()
    status, page = await admin.get(f"/merchant/purchases?after={newest_first[24_999]}")
    assert (status, listed(page)) == (200, newest_first[25_000:25_050])
    assert query_log.reads_of("charges") == [1, 51]  # the cursor row, then the page
    assert len(query_log.statements) <= 9, query_log.statements
    assert query_log.unbounded() == []

    # Memory is traced from the request to the 30,000th row received (tracing all of it is slow):
    # an export that gathered its rows before sending would show them all here, one that kept
    # its chunks would grow by 30 of them; streamed, it holds one chunk at a time.
    query_log.statements.clear()
    tracemalloc.start()
    try:
        baseline = tracemalloc.get_traced_memory()[0]
        response = await client.get("/merchant/purchases.csv")
        lines = 0
        async for chunk in response.content.iter_chunked(1 << 16):
            lines += chunk.count(b"\r\n")
            if lines > 30_000 and tracemalloc.is_tracing():
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
    finally:
        tracemalloc.stop()
    assert (response.status, lines) == (200, 100_001)
    reads = query_log.reads_of("charges")
    assert reads == [1000] * 100 + [0], reads[-3:]
    assert peak - baseline < 5_000_000, f"{(peak - baseline) / 1e6:.1f} MB"
