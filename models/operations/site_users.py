"""Merchant users of the data management site and the sites' server-side sessions: create a
user, sign in (with the lockout of ``billing.sign_in``), TOTP, roles, passwords, and sessions
that end on sign-out, a password change, or 30 minutes idle.

``/ops/v1`` (create a user), the merchant site and ``matomete up`` call these; handlers only
parse, authorise, call and render. Password hashing runs off the event loop
(``models.passwords``), never inside a database transaction.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol, TypeVar

import pyotp
from tortoise.transactions import in_transaction

from billing.errors import Conflict, InvalidRequest, NotFound
from billing.sign_in import SignInDecision, SignInOutcome, decide_sign_in, email_problem, password_problem
from models.accounts import StaffUser
from models.audit_log import Actor, audit
from models.base import fits_id_column
from models.clock import clock
from models.merchants import Merchant, MerchantUser
from models.passwords import generate_password, hash_password, store_rehash, verify_or_waste, verify_password
from models.site_sessions import SiteSession

__all__ = [
    "MERCHANT_SITE",
    "MY_SITE",
    "OPS_SITE",
    "SESSION_IDLE",
    "MerchantRole",
    "SignIn",
    "change_password",
    "change_role",
    "confirm_totp",
    "count_sign_in",
    "counted_sign_in",
    "create_merchant_user",
    "deactivate_user",
    "end_session",
    "end_sessions_of",
    "end_user_sessions",
    "find_merchant_user",
    "live_session",
    "normalized_email",
    "open_session",
    "require_totp",
    "second_step",
    "sign_in_merchant_user",
    "start_totp_enrolment",
    "totp_uri",
    "verify_totp",
]

# The sites whose sessions these rows are (``SiteSession.site``).
MERCHANT_SITE = "merchant"
MY_SITE = "my"
OPS_SITE = "ops"
SESSION_IDLE = timedelta(minutes=30)
# A session's last use is written at most this often: a page view is not a database write.
TOUCH_EVERY = timedelta(seconds=60)
TOTP_ISSUER = "Matomete"


class MerchantRole(StrEnum):
    """product.md §10: ``admin`` everything; ``developer`` webhooks, keys and read; ``viewer`` read."""

    ADMIN = "admin"
    DEVELOPER = "developer"
    VIEWER = "viewer"


def _role(value: str) -> MerchantRole:
    try:
        return MerchantRole(value)
    except ValueError:
        raise InvalidRequest("role must be admin, developer or viewer.", param="role", code="unknown_role") from None


def normalized_email(value: str) -> str:
    """``value`` trimmed and lower-cased, if it is an e-mail address; ``InvalidRequest`` if not."""
    email = value.strip().lower()
    problem = email_problem(email)
    if problem:
        raise InvalidRequest("email must be an e-mail address.", param="email", code=problem)
    return email


async def create_merchant_user(
    merchant_id: str, *, email: str, name: str, role: str, actor: Actor
) -> tuple[MerchantUser, str]:
    """A new user of ``merchant_id`` and its initial password (shown once, stored hashed)."""
    address, chosen_role, name = normalized_email(email), _role(role), name.strip()
    if not name or len(name) > 200:
        raise InvalidRequest("name must be 1 to 200 characters.", param="name", code="required")
    password = generate_password()
    password_hash = await hash_password(password)
    async with in_transaction():
        merchant = await Merchant.get_or_none(id=merchant_id) if fits_id_column(merchant_id) else None
        if merchant is None:
            raise NotFound(f"No merchant {merchant_id}.", param="id")
        if await MerchantUser.exists(email=address):
            raise Conflict("A user with this e-mail already exists.", param="email", code="email_taken")
        user = await MerchantUser.create(
            merchant=merchant,
            email=address,
            name=name,
            role=chosen_role.value,
            password_hash=password_hash,
            created_at=await clock.now(),
        )
        await audit(actor, "merchant_user.create", "merchant_user", user.id, merchant=merchant.id, role=user.role)
    return user, password


async def find_merchant_user(merchant_id: str, user_id: str, *, lock: bool = False) -> MerchantUser:
    """``user_id`` if it is a user of ``merchant_id``; ``NotFound`` otherwise."""
    query = MerchantUser.select_for_update() if lock else MerchantUser
    user = await query.get_or_none(id=user_id, merchant_id=merchant_id) if fits_id_column(user_id) else None
    if user is None:
        raise NotFound(f"No user {user_id}.", param="id")
    return user


@dataclass(frozen=True)
class SignIn:
    """The outcome of a sign-in attempt; ``user`` is set when the password was right."""

    outcome: SignInOutcome
    user: MerchantUser | None = None

    @property
    def needs_totp(self) -> bool:
        """True when the user must also give a TOTP code before the session opens."""
        return self.user is not None and self.user.totp_enabled


class _Counted(Protocol):
    """A row that counts failed sign-ins: a merchant user, a staff member or a subscriber's ID."""

    failed_attempts: int
    locked_until: datetime | None


def count_sign_in(row: _Counted, *, password_ok: bool, now: datetime) -> SignInDecision:
    """Decide a sign-in on ``row`` (locked by the caller) under ``billing.sign_in`` and put the
    counter and lock it comes to on the row; the caller saves it with what else changed."""
    decision = decide_sign_in(
        password_ok=password_ok, failed_attempts=row.failed_attempts, locked_until=row.locked_until, now=now
    )
    row.failed_attempts, row.locked_until = decision.failed_attempts, decision.locked_until
    return decision


async def sign_in_merchant_user(email: str, password: str, *, request_id: str | None = None) -> SignIn:
    """Check ``email`` and ``password`` under the lockout rule and record the attempt."""
    outcome, user = await counted_sign_in(MerchantUser, email, password, actor_prefix="muser", request_id=request_id)
    return SignIn(outcome, user)


_User = TypeVar("_User", MerchantUser, StaffUser)


async def counted_sign_in(
    model: type[_User], email: str, password: str, *, actor_prefix: str, request_id: str | None
) -> tuple[SignInOutcome, _User | None]:
    """A sign-in by e-mail and password to a site whose users are ``model`` rows (merchant users,
    carrier staff): the password is checked outside any transaction, then the attempt is counted
    on the locked row under ``billing.sign_in`` and written to the audit log. The user only when
    signed in."""
    address = email.strip().lower()
    found = await model.get_or_none(email=address, active=True) if address else None
    check = await verify_or_waste(found.password_hash if found else None, password)
    if found is None:
        return SignInOutcome.WRONG_PASSWORD, None
    async with in_transaction():
        user = await model.select_for_update().get(id=found.id)
        now = await clock.now()
        decision = count_sign_in(user, password_ok=check.ok and user.password_hash == found.password_hash, now=now)
        rehashed: list[str] = []
        if decision.outcome == SignInOutcome.SIGNED_IN:
            user.last_sign_in_at = now
            rehashed = store_rehash(user, check)
        await user.save(update_fields=["failed_attempts", "locked_until", "last_sign_in_at", *rehashed])
        actor = Actor(f"{actor_prefix}:{user.id}", request_id)
        target_type = model._meta.db_table.removesuffix("s")  # merchant_user, staff_user
        await audit(actor, f"sign_in.{decision.outcome.value}", target_type, user.id)
    return decision.outcome, user if decision.outcome == SignInOutcome.SIGNED_IN else None


def verify_totp(user: MerchantUser, code: str, *, at: float) -> bool:
    """True when ``code`` is the user's RFC 6238 code at ``at`` (a step either side allowed)."""
    if not user.totp_secret or not code.isdigit():
        return False
    return pyotp.TOTP(user.totp_secret).verify(code, for_time=at, valid_window=1)


def totp_uri(user: MerchantUser) -> str:
    """The ``otpauth://`` URI an authenticator app reads from the enrolment QR code."""
    return pyotp.TOTP(user.totp_secret or "").provisioning_uri(name=user.email, issuer_name=TOTP_ISSUER)


async def start_totp_enrolment(user: MerchantUser) -> MerchantUser:
    """Give the user a new secret to enrol (TOTP stays off until a code from it is confirmed)."""
    if user.totp_enabled:
        return user
    user.totp_secret = pyotp.random_base32()
    await user.save(update_fields=["totp_secret"])
    return user


async def confirm_totp(user: MerchantUser, code: str, *, actor: Actor) -> bool:
    """Turn TOTP on when ``code`` comes from the enrolment secret; False (nothing changes) if not."""
    if not verify_totp(user, code, at=(await clock.now()).timestamp()):
        return False
    async with in_transaction():
        user.totp_enabled = True
        await user.save(update_fields=["totp_enabled"])
        await audit(actor, "merchant_user.totp_enabled", "merchant_user", user.id)
    return True


async def require_totp(merchant_id: str, *, required: bool, actor: Actor) -> Merchant:
    """Require (or stop requiring) a TOTP second step of every user of the merchant."""
    async with in_transaction():
        merchant = await Merchant.select_for_update().get(id=merchant_id)
        merchant.require_totp = required
        await merchant.save(update_fields=["require_totp"])
        await audit(actor, "merchant.require_totp", "merchant", merchant.id, required=required)
    return merchant


async def change_role(merchant_id: str, user_id: str, role: str, *, actor: Actor) -> MerchantUser:
    """Give a user another role; the merchant keeps at least one active admin."""
    chosen = _role(role)
    async with in_transaction():
        user = await find_merchant_user(merchant_id, user_id, lock=True)
        if user.role == MerchantRole.ADMIN and chosen != MerchantRole.ADMIN:
            await _keep_an_admin(merchant_id, user.id)
        before, user.role = user.role, chosen.value
        await user.save(update_fields=["role"])
        await audit(actor, "merchant_user.role", "merchant_user", user.id, before=before, after=user.role)
    return user


async def deactivate_user(merchant_id: str, user_id: str, *, actor: Actor) -> MerchantUser:
    """Stop a user signing in, and end its sessions; the merchant keeps at least one active admin."""
    async with in_transaction():
        user = await find_merchant_user(merchant_id, user_id, lock=True)
        if user.role == MerchantRole.ADMIN:
            await _keep_an_admin(merchant_id, user.id)
        user.active = False
        await user.save(update_fields=["active"])
        await end_user_sessions(MERCHANT_SITE, user.id)
        await audit(actor, "merchant_user.deactivate", "merchant_user", user.id)
    return user


async def _keep_an_admin(merchant_id: str, leaving_id: str) -> None:
    others = await MerchantUser.filter(merchant_id=merchant_id, role=MerchantRole.ADMIN.value, active=True).exclude(
        id=leaving_id
    )
    if not others:
        raise Conflict("A merchant keeps at least one active admin.", param="role", code="last_admin")


async def change_password(
    user: MerchantUser, *, current: str, new: str, keep_session: str | None, actor: Actor
) -> None:
    """Set a new password after checking the current one; every other session of the user ends."""
    if not await verify_password(user.password_hash, current):
        raise InvalidRequest("The current password is wrong.", param="current_password", code="wrong_password")
    problem = password_problem(new, login=user.email)
    if problem:
        raise InvalidRequest("The new password is too weak.", param="new_password", code=problem)
    new_hash = await hash_password(new)
    async with in_transaction():
        user.password_hash = new_hash
        await user.save(update_fields=["password_hash"])
        await end_user_sessions(MERCHANT_SITE, user.id, keep=keep_session)
        await audit(actor, "merchant_user.password", "merchant_user", user.id)


async def open_session(site: str, user_id: str) -> str:
    """A new signed-in session of ``user_id`` on ``site``; its id goes into the encrypted cookie."""
    now = await clock.now()
    session_id = secrets.token_urlsafe(32)
    await SiteSession.create(id=session_id, site=site, user_id=user_id, created_at=now, last_seen_at=now)
    return session_id


async def live_session(site: str, session_id: str) -> SiteSession | None:
    """The session if it is still open and was used within 30 minutes; its last use is noted."""
    if not session_id or len(session_id) > 64:
        return None
    session = await SiteSession.get_or_none(id=session_id, site=site, ended_at=None)
    if session is None:
        return None
    now = await clock.now()
    if now - session.last_seen_at >= SESSION_IDLE:
        await SiteSession.filter(id=session_id, ended_at=None).update(ended_at=now)
        return None
    if now - session.last_seen_at >= TOUCH_EVERY:
        await SiteSession.filter(id=session_id).update(last_seen_at=now)
    return session


async def end_session(session_id: str, *, actor: Actor | None = None) -> None:
    """End a session: its cookie no longer signs anyone in. With ``actor`` (a sign-out), the
    audit log records it."""
    async with in_transaction():
        ended = await SiteSession.filter(id=session_id, ended_at=None).update(ended_at=await clock.now())
        if ended and actor is not None:
            session = await SiteSession.get(id=session_id)
            await audit(actor, "sign_out", session.site, session.user_id)


async def end_user_sessions(site: str, user_id: str, *, keep: str | None = None) -> int:
    """End every open session of a user (but ``keep``); how many ended."""
    query = SiteSession.filter(site=site, user_id=user_id, ended_at=None)
    if keep:
        query = query.exclude(id=keep)
    return await query.update(ended_at=await clock.now())


async def end_sessions_of(site: str, user_ids: list[str]) -> int:
    """End every open session of these users (a line suspended: all its IDs); how many ended."""
    if not user_ids:
        return 0
    query = SiteSession.filter(site=site, user_id__in=user_ids, ended_at=None)
    return await query.update(ended_at=await clock.now())


async def second_step(user_id: str, code: str, *, request_id: str | None = None) -> SignIn:
    """The TOTP step after a right password: a wrong code counts as a failed sign-in (so the
    lockout covers guessing codes too); a right one signs in."""
    async with in_transaction():
        user = await MerchantUser.select_for_update().get_or_none(id=user_id, active=True)
        if user is None:
            return SignIn(SignInOutcome.WRONG_PASSWORD)
        now = await clock.now()
        decision = count_sign_in(user, password_ok=verify_totp(user, code, at=now.timestamp()), now=now)
        await user.save(update_fields=["failed_attempts", "locked_until"])
        await audit(Actor(f"muser:{user.id}", request_id), f"totp.{decision.outcome.value}", "merchant_user", user.id)
    return SignIn(decision.outcome, user if decision.outcome == SignInOutcome.SIGNED_IN else None)
