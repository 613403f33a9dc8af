"""What the carrier collected on line invoices (product.md §6, §11): ``POST /collections``."""

from __future__ import annotations

from typing import Annotated, Any

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, Field

from api.http import Body, json_response
from api.ops.table import ops_routes
from api.routes import ID_SHAPE
from models.invoices import Collection
from models.operations import collections as payments

__all__: list[str] = []


class CollectionRow(Body):
    """One payment on one invoice; ``reference`` (optional) makes a resent row count once."""

    invoice_id: Annotated[str, Field(pattern=f"^{ID_SHAPE}$")]
    amount: Annotated[int, Field(ge=1, le=100_000_000)]
    paid_at: AwareDatetime
    reference: Annotated[str, Field(min_length=1, max_length=128)] | None = None


class CollectionsIn(Body):
    """Payments to record, all or none."""

    rows: Annotated[list[CollectionRow], Field(min_length=1, max_length=1000)]


class CollectionOut(BaseModel):
    """A recorded payment."""

    id: str
    invoice_id: str
    amount: int
    paid_at: str
    source: str
    reference: str


def _view(collection: Collection) -> dict[str, Any]:
    return {
        "id": collection.id,
        "object": "collection",
        "invoice_id": collection.invoice_id,  # type: ignore[attr-defined]
        "amount": collection.amount,
        "paid_at": collection.paid_at,
        "source": collection.source,
        "reference": collection.source_reference,
    }


@ops_routes.route(
    "POST",
    "/collections",
    summary="Record collected payments",
    body=CollectionsIn,
    status=201,
    errors=(400, 401, 404, 409),
    description="An unknown invoice is a 404, more than an invoice owes or a written-off invoice a 409; "
    "either names the row (rows.N...) and records none of them.",
)
async def record_collections(_request: web.Request, body: CollectionsIn) -> web.Response:
    """Spread each payment over its invoice's items; any bad row refuses them all, naming it."""
    done = await payments.record_collections(
        [
            payments.PaymentRow(
                invoice_id=row.invoice_id, amount=row.amount, paid_at=row.paid_at, reference=row.reference
            )
            for row in body.rows
        ]
    )
    return json_response({"object": "list", "data": [_view(c) for c in done], "has_more": False}, status=201)
