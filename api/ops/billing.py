"""Month close and line invoices, as billing staff drive them (product.md §5, §11)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from aiohttp import web
from pydantic import BaseModel, Field

from api.http import Body, json_response
from api.merchant.lists import list_query, page
from api.ops.table import operator, ops_routes
from api.routes import PERIOD_PATTERN
from billing.errors import InvalidRequest, NotFound
from billing.periods import valid_period
from models.invoices import BillingRun, Invoice, InvoiceItem, InvoiceTax
from models.lines import LINE_ID_PATTERN
from models.operations.closing import start_close
from models.operations.collections import debit_reference

__all__ = ["invoice_view", "run_view"]


class CloseRequest(Body):
    """Which month to close."""

    period: Annotated[str, Field(pattern=f"^{PERIOD_PATTERN}$", examples=["2026-11"])]


class RunOut(BaseModel):
    """A billing run and its progress."""

    id: str
    period: str
    status: str
    batches_total: int
    batches_done: int
    lines: int
    invoices: int
    total_billed: int
    started_at: datetime
    finished_at: datetime | None


def run_view(run: BillingRun) -> dict[str, Any]:
    """The billing run object."""
    return {
        "id": run.id,
        "period": run.period,
        "status": run.status,
        "batches_total": run.batches_total,
        "batches_done": run.batches_done,
        "lines": run.lines,
        "invoices": run.invoices,
        "total_billed": run.total_billed,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
    }


async def invoice_view(invoice: Invoice) -> dict[str, Any]:
    """The invoice object with its items and its tax lines."""
    items = await InvoiceItem.filter(invoice_id=invoice.id).order_by("position")
    taxes = await InvoiceTax.filter(invoice_id=invoice.id).order_by("-rate")
    return {
        "id": invoice.id,
        "object": "invoice",
        "line_id": invoice.line_id,
        "period": invoice.period,
        "status": invoice.status.value,
        "total": invoice.total,
        "amount_paid": invoice.amount_paid,
        "due_date": invoice.due_date,
        "debit_reference": debit_reference(invoice.line_id, invoice.period),
        "items": [
            {
                "kind": item.kind.value,
                "charge_id": item.charge_id,
                "refund_id": item.refund_id,
                "merchant_id": item.merchant_id,
                "description": item.description,
                "amount": item.amount,
            }
            for item in items
        ],
        "taxes": [{"rate": str(tax.rate), "taxable_total": tax.taxable_total, "tax": tax.tax} for tax in taxes],
        "created": int(invoice.created_at.timestamp()),
    }


@ops_routes.route(
    "POST",
    "/billing/close",
    summary="Close a month",
    body=CloseRequest,
    response=RunOut,
    status=202,
    errors=(400, 401, 409),
)
async def close_month(request: web.Request, body: CloseRequest) -> web.Response:
    """Start merging the period's charges into line invoices; refused before the period ends."""
    run = await start_close(body.period, actor=operator(request))
    return json_response(run_view(run), status=202)


@ops_routes.route("GET", "/billing/runs/{id}", summary="A billing run's progress", response=RunOut)
async def get_run(request: web.Request) -> web.Response:
    """Batches done of total, lines, invoices and the total billed so far."""
    run = await BillingRun.get_or_none(id=request.match_info["id"])
    if run is None:
        raise NotFound("No such billing run.", param="id")
    return json_response(run_view(run))


@ops_routes.route(
    "GET",
    "/invoices",
    summary="List invoices (line_id, period filters)",
    query=list_query(
        line_id={"type": "string", "pattern": LINE_ID_PATTERN.pattern},
        period={"type": "string", "pattern": f"^{PERIOD_PATTERN}$"},
    ),
    errors=(400, 401, 404, 422),
)
async def list_invoices(request: web.Request) -> web.Response:
    """Invoices, newest first, of one line and/or one period."""
    query: Any = Invoice.all()
    if "line_id" in request.query:
        if not LINE_ID_PATTERN.fullmatch(request.query["line_id"]):
            raise InvalidRequest("line_id must be CAF or COP and 10 digits.", param="line_id")
        query = query.filter(line_id=request.query["line_id"])
    if "period" in request.query:
        if not valid_period(request.query["period"]):
            raise InvalidRequest("period must be YYYY-MM.", param="period")
        query = query.filter(period=request.query["period"])
    listing = await page(request.query, query, view=lambda invoice: invoice, filters=("line_id", "period"))
    listing["data"] = [await invoice_view(invoice) for invoice in listing["data"]]
    return json_response(listing)


@ops_routes.route("GET", "/invoices/{id}", summary="Retrieve an invoice")
async def get_invoice(request: web.Request) -> web.Response:
    """One invoice with items and taxes."""
    invoice = await Invoice.get_or_none(id=request.match_info["id"])
    if invoice is None:
        raise NotFound("No such invoice.", param="id")
    return json_response(await invoice_view(invoice))
