"""``/merchant/api-keys``: the merchant's API keys (prefix, created, last used, revoked),
issuing one (shown once) and revoking one, through the operations the ops API uses."""

from __future__ import annotations

from aiohttp import web

from api.merchant_site.access import Permission, acting, require
from api.site.pages import render, see_other
from models.merchants import ApiKey
from models.operations import merchants

__all__ = ["routes"]

routes = web.RouteTableDef()
KEYS_SHOWN = 100  # a merchant has a handful; revoked ones stay listed for the record


async def _keys_page(request: web.Request, *, status: int = 200, **context: object) -> web.Response:
    staff = require(request, Permission.DEVELOP)
    keys = await ApiKey.filter(merchant_id=staff.merchant.id).order_by("-created_at", "-id").limit(KEYS_SHOWN)
    page: dict[str, object] = {
        "keys": keys,
        "created": None,
        "new_key": None,
        "revoked": request.query.get("done") == "revoked",
    }
    page.update(context)
    return await render(request, "merchant/api_keys.html", page, status=status)


@routes.get("/merchant/api-keys")
async def list_keys(request: web.Request) -> web.StreamResponse:
    """The merchant's keys, newest first, and the button to issue one."""
    return await _keys_page(request)


@routes.post("/merchant/api-keys")
async def issue_key(request: web.Request) -> web.StreamResponse:
    """Issue a further key; it is shown on this answer only (only its digest is stored)."""
    staff = require(request, Permission.DEVELOP)
    record, key = await merchants.add_api_key(staff.merchant.id, actor=acting(request))
    return await _keys_page(request, status=201, created=record, new_key=key)


@routes.post("/merchant/api-keys/{id}/revoke")
async def revoke_key(request: web.Request) -> web.StreamResponse:
    """Revoke a key: requests signed with it are refused from now on."""
    staff = require(request, Permission.DEVELOP)
    await merchants.revoke_api_key(staff.merchant.id, request.match_info["id"], actor=acting(request))
    return see_other("/merchant/api-keys?done=revoked")
