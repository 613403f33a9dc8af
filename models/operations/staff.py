"""Carrier staff of the operator console ``/ops`` (product.md §10): create a staff member (the
first password shown once), sign in under the lockout rule, change a role, deactivate.

``matomete create-staff``, ``matomete up`` and the console's staff page call these. Roles:
``support`` finds and reads, unlocks IDs, resets passwords, cancels subscriptions; ``billing``
also refunds and runs the money (close, collections, payouts); ``admin`` also lines, merchants
and staff. What each role may do is ``StaffPermission``; ``can`` answers it for pages.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise.transactions import in_transaction

from billing.errors import Conflict, InvalidRequest, NotFound
from billing.sign_in import SignInOutcome
from models.accounts import StaffRole, StaffUser
from models.audit_log import Actor, audit
from models.base import fits_id_column
from models.clock import clock
from models.operations.site_users import OPS_SITE, counted_sign_in, end_user_sessions, normalized_email
from models.passwords import generate_password, hash_password

__all__ = [
    "GRANTS",
    "StaffPermission",
    "can",
    "change_staff_role",
    "create_staff",
    "deactivate_staff",
    "find_staff",
    "load_staff_user",
    "sign_in_staff",
    "staff_actor",
    "staff_role",
]


class StaffPermission(StrEnum):
    """What a console page or action needs."""

    READ = "read"  # find, look at anything
    SUPPORT = "support"  # unlock an ID, reset its password, cancel a subscription
    MONEY = "money"  # refunds, billing runs, collections, payouts
    MANAGE = "manage"  # lines (suspend, resume, terminate), merchants, staff, dead letters


GRANTS: dict[StaffRole, frozenset[StaffPermission]] = {
    StaffRole.SUPPORT: frozenset({StaffPermission.READ, StaffPermission.SUPPORT}),
    StaffRole.BILLING: frozenset({StaffPermission.READ, StaffPermission.SUPPORT, StaffPermission.MONEY}),
    StaffRole.ADMIN: frozenset(StaffPermission),
}


def staff_role(value: str) -> StaffRole:
    """The role named ``value``; ``InvalidRequest`` for anything else."""
    try:
        return StaffRole(value)
    except ValueError:
        raise InvalidRequest("role must be support, billing or admin.", param="role", code="unknown_role") from None


def can(user: StaffUser, permission: StaffPermission | str) -> bool:
    """True when ``user``'s role grants ``permission`` (an unknown stored role grants reading only)."""
    try:
        role = StaffRole(user.role)
    except ValueError:
        return StaffPermission(permission) == StaffPermission.READ
    return StaffPermission(permission) in GRANTS[role]


def staff_actor(user: StaffUser, request_id: str | None = None) -> Actor:
    """Who the audit log names for ``user``'s actions."""
    return Actor(f"staff:{user.id}", request_id)


async def create_staff(email: str, *, name: str, role: str, actor: Actor) -> tuple[StaffUser, str]:
    """A new staff member and their first password (shown once, stored hashed)."""
    address, chosen, name = normalized_email(email), staff_role(role), name.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("name must be 1 to 200 characters.", param="name", code="required")
    password = generate_password()
    password_hash = await hash_password(password)
    async with in_transaction():
        if await StaffUser.exists(email=address):
            raise Conflict("A staff member with this e-mail already exists.", param="email", code="email_taken")
        user = await StaffUser.create(
            email=address, name=name, role=chosen.value, password_hash=password_hash, created_at=await clock.now()
        )
        await audit(actor, "staff.create", "staff_user", user.id, role=user.role)
    return user, password


async def sign_in_staff(
    email: str, password: str, *, request_id: str | None = None
) -> tuple[SignInOutcome, StaffUser | None]:
    """Check a staff member's e-mail and password under the lockout rule; record the attempt."""
    return await counted_sign_in(StaffUser, email, password, actor_prefix="staff", request_id=request_id)


async def load_staff_user(user_id: str) -> StaffUser | None:
    """The active staff member ``user_id``, or None (their session then ends)."""
    return await StaffUser.get_or_none(id=user_id, active=True) if fits_id_column(user_id) else None


async def find_staff(user_id: str, *, lock: bool = False) -> StaffUser:
    """The staff member ``user_id``; ``NotFound`` otherwise."""
    query = StaffUser.select_for_update() if lock else StaffUser
    user = await query.get_or_none(id=user_id) if fits_id_column(user_id) else None
    if user is None:
        raise NotFound(f"No staff member {user_id}.", param="id")
    return user


async def change_staff_role(user_id: str, role: str, *, actor: Actor, reason: str | None = None) -> StaffUser:
    """Give a staff member another role; at least one active admin remains."""
    chosen = staff_role(role)
    async with in_transaction():
        user = await find_staff(user_id, lock=True)
        if user.role == StaffRole.ADMIN and chosen != StaffRole.ADMIN:
            await _keep_an_admin(user.id)
        before, user.role = user.role, chosen
        await user.save(update_fields=["role"])
        await audit(actor, "staff.role", "staff_user", user.id, before=str(before), after=chosen.value, reason=reason)
    return user


async def deactivate_staff(user_id: str, *, actor: Actor, reason: str | None = None) -> StaffUser:
    """Stop a staff member signing in and end their sessions; at least one active admin remains."""
    async with in_transaction():
        user = await find_staff(user_id, lock=True)
        if user.role == StaffRole.ADMIN:
            await _keep_an_admin(user.id)
        user.active = False
        await user.save(update_fields=["active"])
        await end_user_sessions(OPS_SITE, user.id)
        await audit(actor, "staff.deactivate", "staff_user", user.id, reason=reason)
    return user


async def _keep_an_admin(leaving_id: str) -> None:
    if not await StaffUser.filter(role=StaffRole.ADMIN, active=True).exclude(id=leaving_id).exists():
        raise Conflict("At least one active admin remains.", param="role", code="last_admin")
