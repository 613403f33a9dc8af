"""``/merchant/purchases``: the merchant's charges, filtered and paged by cursor; one charge with
its timeline, refunds, invoice state and payout, and the admin's refund form; and the same list
as a streamed CSV of any size (product.md §10).

Every query is scoped to the signed-in merchant and read by index, newest first: a page is one
keyset query (``api.paging``), the CSV walks the list in bounded chunks. The refund is the API's
own operation (``models.operations.charges.refund_charge``).
"""

from __future__ import annotations

import codecs
import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from urllib.parse import urlencode

from aiohttp import web
from tortoise.expressions import Q
from tortoise.queryset import QuerySet

from api.merchant_site.access import Permission, acting, require
from api.merchant_site.pager import page_links
from api.paging import keyset_page, keyset_walk
from api.site.formatting import JST
from api.site.pages import render, see_other
from billing.errors import Conflict, InvalidRequest
from billing.states import BillingStatus, ChargeStatus
from models.base import fits_id_column
from models.charges import CHARGE_API_FIELDS, Charge, Refund
from models.clock import clock
from models.events import Event
from models.invoices import InvoiceItem
from models.operations import charges
from models.operations.charges import find_owned
from models.payouts import Payout

__all__ = ["CSV_COLUMNS", "REFUND_REASONS", "PurchaseFilters", "csv_cell", "routes"]

routes = web.RouteTableDef()
PAGE_SIZE = 50
CSV_CHUNK = 1000
SHOWN_PER_CHARGE = 200  # events and refunds of one charge: a handful in practice, capped anyway
CHARGE_STATUSES = (ChargeStatus.SUCCEEDED, ChargeStatus.FAILED, ChargeStatus.CANCELED)
BILLING_STATUSES = (BillingStatus.BILLED, BillingStatus.COLLECTED, BillingStatus.UNCOLLECTIBLE)
STATUS_CHOICES = (*(s.value for s in CHARGE_STATUSES), "refunded", *(s.value for s in BILLING_STATUSES))
# The API takes any reason text (1-500 characters); the site offers these codes (Stripe's), and
# "" for none. The template gives each its words; a reason written through the API shows as is.
REFUND_REASONS = ("", "requested_by_customer", "duplicate", "fraudulent")
CSV_COLUMNS = (
    "id",
    "created",
    "status",
    "billing_status",
    "amount",
    "refunded_amount",
    "description",
    "merchant_reference",
    "subscription",
    "payout_id",
)
# Each column is the API's charge field of that name: read the same model attribute it reads.
CSV_FIELDS = tuple(next(f.attribute for f in CHARGE_API_FIELDS if f.name == column) or "" for column in CSV_COLUMNS)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
MAX_Q = 500


@dataclass
class PurchaseFilters:
    """The list's filters as typed (``form``, shown back in the form) and the problems found."""

    form: dict[str, str]
    errors: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, query: Mapping[str, str]) -> PurchaseFilters:
        """Read ``status``, ``q``, ``from``, ``to``; a problem is named by field and code."""
        form = {name: query.get(name, "").strip() for name in ("status", "q", "from", "to")}
        found = cls(form)
        if form["status"] and form["status"] not in STATUS_CHOICES:
            found.errors["status"] = "invalid_value"
        if len(form["q"]) > MAX_Q:
            found.errors["q"] = "parameter_invalid"
        for name in ("from", "to"):
            if form[name] and _day(form[name]) is None:
                found.errors[name] = "invalid_date"
        return found

    def apply(self, base: QuerySet[Charge]) -> QuerySet[Charge]:
        """``base`` narrowed to the filters (call only when there are no errors)."""
        status, text = self.form["status"], self.form["q"]
        if status in ("succeeded", "failed", "canceled"):
            base = base.filter(status=status)
        elif status == "refunded":
            base = base.filter(refunded_amount__gt=0)
        elif status:
            base = base.filter(billing_status=status)
        if text:
            found = Q(description__icontains=text)
            if fits_id_column(text):
                found |= Q(id=text)
            found |= Q(merchant_reference=text)
            base = base.filter(found)
        first, last = _day(self.form["from"]), _day(self.form["to"])
        # Bounds in UTC, as the rows are stored: SQLite compares the stored text, so a JST-offset
        # bound would sort wrongly against UTC values.
        if first is not None:
            base = base.filter(created_at__gte=datetime.combine(first, time(), JST).astimezone(UTC))
        if last is not None:
            base = base.filter(created_at__lt=datetime.combine(last + timedelta(days=1), time(), JST).astimezone(UTC))
        return base

    def query_string(self, **extra: str) -> str:
        """The filters that are set, and ``extra``, as a query string for links."""
        return urlencode({**{name: value for name, value in self.form.items() if value}, **extra})


def _day(text: str) -> date | None:
    """A ``YYYY-MM-DD`` day, or None when it is not one."""
    if len(text) != len("2026-01-01"):
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        return None


def _charges_of(merchant_id: str) -> QuerySet[Charge]:
    return Charge.filter(merchant_id=merchant_id)


@routes.get("/merchant/purchases")
async def purchases(request: web.Request) -> web.StreamResponse:
    """The merchant's purchases, newest first, 50 a page, filtered."""
    staff = require(request, Permission.READ)
    filters = PurchaseFilters.parse(request.query)
    page: dict[str, Any] = {"filters": filters, "errors": filters.errors, "statuses": STATUS_CHOICES, "rows": []}
    page.update(newer_url=None, older_url=None, csv_url=f"/merchant/purchases.csv?{filters.query_string()}")
    if filters.errors:
        return await render(request, "merchant/purchases.html", page, status=400)
    after, before = request.query.get("after") or None, request.query.get("before") or None
    try:
        found = await keyset_page(
            filters.apply(_charges_of(staff.merchant.id)), after=after, before=before, limit=PAGE_SIZE
        )
    except InvalidRequest:
        page["errors"] = {"cursor": "parameter_invalid"}
        return await render(request, "merchant/purchases.html", page, status=400)
    links = page_links(request, found, **{name: value for name, value in filters.form.items() if value})
    page.update(rows=found.rows, newer_url=links["previous_url"], older_url=links["next_url"])
    return await render(request, "merchant/purchases.html", page)


def csv_cell(value: Any) -> str:
    """A value as a CSV cell; text a spreadsheet would run as a formula gets a leading ``'``."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(JST).isoformat()
    if hasattr(value, "value"):  # a status enum
        value = value.value
    text = str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


def _csv_lines(rows: Iterable[Mapping[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows([csv_cell(row[name]) for name in CSV_FIELDS] for row in rows)
    return buffer.getvalue().encode()


@routes.get("/merchant/purchases.csv")
async def purchases_csv(request: web.Request) -> web.StreamResponse:
    """Every purchase the filters select, as CSV (UTF-8 with BOM), streamed chunk by chunk."""
    staff = require(request, Permission.READ)
    filters = PurchaseFilters.parse(request.query)
    if filters.errors:
        return await purchases(request)
    stamp = (await clock.now()).astimezone(JST).strftime("%Y%m%d-%H%M")
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="purchases-{stamp}.csv"',
        }
    )
    await response.prepare(request)
    await response.write(codecs.BOM_UTF8 + _csv_lines([dict(zip(CSV_FIELDS, CSV_COLUMNS, strict=True))]))
    async for rows in keyset_walk(filters.apply(_charges_of(staff.merchant.id)), fields=CSV_FIELDS, chunk=CSV_CHUNK):
        await response.write(_csv_lines(rows))
    await response.write_eof()
    return response


async def _detail(request: web.Request, charge_id: str, *, status: int = 200, **context: Any) -> web.Response:
    """The charge page: fields, timeline, refunds, invoice state, payout; ``context`` adds the
    refund form's values and problems."""
    staff = require(request, Permission.READ)
    charge = await find_owned(Charge, charge_id, merchant_id=staff.merchant.id, kind="charge")
    refunds = await Refund.filter(charge_id=charge.id).order_by("created_at", "id").limit(SHOWN_PER_CHARGE)
    events = (
        await Event.filter(merchant_id=staff.merchant.id, object_id=charge.id)
        .order_by("created_at", "id")
        .limit(SHOWN_PER_CHARGE)
    )
    # The charge's own item on the line's bill, and a credit item per refund made after billing.
    items = (
        await InvoiceItem.filter(Q(charge_id=charge.id) | Q(refund_id__in=[refund.id for refund in refunds]))
        .select_related("invoice")
        .order_by("id")
    )
    payout = await Payout.get_or_none(id=charge.payout_id, merchant_id=staff.merchant.id) if charge.payout_id else None
    remaining = charge.amount - charge.refunded_amount
    page = {
        "charge": charge,
        "fields": charge.to_api(),
        "refunds": refunds,
        "events": events,
        "items": items,
        "payout": payout,
        "remaining": remaining,
        "refundable": charge.status == ChargeStatus.SUCCEEDED and remaining > 0,
        "reasons": REFUND_REASONS,
        "form": {"amount": str(remaining), "reason": REFUND_REASONS[1]},
        "errors": {},
        "refunded": request.query.get("refunded"),
        **context,
    }
    return await render(request, "merchant/purchase.html", page, status=status)


@routes.get("/merchant/purchases/{charge_id}")
async def purchase(request: web.Request) -> web.StreamResponse:
    """One purchase and everything that happened to it."""
    return await _detail(request, request.match_info["charge_id"])


@routes.post("/merchant/purchases/{charge_id}/refund")
async def refund(request: web.Request) -> web.StreamResponse:
    """Refund all or part of the purchase (admin); bad input re-renders the page, nothing written."""
    staff = require(request, Permission.REFUND)
    charge_id = request.match_info["charge_id"]
    form = await request.post()
    values = {name: str(form.get(name, "")).strip() for name in ("amount", "reason")}
    errors = {}
    amount = values["amount"]
    # At most 9 digits: more is no purchase's amount (and thousands would be too long to read as int).
    if not (amount.isascii() and amount.isdigit() and len(amount) <= 9 and int(amount) > 0):
        errors["amount"] = "invalid_amount"
    if values["reason"] not in REFUND_REASONS:
        errors["reason"] = "invalid_value"
    if errors:
        # The page looks the charge up first, so another merchant's id is a 404 whatever was typed.
        return await _detail(request, charge_id, status=400, form=values, errors=errors)
    try:
        made = await charges.refund_charge(
            staff.merchant.id,
            charge_id,
            amount=int(values["amount"]),
            reason=values["reason"] or None,
            actor=acting(request),
        )
    except (InvalidRequest, Conflict) as problem:
        field_name = "amount" if problem.param == "amount" else "charge"
        return await _detail(request, charge_id, status=problem.status, form=values, errors={field_name: problem.code})
    return see_other(f"/merchant/purchases/{charge_id}?refunded={made.id}")
