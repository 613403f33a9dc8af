"""``/merchant/users``: an admin adds users (the first password shown once), changes roles,
stops users, and can require a TOTP second step of everyone."""

from __future__ import annotations

from aiohttp import web

from api.merchant_site.access import Permission, acting, require
from api.site.pages import render, see_other
from billing.errors import Conflict, InvalidRequest
from models.merchants import MerchantUser
from models.operations import site_users

__all__ = ["routes"]

routes = web.RouteTableDef()
MAX_USERS_SHOWN = 200


async def _users_page(request: web.Request, *, status: int = 200, **context: object) -> web.Response:
    staff = require(request, Permission.MANAGE_USERS)
    users = await MerchantUser.filter(merchant_id=staff.merchant.id).order_by("created_at").limit(MAX_USERS_SHOWN)
    page = {
        "users": users,
        "roles": [role.value for role in site_users.MerchantRole],
        "errors": {},
        "form": {"email": "", "name": "", "role": "viewer"},
        "created": None,
        "initial_password": None,
        "require_totp": staff.merchant.require_totp,
        **context,
    }
    return await render(request, "merchant/users.html", page, status=status)


@routes.get("/merchant/users")
async def list_users(request: web.Request) -> web.StreamResponse:
    """The merchant's users and the form to add one."""
    return await _users_page(request)


@routes.post("/merchant/users")
async def add_user(request: web.Request) -> web.StreamResponse:
    """Add a user; its initial password is shown on this page, once."""
    staff = require(request, Permission.MANAGE_USERS)
    form = await request.post()
    values = {name: str(form.get(name, "")).strip() for name in ("email", "name", "role")}
    try:
        user, password = await site_users.create_merchant_user(
            staff.merchant.id, email=values["email"], name=values["name"], role=values["role"], actor=acting(request)
        )
    except (InvalidRequest, Conflict) as problem:
        return await _users_page(request, status=problem.status, form=values, errors={problem.param: problem.code})
    return await _users_page(request, status=201, created=user, initial_password=password)


@routes.post("/merchant/users/{id}/role")
async def change_role(request: web.Request) -> web.StreamResponse:
    """Give a user another role (the last admin cannot step down)."""
    staff = require(request, Permission.MANAGE_USERS)
    role = str((await request.post()).get("role", ""))
    try:
        await site_users.change_role(staff.merchant.id, request.match_info["id"], role, actor=acting(request))
    except (InvalidRequest, Conflict) as problem:
        return await _users_page(request, status=problem.status, errors={"role": problem.code})
    return see_other("/merchant/users")


@routes.post("/merchant/users/{id}/deactivate")
async def deactivate(request: web.Request) -> web.StreamResponse:
    """Stop a user signing in; their sessions end."""
    staff = require(request, Permission.MANAGE_USERS)
    try:
        await site_users.deactivate_user(staff.merchant.id, request.match_info["id"], actor=acting(request))
    except Conflict as problem:
        return await _users_page(request, status=problem.status, errors={"role": problem.code})
    return see_other("/merchant/users")


@routes.post("/merchant/users/totp")
async def require_totp(request: web.Request) -> web.StreamResponse:
    """Require (or stop requiring) TOTP of every user of the merchant."""
    staff = require(request, Permission.MANAGE_USERS)
    required = (await request.post()).get("required") == "1"
    await site_users.require_totp(staff.merchant.id, required=required, actor=acting(request))
    return see_other("/merchant/users")
