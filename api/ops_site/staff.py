"""``/ops/staff``: an admin adds staff (the first password shown once), changes roles and stops
staff from signing in; each change carries a reason for the audit log."""

from __future__ import annotations

from aiohttp import web

from api.ops_site.access import StaffPermission, acting, reason_of, require
from api.site.pages import render, see_other
from billing.errors import Conflict, InvalidRequest, NotFound
from models.accounts import StaffRole, StaffUser
from models.operations import staff as staff_ops

__all__ = ["routes"]

routes = web.RouteTableDef()
MAX_STAFF_SHOWN = 500


async def _staff_page(request: web.Request, *, status: int = 200, **context: object) -> web.Response:
    require(request, StaffPermission.MANAGE)
    members = await StaffUser.all().order_by("-active", "created_at").limit(MAX_STAFF_SHOWN)
    page = {
        "members": members,
        "roles": [role.value for role in StaffRole],
        "errors": {},
        "form": {"email": "", "name": "", "role": StaffRole.SUPPORT.value},
        "created": None,
        "initial_password": None,
        **context,
    }
    return await render(request, "ops/staff.html", page, status=status)


@routes.get("/ops/staff")
async def list_staff(request: web.Request) -> web.StreamResponse:
    """Every staff member and the form to add one."""
    return await _staff_page(request)


@routes.post("/ops/staff")
async def add_staff(request: web.Request) -> web.StreamResponse:
    """Add a staff member; their first password is shown on this page, once."""
    require(request, StaffPermission.MANAGE)
    form = await request.post()
    values = {name: str(form.get(name, "")).strip() for name in ("email", "name", "role")}
    try:
        user, password = await staff_ops.create_staff(
            values["email"], name=values["name"], role=values["role"], actor=acting(request)
        )
    except (InvalidRequest, Conflict) as problem:
        return await _staff_page(request, status=problem.status, form=values, errors={problem.param: problem.code})
    return await _staff_page(request, status=201, created=user, initial_password=password)


@routes.post("/ops/staff/{id}/role")
async def change_role(request: web.Request) -> web.StreamResponse:
    """Give a staff member another role (the last admin cannot step down)."""
    require(request, StaffPermission.MANAGE)
    form = await request.post()
    try:
        await staff_ops.change_staff_role(
            request.match_info["id"], str(form.get("role", "")), actor=acting(request), reason=reason_of(form)
        )
    except (InvalidRequest, Conflict, NotFound) as problem:
        return await _staff_page(request, status=problem.status, errors={"member": problem.code})
    return see_other("/ops/staff")


@routes.post("/ops/staff/{id}/deactivate")
async def deactivate(request: web.Request) -> web.StreamResponse:
    """Stop a staff member signing in; their sessions end."""
    require(request, StaffPermission.MANAGE)
    form = await request.post()
    try:
        await staff_ops.deactivate_staff(request.match_info["id"], actor=acting(request), reason=reason_of(form))
    except (InvalidRequest, Conflict, NotFound) as problem:
        return await _staff_page(request, status=problem.status, errors={"member": problem.code})
    return see_other("/ops/staff")
