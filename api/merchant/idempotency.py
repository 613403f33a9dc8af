"""``Idempotency-Key`` on every POST (product.md §9), enforced by the database.

A keyed POST runs in one transaction (one pooled connection): the key is claimed, its stored
row read, the request run, and its response stored with the change it reports, so either both
commit or neither does. On PostgreSQL the claim is a transaction-scoped advisory lock on the
merchant and key (``pg_try_advisory_xact_lock``), taken by the API key's lookup in the same
statement (``api_key_record(claiming=...)``): a second request meanwhile cannot take it and
gets a 409 (in flight) at once, without waiting. On SQLite the backend runs one transaction at a
time, so the second request simply finds the first one's row. Afterwards the stored response is
answered again with ``Idempotent-Replayed: true``; with a different body, a 409. A request that
failed stored nothing, so retrying it with the same key runs it again. The unique
``(merchant_id, key)`` stays the backstop: a duplicate insert rolls the whole request back.
"""

from __future__ import annotations

import hashlib

from aiohttp import web
from aiohttp.typedefs import Handler
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from api.merchant.table import IDEMPOTENCY_HEADER as HEADER
from api.merchant.table import IDEMPOTENCY_KEY, MAX_KEY_LENGTH, MERCHANT
from billing.errors import Conflict, InvalidRequest
from models.clock import clock
from models.merchants import IdempotencyKey
from models.operations.merchants import Claim
from models.statements import insert

__all__ = ["CLAIMED", "claimable", "idempotency_middleware", "keyed_transaction"]

TRANSACTION: web.RequestKey[BaseDBAsyncClient] = web.RequestKey("idempotency_transaction", BaseDBAsyncClient)
CLAIMED: web.RequestKey[Claim] = web.RequestKey("idempotency_claim", Claim)


@web.middleware
async def keyed_transaction(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Open the one transaction (one pooled connection) a keyed POST runs in, from the API key's
    lookup to the stored response; anything raised rolls all of it back."""
    if request.method != "POST" or HEADER not in request.headers:
        return await handler(request)
    await request.read()  # the whole body first: a slow client must not hold a pooled connection
    try:
        async with in_transaction() as connection:
            request[TRANSACTION] = connection
            return await handler(request)
    except IntegrityError:  # the same key inserted meanwhile: nothing of this request was kept
        raise _in_flight() from None


def claimable(request: web.Request) -> str | None:
    """The ``Idempotency-Key`` the API key's lookup should claim with it: a well-formed key of a
    keyed POST, in its transaction on PostgreSQL (SQLite runs one transaction at a time)."""
    connection = request.get(TRANSACTION)
    if connection is None or connection.capabilities.dialect != "postgres":
        return None
    key = request.headers.get(HEADER)
    return key if key is not None and IDEMPOTENCY_KEY.fullmatch(key) else None


def _in_flight() -> Conflict:
    return Conflict(
        "A request with this Idempotency-Key is still in flight.", param=HEADER, code="idempotency_key_in_use"
    )


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Run a keyed POST at most once per key and body; replay its answer afterwards. It runs in
    the transaction ``keyed_transaction`` opened."""
    key = request.headers.get(HEADER)
    if request.method != "POST" or key is None or MERCHANT not in request:
        return await handler(request)
    if not IDEMPOTENCY_KEY.fullmatch(key):
        raise InvalidRequest(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable ASCII characters.", param=HEADER)
    merchant = request[MERCHANT]
    fingerprint = hashlib.sha256(f"{request.method} {request.path}\n".encode() + await request.read()).hexdigest()
    claim = request.get(CLAIMED)  # made with the API key's lookup (PostgreSQL)
    if claim is not None and not claim.claimed:
        raise _in_flight()
    # SQLite runs one transaction at a time: nothing to claim, the row is simply read.
    row = claim.stored if claim is not None else await IdempotencyKey.get_or_none(merchant_id=merchant.id, key=key)
    if row is not None and row.request_fingerprint != fingerprint:
        raise Conflict(
            "This Idempotency-Key was used with a different request.", param=HEADER, code="idempotency_key_reused"
        )
    if row is not None and row.completed_at is not None:
        return web.Response(
            status=row.response_status or 200,
            text=row.response_body or "",
            content_type="application/json",
            headers={"Idempotent-Replayed": "true"},
        )
    response = await handler(request)
    if 200 <= response.status < 300 and isinstance(response, web.Response):
        await _store(row, merchant.id, key, fingerprint, response)
    return response


async def _store(
    row: IdempotencyKey | None, merchant_id: str, key: str, fingerprint: str, response: web.Response
) -> None:
    """Keep ``response`` as the key's answer, in the request's transaction."""
    now = await clock.now()
    if row is None:
        await insert(
            IdempotencyKey,
            merchant_id=merchant_id,
            key=key,
            request_fingerprint=fingerprint,
            response_status=response.status,
            response_body=response.text or "",
            created_at=now,
            completed_at=now,
        )
        return
    await IdempotencyKey.filter(id=row.id).update(
        response_status=response.status, response_body=response.text or "", completed_at=now
    )
