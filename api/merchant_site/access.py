"""Who is signed in to the merchant site, and what their role lets them do (product.md §10).

Every handler asks ``staff_of(request)`` for the signed-in user and its merchant, and
``require(request, Permission.X)`` before it changes anything: a role without the permission
gets 403 and nothing changes. Every query is scoped to ``staff.merchant.id``, so another
merchant's id is simply not found (404).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from aiohttp import web

from api.keys import REQUEST_ID
from api.site.pages import SITE_USER
from billing.errors import PermissionDenied
from models.audit_log import Actor
from models.merchants import Merchant, MerchantUser
from models.operations.site_users import MerchantRole

__all__ = ["Permission", "Staff", "acting", "load_staff", "require", "staff_of"]


class Permission(StrEnum):
    """What a page or an action needs."""

    READ = "read"
    REFUND = "refund"  # refunds and cancellations: money moves
    DEVELOP = "develop"  # webhook endpoints and API keys
    MANAGE_USERS = "manage_users"


GRANTS: dict[MerchantRole, frozenset[Permission]] = {
    MerchantRole.ADMIN: frozenset(Permission),
    MerchantRole.DEVELOPER: frozenset({Permission.READ, Permission.DEVELOP}),
    MerchantRole.VIEWER: frozenset({Permission.READ}),
}


@dataclass(frozen=True)
class Staff:
    """A signed-in merchant user and the merchant whose data they see."""

    user: MerchantUser
    merchant: Merchant

    @property
    def role(self) -> MerchantRole:
        """The user's role (an unknown stored value reads as ``viewer``)."""
        try:
            return MerchantRole(self.user.role)
        except ValueError:
            return MerchantRole.VIEWER

    def can(self, permission: Permission | str) -> bool:
        """True when the role grants ``permission``; templates ask this to show a button."""
        return Permission(permission) in GRANTS[self.role]


async def load_staff(user_id: str) -> Staff | None:
    """The active user ``user_id`` and its merchant, or None (the session then ends)."""
    user = await MerchantUser.get_or_none(id=user_id, active=True)
    if user is None:
        return None
    return Staff(user, await Merchant.get(id=user.merchant_id))


def staff_of(request: web.Request) -> Staff:
    """The signed-in merchant user of this request."""
    staff = request[SITE_USER]
    assert isinstance(staff, Staff)  # noqa: S101 - the site guard sets it for every signed-in page
    return staff


def require(request: web.Request, permission: Permission) -> Staff:
    """The signed-in user, if their role grants ``permission``; 403 otherwise."""
    staff = staff_of(request)
    if not staff.can(permission):
        raise PermissionDenied(f"The {staff.role.value} role may not do this.", code="role_forbidden")
    return staff


def acting(request: web.Request) -> Actor:
    """Who the audit log names for an action on the merchant site."""
    return Actor(f"muser:{staff_of(request).user.id}", request.get(REQUEST_ID))
