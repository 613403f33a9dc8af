"""``/ops/collections``: billing staff upload a Zengin 口座振替 result file and see what it did,
with the parsing and the operation of ``matomete import-collections`` in one transaction (a
malformed file, or one naming a bill that does not exist, applies nothing); the latest
collections below."""

from __future__ import annotations

import hashlib
from typing import Any

from aiohttp import web
from tortoise.transactions import in_transaction

from api.ops_site.access import StaffPermission, acting, reason_of, require
from api.site.pages import render
from billing.errors import Conflict, InvalidRequest
from billing.zengin_records import ZenginFormatError, read_debit_results
from models.clock import clock
from models.operations.collections import import_debit_results, recent_collections

__all__ = ["routes"]

routes = web.RouteTableDef()
COLLECTIONS_SHOWN = 50


def _file_of(upload: object) -> bytes:
    """The bytes of the uploaded file; ``InvalidRequest`` (``file_required``) when none was chosen."""
    if not isinstance(upload, web.FileField):
        raise InvalidRequest("Choose a result file.", param="file", code="file_required")
    return upload.file.read()


async def _collections_page(request: web.Request, *, status: int = 200, **context: object) -> web.Response:
    page: dict[str, Any] = {
        "collections": await recent_collections(COLLECTIONS_SHOWN),
        "summary": None,
        "file_name": "",
        "errors": {},
        "detail": None,
        **context,
    }
    return await render(request, "ops/collections.html", page, status=status)


@routes.get("/ops/collections")
async def show_collections(request: web.Request) -> web.StreamResponse:
    """The upload form (billing staff) and the latest collections."""
    require(request, StaffPermission.READ)
    return await _collections_page(request)


@routes.post("/ops/collections")
async def import_file(request: web.Request) -> web.StreamResponse:
    """Apply an uploaded 口座振替 result file, all or nothing, and show how many bills it paid."""
    require(request, StaffPermission.MONEY)
    form = await request.post()
    upload = form.get("file")
    name = str(getattr(upload, "filename", "") or "")[:200]
    try:
        data = _file_of(upload)
        reason = reason_of(form)
        results = read_debit_results(data)
        async with in_transaction():
            summary = await import_debit_results(
                results,
                now=await clock.now(),
                actor=acting(request),
                reason=reason,
                file_id=hashlib.sha256(data).hexdigest(),
            )
    except ZenginFormatError as problem:
        shown = {"record": problem.record, "reason": problem.reason}
        errors = {"file": problem.code}
        return await _collections_page(request, status=400, file_name=name, errors=errors, detail=shown)
    except (InvalidRequest, Conflict) as problem:
        detail = {"record": None, "reason": problem.message} if problem.param == "file" else None
        errors = {problem.param or "file": problem.code}
        return await _collections_page(request, status=problem.status, file_name=name, errors=errors, detail=detail)
    return await _collections_page(request, summary={**summary, "records": len(results)}, file_name=name)
