"""The console's collections page: billing staff upload a Zengin 口座振替 result file and see what
it did, all or nothing; a malformed file is named and applies nothing (product.md §6, §10)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp
import pytest
from sites_support import SiteBrowser, ops_signed_in

from conftest import OpsClient, row_counts
from models.audit_log import AuditEntry
from models.clock import clock
from models.invoices import Collection, Invoice
from settings import Settings
from tests_support import buy, close, invoice_of, open_shop


def debit_result_file(rows: list[tuple[str, int, int]]) -> bytes:
    """A 口座振替 result file (cp932, CRLF) with one record per (顧客番号, amount, result code)."""

    def n(value: int, width: int) -> str:
        return str(value).rjust(width, "0")

    def c(text: str, width: int) -> str:
        return text.ljust(width)

    header = "1910" + n(1234567890, 10) + c("ﾏﾄﾒﾃ", 40) + "01270001" + c("ﾐｽﾞﾎ", 15) + "001"
    header += c("ﾄｳｷﾖｳ", 15) + "1" + "1234567" + c("", 17)
    data = [
        "20005" + c("ﾐﾂﾋﾞｼ", 15) + "001" + c("ﾎﾝﾃﾝ", 15) + c("", 4) + "1" + "7654321" + c("ﾔﾏﾀﾞ ﾀﾛｳ", 30)
        + n(amount, 10) + "0" + c(reference, 20) + str(code) + c("", 8)
        for reference, amount, code in rows
    ]  # fmt: skip
    debited = [amount for _, amount, code in rows if code == 0]
    failed = [amount for _, amount, code in rows if code != 0]
    trailer = "8" + n(len(rows), 6) + n(sum(debited) + sum(failed), 12) + n(len(debited), 6) + n(sum(debited), 12)
    trailer += n(len(failed), 6) + n(sum(failed), 12) + c("", 65)
    records = [header, *data, trailer, "9" + c("", 119)]
    assert all(len(record.encode("cp932")) == 120 for record in records)
    return b"".join(record.encode("cp932") + b"\r\n" for record in records)


async def upload(browser: SiteBrowser, data: bytes | None, *, reason: str = "bank result", lang: str = "en") -> Any:
    """Post the import form as a browser does: multipart, the file, the reason and the CSRF token."""
    form = aiohttp.FormData()
    form.add_field("csrf_token", browser.token)
    form.add_field("reason", reason)
    if data is not None:
        form.add_field("file", data, filename="result.txt", content_type="application/octet-stream")
    response = await browser.client.post(f"/ops/collections?lang={lang}", data=form, allow_redirects=False)
    response.body_text = await response.text()
    return response


@pytest.fixture
async def billed(client: Any, ops: OpsClient, settings: Settings, worker: Any) -> dict[str, Any]:
    """Two lines with a November 2030 purchase each, closed on 1 December: their bills."""
    await clock.move_to(datetime.fromisoformat("2030-11-10T10:00:00+09:00"))
    shop = await open_shop(ops)
    await buy(client, settings, shop, amount=1000)
    other = await open_shop(ops, line_id="CAF0000002001", login_id="hanako")  # 127.0.0.1 moves to this line
    await buy(client, settings, other, amount=300)
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    return {
        "paid": await invoice_of(ops, shop.line_id, "2030-11"),
        "unpaid": await invoice_of(ops, other.line_id, "2030-11"),
    }


async def test_billing_staff_import_a_result_file_and_see_what_it_did(client: Any, billed: dict[str, Any]) -> None:
    """Code 0 pays its bill, code 1 leaves the other open; the page counts both; importing it again
    pays nothing twice. Each import writes one audit row with the reason."""
    paid, unpaid = billed["paid"], billed["unpaid"]
    file = debit_result_file(
        [(paid["debit_reference"], paid["total"], 0), (unpaid["debit_reference"], unpaid["total"], 1)]
    )
    browser = await ops_signed_in(client, role="billing")
    status, page = await browser.get("/ops/collections")
    assert status == 200
    assert 'enctype="multipart/form-data"' in page
    response = await upload(browser, file, reason="December debit results")
    assert response.status == 200, response.body_text
    page = response.body_text
    assert '<dd id="summary-records">2</dd>' in page
    assert '<dd id="summary-debited">1</dd>' in page
    assert '<dd id="summary-not-debited">1</dd>' in page
    assert (await Invoice.get(id=paid["id"])).status == "paid"
    assert (await Invoice.get(id=unpaid["id"])).status == "open"
    (collection,) = await Collection.filter(source="zengin")
    assert f'id="collection-{collection.id}"' in page
    response = await upload(browser, file, reason="sent twice by the bank")
    assert response.status == 200
    assert '<dd id="summary-already">1</dd>' in response.body_text
    assert await Collection.filter(source="zengin").count() == 1
    entries = await AuditEntry.filter(action="collections.import").order_by("id")
    assert [(entry.details["debited"], entry.details["reason"]) for entry in entries] == [
        (1, "December debit results"),
        (0, "sent twice by the bank"),
    ]
    assert all(entry.actor.startswith("staff:") for entry in entries)
    assert entries[0].target_type == "debit_result_file"


async def test_a_malformed_file_is_named_and_applies_nothing(client: Any, billed: dict[str, Any]) -> None:
    """A broken trailer, a bill that does not exist, no file, no reason: 400 pages naming the problem,
    no collection, no audit row, the bills as they were."""
    paid = billed["paid"]
    good = debit_result_file([(paid["debit_reference"], paid["total"], 0)])
    tampered = good.replace(
        str(paid["total"]).rjust(10, "0").encode(), str(paid["total"] + 1).rjust(10, "0").encode(), 1
    )
    unknown = debit_result_file([(paid["debit_reference"], paid["total"], 0), ("CAF9999999999203011", 500, 0)])
    browser = await ops_signed_in(client, role="admin")
    await browser.get("/ops/collections")
    before = await row_counts()
    for data, words in (
        (tampered, "not a valid Zengin direct debit result file"),
        (b"not a zengin file at all", "not a valid Zengin direct debit result file"),
        (unknown, "names a bill that does not exist"),
        (None, "Choose a result file"),
    ):
        response = await upload(browser, data)
        assert response.status == 400, words
        assert 'id="file-error"' in response.body_text
        assert words in response.body_text
        assert "Nothing was applied." in response.body_text
    assert "Record 3" in (await upload(browser, tampered)).body_text  # the trailer is the third record
    response = await upload(browser, good, reason="")
    assert response.status == 400
    assert 'id="reason-error"' in response.body_text
    assert await row_counts() == before
    assert (await Invoice.get(id=paid["id"])).status == "open"


async def test_support_staff_cannot_import_a_result_file(client: Any, billed: dict[str, Any]) -> None:
    """No upload form for support; a forged upload answers 403 and pays nothing."""
    paid = billed["paid"]
    browser = await ops_signed_in(client, role="support")
    status, page = await browser.get("/ops/collections")
    assert status == 200
    assert 'id="import-form"' not in page
    before = await row_counts()
    response = await upload(browser, debit_result_file([(paid["debit_reference"], paid["total"], 0)]))
    assert response.status == 403
    assert await row_counts() == before
