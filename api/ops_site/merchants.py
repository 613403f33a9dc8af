"""``/ops/merchants``: the merchants, found by id or name and paged by keyset, and one merchant's
page (status, fee plans, bank account, API keys, users, payouts); an admin suspends or resumes a
merchant and revokes a key, each with a reason for the audit log."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from tortoise.expressions import Q

from api.merchant_site.pager import page_links
from api.ops_site.access import StaffPermission, acting, reason_of, require
from api.paging import keyset_page
from api.site.pages import render, see_other
from billing.errors import Conflict, InvalidRequest
from models.merchants import Merchant, MerchantStatus
from models.operations import merchants as merchant_ops

__all__ = ["routes"]

routes = web.RouteTableDef()
PAGE_SIZE = 50
SHOWN = 50  # keys, users and payouts on one merchant's page
MAX_QUERY = 200
MERCHANT_ID = "{id:[A-Za-z0-9_]+}"
DONE = frozenset({"suspended", "active", "key_revoked"})


@routes.get("/ops/merchants")
async def list_merchants(request: web.Request) -> web.StreamResponse:
    """Merchants, newest first, those whose id is ``q`` or whose name holds it."""
    require(request, StaffPermission.READ)
    q = request.query.get("q", "").strip()[:MAX_QUERY]
    query = Merchant.all()
    if q:
        query = query.filter(Q(id=q) | Q(name__icontains=q) | Q(name_kana__icontains=q))
    found = await keyset_page(
        query, after=request.query.get("after"), before=request.query.get("before"), limit=PAGE_SIZE
    )
    page = {"q": q, "merchants": found.rows, **page_links(request, found, q=q)}
    return await render(request, "ops/merchants.html", page)


def _status_of(wanted: str) -> str:
    """``wanted`` when it is a merchant status; ``InvalidRequest`` (``invalid_value``) otherwise."""
    if wanted not in {choice.value for choice in MerchantStatus}:
        raise InvalidRequest("status must be active or suspended.", param="status", code="invalid_value")
    return wanted


async def _merchant_page(request: web.Request, *, status: int = 200, **context: object) -> web.Response:
    details = await merchant_ops.merchant_details(request.match_info["id"], limit=SHOWN)
    done = request.query.get("done", "")
    page: dict[str, Any] = {
        "details": details,
        "merchant": details.merchant,
        "statuses": [choice.value for choice in MerchantStatus],
        "done": done if done in DONE else "",
        "errors": {},
        **context,
    }
    return await render(request, "ops/merchant.html", page, status=status)


@routes.get(f"/ops/merchants/{MERCHANT_ID}")
async def show_merchant(request: web.Request) -> web.StreamResponse:
    """One merchant: contract, bank account, keys (never the key itself), users and payouts."""
    require(request, StaffPermission.READ)
    return await _merchant_page(request)


@routes.post(f"/ops/merchants/{MERCHANT_ID}/status")
async def change_status(request: web.Request) -> web.StreamResponse:
    """Suspend a merchant (its purchases fail with ``merchant_inactive``) or let it charge again."""
    require(request, StaffPermission.MANAGE)
    merchant_id = request.match_info["id"]
    await merchant_ops.find_merchant(merchant_id)  # an unknown merchant is a 404 whatever the form says
    form = await request.post()
    wanted = str(form.get("status", ""))
    try:
        changes = {"status": _status_of(wanted)}
        await merchant_ops.update_merchant(merchant_id, changes, actor=acting(request), reason=reason_of(form))
    except (InvalidRequest, Conflict) as problem:
        return await _merchant_page(request, status=problem.status, errors={"status": problem.code})
    return see_other(f"/ops/merchants/{merchant_id}?done={wanted}")


@routes.post(f"/ops/merchants/{MERCHANT_ID}/keys/{{key_id:[A-Za-z0-9_]+}}/revoke")
async def revoke_key(request: web.Request) -> web.StreamResponse:
    """Revoke one of the merchant's API keys: it stops working at once."""
    require(request, StaffPermission.MANAGE)
    merchant_id = request.match_info["id"]
    await merchant_ops.find_merchant(merchant_id)
    form = await request.post()
    try:
        reason = reason_of(form)
    except InvalidRequest as problem:
        return await _merchant_page(request, status=problem.status, errors={"key": problem.code})
    await merchant_ops.revoke_api_key(merchant_id, request.match_info["key_id"], actor=acting(request), reason=reason)
    return see_other(f"/ops/merchants/{merchant_id}?done=key_revoked")
