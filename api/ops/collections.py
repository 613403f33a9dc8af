"""What the carrier collected on line invoices (product.md §6, §11): ``POST /collections``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from aiohttp import web
from pydantic import AwareDatetime, BaseModel, Field
from tortoise.transactions import in_transaction

from api.http import Body, json_response
from api.ops.table import ops_routes
from models.clock import clock
from models.collecting import apply_collection
from models.invoices import Collection

__all__: list[str] = []


class CollectionRow(Body):
    """One payment on one invoice; ``reference`` (optional) makes a resent row count once."""

    invoice_id: Annotated[str, Field(min_length=1, max_length=32)]
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
    "POST", "/collections", summary="Record collected payments", body=CollectionsIn, status=201, errors=(400, 401, 409)
)
async def record_collections(_request: web.Request, body: CollectionsIn) -> web.Response:
    """Spread each payment over its invoice's items; any bad row refuses them all, naming it."""
    now = await clock.now()
    done = []
    async with in_transaction():
        for index, row in enumerate(body.rows):
            reference = row.reference or f"api-{uuid.uuid4()}"
            existing = await Collection.get_or_none(source="api", source_reference=reference)
            if existing is not None:
                done.append(existing)  # the same row sent again: recorded once
                continue
            done.append(
                await apply_collection(
                    row.invoice_id,
                    amount=row.amount,
                    paid_at=row.paid_at,
                    source="api",
                    reference=reference,
                    now=now,
                    param=f"rows.{index}.invoice_id",
                )
            )
    return json_response({"object": "list", "data": [_view(c) for c in done], "has_more": False}, status=201)
