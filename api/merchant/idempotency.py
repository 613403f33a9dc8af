"""``Idempotency-Key`` on every POST (product.md §9), enforced by the database.

The key row is inserted first (``ON CONFLICT DO NOTHING``), so every request with the key sees
it. The request then runs inside one transaction holding that row's lock, and the response is
stored in the same transaction as the change it reports: either both commit or neither does.
A second request meanwhile finds the row locked (409, in flight); afterwards it finds the stored
response and gets it again with ``Idempotent-Replayed: true``; with a different body, a 409.
A request that failed stored nothing, so retrying it with the same key runs it again.
"""

from __future__ import annotations

import hashlib

from aiohttp import web
from aiohttp.typedefs import Handler
from asyncpg.exceptions import LockNotAvailableError
from tortoise.exceptions import OperationalError
from tortoise.transactions import in_transaction

from api.merchant.table import IDEMPOTENCY_HEADER as HEADER
from api.merchant.table import IDEMPOTENCY_KEY, MAX_KEY_LENGTH, MERCHANT
from billing.errors import Conflict, InvalidRequest
from models.clock import clock
from models.merchants import IdempotencyKey

__all__ = ["idempotency_middleware"]


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run a keyed POST at most once per key and body; replay its answer afterwards."""
    key = request.headers.get(HEADER)
    if request.method != "POST" or key is None or MERCHANT not in request:
        return await handler(request)
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidRequest(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.", param=HEADER)
    merchant = request[MERCHANT]
    fingerprint = hashlib.sha256(f"{request.method} {request.path}\n".encode() + await request.read()).hexdigest()
    await IdempotencyKey.bulk_create(
        [IdempotencyKey(merchant=merchant, key=key, request_fingerprint=fingerprint, created_at=await clock.now())],
        ignore_conflicts=True,
    )
    async with in_transaction():
        try:
            row = await IdempotencyKey.select_for_update(nowait=True).get(merchant_id=merchant.id, key=key)
        except (OperationalError, LockNotAvailableError):  # Tortoise passes asyncpg's own through
            raise Conflict(
                "A request with this Idempotency-Key is still in flight.", param=HEADER, code="idempotency_key_in_use"
            ) from None
        if row.request_fingerprint != fingerprint:
            raise Conflict(
                "This Idempotency-Key was used with a different request.", param=HEADER, code="idempotency_key_reused"
            )
        if row.completed_at is not None:
            return web.Response(
                status=row.response_status or 200,
                text=row.response_body or "",
                content_type="application/json",
                headers={"Idempotent-Replayed": "true"},
            )
        response = await handler(request)
        if 200 <= response.status < 300 and isinstance(response, web.Response):
            row.response_status = response.status
            row.response_body = response.text or ""
            row.completed_at = await clock.now()
            await row.save(update_fields=["response_status", "response_body", "completed_at"])
        return response
