"""Lines, their sessions and their subscriber IDs: what the carrier's staff do to them.

Every operation runs in one transaction with the line (or the ID) locked, writes its audit
entry in it, and refuses what the rules refuse with a ``MatometeError`` that names the field.
Termination is final: it ends the line's sessions and, through the outbox, the charges worker
cancels its subscriptions.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from billing.errors import Conflict, InvalidRequest, NotFound, Unprocessable
from models.accounts import (
    ACCOUNTS_PER_LINE,
    DEFAULT_ACCOUNT_LIMIT,
    DEFAULT_MINOR_LIMIT,
    AccountStatus,
    SubscriberAccount,
)
from models.audit_log import Actor, audit
from models.clock import clock
from models.lines import LINE_ID_PATTERN, Line, LineSession, LineStatus, open_sessions_overlapping
from models.operations.site_users import MY_SITE, end_sessions_of, end_user_sessions
from models.outbox import CANCEL_LINE_SUBSCRIPTIONS, send
from models.passwords import generate_password, hash_password

__all__ = [
    "MIN_IPV6_PREFIX",
    "create_account",
    "create_line",
    "end_session",
    "find_account",
    "find_line",
    "open_session",
    "reset_password",
    "resume_line",
    "suspend_line",
    "terminate_line",
    "unlock_account",
    "update_line",
]

MIN_IPV6_PREFIX = 32


async def find_line(line_id: str, *, lock: bool = False) -> Line:
    """The line ``line_id``; ``NotFound`` for any other string."""
    query = Line.select_for_update() if lock else Line
    line = await query.get_or_none(line_id=line_id) if LINE_ID_PATTERN.match(line_id) else None
    if line is None:
        raise NotFound(f"No line {line_id}.", param="line_id")
    return line


async def find_account(login_id: str, *, lock: bool = False) -> SubscriberAccount:
    """The subscriber ID ``login_id``; ``NotFound`` otherwise."""
    query = SubscriberAccount.select_for_update() if lock else SubscriberAccount
    account = await query.get_or_none(login_id=login_id) if len(login_id) <= 64 else None
    if account is None:
        raise NotFound("No such subscriber ID.", param="login_id")
    return account


async def create_line(fields: dict[str, Any], *, actor: Actor) -> Line:
    """A new line (``line_id``, ``line_type``, ``holder_name``, ``base_monthly_fee``, ...); an
    ``adsl`` line without ``flets_dot_net`` is stored but can never purchase."""
    now = await clock.now()
    try:
        async with in_transaction():
            line = await Line.create(**fields, created_at=now, updated_at=now)
            await audit(actor, "line.create", "line", line.line_id, **fields)
    except IntegrityError:
        raise Conflict(f"Line {fields['line_id']} exists already.", param="line_id", code="line_exists") from None
    return line


async def update_line(
    line_id: str,
    changes: dict[str, Any],
    *,
    actor: Actor,
    reason: str | None = None,
    only_from: tuple[LineStatus, ...] | None = None,
) -> Line:
    """Change a line's status, limit, fee, holder name or Flets.net contract; a terminated line
    cannot be changed. Terminating ends its sessions and cancels its subscriptions. With
    ``only_from``, a line in any other status is refused (409 ``line_status``), nothing written."""
    async with in_transaction():
        line = await find_line(line_id, lock=True)
        now = await clock.now()
        if line.status == LineStatus.TERMINATED and changes:
            raise Conflict("A terminated line cannot be changed.", param="status", code="line_terminated")
        if only_from is not None and line.status not in only_from:
            raise Conflict(f"A {line.status.value} line cannot be changed so.", param="status", code="line_status")
        number = changes.get("phone_number")
        if number is not None and await Line.filter(phone_number=number).exclude(line_id=line.line_id).exists():
            raise Conflict("Another line has this phone number.", param="phone_number", code="phone_number_taken")
        for name, value in changes.items():
            setattr(line, name, LineStatus(value) if name == "status" else value)
        line.updated_at = now
        if changes.get("status") == LineStatus.TERMINATED:
            line.terminated_at = now
            await LineSession.filter(line_id=line.line_id, ended_at=None).update(ended_at=now)
            await send(CANCEL_LINE_SUBSCRIPTIONS, line.line_id)
        if changes.get("status") in (LineStatus.SUSPENDED, LineStatus.TERMINATED):
            # Its IDs may no longer sign in; a my page left open must not outlive that.
            ids = await SubscriberAccount.filter(line_id=line.line_id).values_list("id", flat=True)
            await end_sessions_of(MY_SITE, [str(account_id) for account_id in ids])
        await line.save()
        await audit(actor, "line.update", "line", line.line_id, **changes, **_why(reason))
    return line


async def suspend_line(line_id: str, *, actor: Actor, reason: str | None = None) -> Line:
    """An active line can buy nothing until it is resumed (another status: 409 ``line_status``)."""
    return await update_line(
        line_id, {"status": LineStatus.SUSPENDED.value}, actor=actor, reason=reason, only_from=(LineStatus.ACTIVE,)
    )


async def resume_line(line_id: str, *, actor: Actor, reason: str | None = None) -> Line:
    """A suspended line may buy again (another status: 409 ``line_status``)."""
    return await update_line(
        line_id, {"status": LineStatus.ACTIVE.value}, actor=actor, reason=reason, only_from=(LineStatus.SUSPENDED,)
    )


async def terminate_line(line_id: str, *, actor: Actor, reason: str | None = None) -> Line:
    """Final: sessions end, subscriptions are canceled."""
    return await update_line(line_id, {"status": LineStatus.TERMINATED.value}, actor=actor, reason=reason)


def _why(reason: str | None) -> dict[str, str]:
    """The reason a person gave, for the audit entry."""
    return {} if reason is None else {"reason": reason}


def _network(address: str) -> tuple[str, str, int]:
    """The canonical (address, network, family) of a reported address; 400 when malformed."""
    try:
        network = ipaddress.ip_network(address, strict=False)  # a prefix given by one of its addresses
    except ValueError:
        raise InvalidRequest(
            "address must be an IPv4 address or an IPv6 address or prefix (e.g. 2001:db8:1200::/56).",
            param="address",
        ) from None
    if network.version == 4 and network.prefixlen != 32:
        raise InvalidRequest("An IPv4 session is one address, not a network.", param="address")
    if network.version == 6 and network.prefixlen < MIN_IPV6_PREFIX:
        raise InvalidRequest(f"An IPv6 prefix must be /{MIN_IPV6_PREFIX} or longer.", param="address")
    shown = str(network.network_address) if network.num_addresses == 1 else str(network)
    return shown, str(network), network.version


async def open_session(line_id: str, address: str, *, actor: Actor) -> tuple[LineSession, bool]:
    """The line now holds ``address``: (the session, whether it is new).

    An address is held by one line at a time: an open session of another line that overlaps
    it is ended, because the network has given the address to this line. Reporting the same
    open address again answers the session already open.
    """
    shown, network, family = _network(address)
    async with in_transaction():
        line = await find_line(line_id, lock=True)
        if line.status == LineStatus.TERMINATED:
            raise Conflict("The line is terminated.", param="line_id", code="line_terminated")
        now = await clock.now()
        current = await LineSession.filter(line_id=line.line_id, network=network, ended_at=None).first()
        if current is not None:
            return current, False
        for other in await open_sessions_overlapping(network, exclude_line_id=line.line_id):
            other.ended_at = now
            await other.save(update_fields=["ended_at"])
            await audit(actor, "session.superseded", "line", other.line_id, session=other.id)
        session = await LineSession.create(line=line, address=shown, network=network, family=family, started_at=now)
        await audit(actor, "session.open", "line", line.line_id, session=session.id, address=shown)
    return session, True


async def end_session(line_id: str, session_id: str, *, actor: Actor) -> LineSession:
    """The line no longer holds the address; ending an ended session changes nothing."""
    async with in_transaction():
        line = await find_line(line_id)
        session = await LineSession.select_for_update().get_or_none(id=session_id, line_id=line.line_id)
        if session is None:
            raise NotFound("No such session on this line.", param="id")
        if session.ended_at is None:
            session.ended_at = await clock.now()
            await session.save(update_fields=["ended_at"])
            await audit(actor, "session.end", "line", line.line_id, session=session.id)
    return session


async def create_account(
    line_id: str, login_id: str, *, is_minor: bool, monthly_limit: int | None, actor: Actor
) -> tuple[SubscriberAccount, str]:
    """A new ID with a generated initial password (answered once, never stored plainly); at
    most five live IDs per line (a sixth is a 409)."""
    limit = monthly_limit
    if limit is None:
        limit = DEFAULT_MINOR_LIMIT if is_minor else DEFAULT_ACCOUNT_LIMIT
    if is_minor and limit > DEFAULT_MINOR_LIMIT:
        raise Unprocessable(f"A minor's monthly limit is at most {DEFAULT_MINOR_LIMIT} yen.", param="monthly_limit")
    password = generate_password()
    password_hash = await hash_password(password)
    try:
        async with in_transaction():
            line = await find_line(line_id, lock=True)
            if line.status == LineStatus.TERMINATED:
                raise Conflict("The line is terminated.", param="line_id", code="line_terminated")
            # A flat values_list is typed as a list of tuples; here it is the slots themselves.
            taken: set[Any] = set(
                await SubscriberAccount.filter(line_id=line.line_id, slot__not_isnull=True).values_list(
                    "slot", flat=True
                )
            )
            free = [slot for slot in range(1, ACCOUNTS_PER_LINE + 1) if slot not in taken]
            if not free:
                raise Conflict(
                    f"Line {line.line_id} has {ACCOUNTS_PER_LINE} IDs already.",
                    param="line_id",
                    code="line_accounts_full",
                )
            account = await SubscriberAccount.create(
                login_id=login_id,
                line=line,
                slot=free[0],
                password_hash=password_hash,
                is_minor=is_minor,
                monthly_limit=limit,
                status=AccountStatus.ACTIVE,
                created_at=await clock.now(),
            )
            await audit(actor, "account.create", "account", account.login_id, line_id=line.line_id)
    except IntegrityError as error:
        if await SubscriberAccount.exists(login_id=login_id):
            raise Conflict(f"login_id {login_id} is taken.", param="login_id", code="login_id_taken") from None
        raise Conflict("Another ID was created on this line at the same time; try again.", param="line_id") from error
    return account, password


async def unlock_account(login_id: str, *, actor: Actor, reason: str | None = None) -> SubscriberAccount:
    """Lift a lock and forget the failed attempts (a support call: the subscriber is who they say)."""
    async with in_transaction():
        account = await find_account(login_id, lock=True)
        account.failed_attempts, account.locked_until = 0, None
        await account.save(update_fields=["failed_attempts", "locked_until"])
        await audit(actor, "account.unlock", "account", account.login_id, **_why(reason))
    return account


async def reset_password(login_id: str, *, actor: Actor, reason: str | None = None) -> tuple[SubscriberAccount, str]:
    """A new generated password for the ID (answered once), which also lifts a lock."""
    password = generate_password()
    password_hash = await hash_password(password)
    async with in_transaction():
        account = await find_account(login_id, lock=True)
        if account.status != AccountStatus.ACTIVE:
            raise Conflict("A closed ID cannot sign in again.", param="login_id", code="account_closed")
        account.password_hash = password_hash
        account.failed_attempts, account.locked_until = 0, None
        account.password_changed_at = await clock.now()
        await account.save(update_fields=["password_hash", "failed_attempts", "locked_until", "password_changed_at"])
        await end_user_sessions(MY_SITE, account.id)  # whoever knew the old password is signed out
        await audit(actor, "account.reset_password", "account", account.login_id, **_why(reason))
    return account, password
