"""``/merchant/payouts``: the merchant's payouts (精算) newest first, one payout's figures and
statement lines (product.md §7, §11), and the statement as CSV for a spreadsheet.

Payouts are paged by ``keyset_page`` (newest created first, which is newest period first: a
merchant's periods are paid out oldest first, each carrying the balance of the one before).
A statement can have a line per collected item, so its lines are read by id a page at a time,
and the CSV is streamed in chunks: constant memory however long the statement.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web

from api.merchant_site.access import Permission, require
from api.merchant_site.pager import page_links
from api.paging import keyset_page
from api.site.pages import render
from billing.errors import InvalidRequest
from models.operations.charges import find_owned
from models.payouts import Payout, PayoutLine, PayoutStatus

__all__ = ["CSV_COLUMNS", "routes", "spreadsheet_text"]

routes = web.RouteTableDef()
PAGE_SIZE = 20
LINES_PER_PAGE = 100
CSV_CHUNK = 500
CSV_COLUMNS = ("payout_id", "period", "kind", "charge", "invoice_item", "description", "amount")
BOM = "\ufeff"  # spreadsheet programs read the file as UTF-8 (Japanese text) only with it
PAYOUT_ID = "{id:[A-Za-z0-9_]+}"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
LINE_FIELDS = ("id", "kind", "item_id", "item__charge_id", "description", "amount")


@routes.get("/merchant/payouts")
async def list_payouts(request: web.Request) -> web.StreamResponse:
    """This merchant's payouts, newest first, optionally of one status."""
    staff = require(request, Permission.READ)
    status = request.query.get("status", "")
    statuses = [s.value for s in PayoutStatus]
    page: dict[str, Any] = {"status": status, "statuses": statuses, "payouts": [], "errors": {}}
    page.update(previous_url=None, next_url=None)  # a refused filter shows no pager
    if status and status not in statuses:
        page["errors"] = {"status": "invalid_value"}
        return await render(request, "merchant/payouts.html", page, status=400)
    query = Payout.filter(merchant_id=staff.merchant.id)
    if status:
        query = query.filter(status=status)
    found = await keyset_page(
        query, after=request.query.get("after"), before=request.query.get("before"), limit=PAGE_SIZE
    )
    page.update(payouts=found.rows, **page_links(request, found, status=status))
    return await render(request, "merchant/payouts.html", page)


async def _owned_payout(request: web.Request) -> Payout:
    staff = require(request, Permission.READ)
    return await find_owned(Payout, request.match_info["id"], merchant_id=staff.merchant.id, kind="payout")


async def _lines_after(payout: Payout, after: int, limit: int) -> list[dict[str, Any]]:
    """Up to ``limit`` statement lines of ``payout`` after line id ``after``, in order, each
    with the charge of its invoice item (None for the fee and other lines without one)."""
    rows: list[dict[str, Any]] = (
        await PayoutLine.filter(payout_id=payout.id, id__gt=after).order_by("id").limit(limit).values(*LINE_FIELDS)
    )
    return rows


@routes.get(f"/merchant/payouts/{PAYOUT_ID}.csv")
async def statement_csv(request: web.Request) -> web.StreamResponse:
    """The payout's statement lines as CSV (UTF-8 with BOM), one row per line, streamed."""
    payout = await _owned_payout(request)
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="matomete-payout-{payout.period}-{payout.id}.csv"',
        }
    )
    await response.prepare(request)
    await response.write(_csv_text([CSV_COLUMNS], bom=True))
    after = 0
    while True:
        lines = await _lines_after(payout, after, CSV_CHUNK)
        if not lines:
            break
        rows = [
            (
                payout.id,
                payout.period,
                line["kind"],
                line["item__charge_id"] or "",
                line["item_id"] or "",
                spreadsheet_text(line["description"]),
                line["amount"],
            )
            for line in lines
        ]
        await response.write(_csv_text(rows))
        after = int(lines[-1]["id"])
    await response.write_eof()
    return response


def spreadsheet_text(text: str) -> str:
    """``text`` as a spreadsheet shows it, never run: a cell starting like a formula gets a
    leading apostrophe (descriptions are the merchant's free text)."""
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_text(rows: list[tuple[Any, ...]], *, bom: bool = False) -> bytes:
    buffer = io.StringIO()
    if bom:
        buffer.write(BOM)
    csv.writer(buffer, lineterminator="\r\n").writerows(rows)
    return buffer.getvalue().encode("utf-8")


@routes.get(f"/merchant/payouts/{PAYOUT_ID}")
async def show_payout(request: web.Request) -> web.StreamResponse:
    """One payout's figures and a page of its statement lines (all of them in the CSV)."""
    payout = await _owned_payout(request)
    raw_after = request.query.get("after_line", "0")
    # ASCII digits that fit a BIGINT: anything else is no line's number (and never reaches int()).
    if not (raw_after.isascii() and raw_after.isdigit() and len(raw_after) <= 18):
        raise InvalidRequest("after_line must be a statement line's number.", param="after_line")
    lines = await _lines_after(payout, int(raw_after), LINES_PER_PAGE + 1)
    more = len(lines) > LINES_PER_PAGE
    lines = lines[:LINES_PER_PAGE]
    page = {
        "payout": payout,
        "lines": lines,
        "first_lines_url": f"/merchant/payouts/{payout.id}" if int(raw_after) else None,
        "more_lines_url": f"/merchant/payouts/{payout.id}?after_line={lines[-1]['id']}" if more else None,
    }
    return await render(request, "merchant/payout.html", page)
