"""Who is signed in to the console and what their role lets them do (product.md §10).

Every handler asks ``require(request, StaffPermission.X)`` before it reads or changes anything:
a role without the permission gets 403 and nothing changes. Actions name the staff member
(``acting``) and carry a reason (``reason_of``), both written to the audit log.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from aiohttp import web

from api.keys import REQUEST_ID
from api.site.pages import SITE_USER
from billing.errors import InvalidRequest, PermissionDenied
from models.accounts import StaffUser
from models.audit_log import Actor
from models.operations.staff import StaffPermission, can, load_staff_user, staff_actor

__all__ = [
    "MAX_REASON",
    "Operator",
    "StaffPermission",
    "acting",
    "load_operator",
    "reason_of",
    "require",
    "staff_of",
]

MAX_REASON = 500


@dataclass(frozen=True)
class Operator:
    """The signed-in staff member; templates ask ``user.can("money")`` to show a button."""

    user: StaffUser

    @property
    def id(self) -> str:
        """The staff member's id."""
        return self.user.id

    def can(self, permission: StaffPermission | str) -> bool:
        """True when the role grants ``permission``."""
        return can(self.user, permission)


async def load_operator(user_id: str) -> Operator | None:
    """The active staff member ``user_id`` (None ends the session)."""
    user = await load_staff_user(user_id)
    return Operator(user) if user is not None else None


def staff_of(request: web.Request) -> Operator:
    """The signed-in staff member of this request."""
    operator = request[SITE_USER]
    assert isinstance(operator, Operator)  # noqa: S101 - the site guard sets it for every signed-in page
    return operator


def require(request: web.Request, permission: StaffPermission) -> Operator:
    """The signed-in staff member, if their role grants ``permission``; 403 otherwise."""
    operator = staff_of(request)
    if not operator.can(permission):
        raise PermissionDenied(f"The {operator.user.role} role may not do this.", code="role_forbidden")
    return operator


def acting(request: web.Request) -> Actor:
    """Who the audit log names for an action on the console."""
    return staff_actor(staff_of(request).user, request.get(REQUEST_ID))


def reason_of(form: Mapping[str, object]) -> str:
    """The reason a staff action gives (required, one line of at most 500 characters, no control
    characters); ``InvalidRequest`` with code ``reason_required`` or ``reason_invalid``."""
    reason = " ".join(str(form.get("reason", "")).split())
    if not reason:
        raise InvalidRequest("Give a reason for this action.", param="reason", code="reason_required")
    if len(reason) > MAX_REASON or any(ord(char) < 32 or ord(char) == 127 for char in reason):
        raise InvalidRequest("The reason is too long or holds control chars.", param="reason", code="reason_invalid")
    return reason
