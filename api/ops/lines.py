"""Lines, their sessions and their subscriber IDs, as the carrier provisions them."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from api.http import Body, json_response
from api.ops.table import audit, ops_routes
from billing.errors import Conflict, InvalidRequest, NotFound
from models.accounts import (
    ACCOUNTS_PER_LINE,
    DEFAULT_ACCOUNT_LIMIT,
    DEFAULT_MINOR_LIMIT,
    AccountStatus,
    SubscriberAccount,
)
from models.clock import clock
from models.lines import LINE_ID_PATTERN, Line, LineSession, LineStatus
from models.outbox import send
from models.passwords import generate_password, hash_password

__all__ = ["line_view", "session_view"]

LineId = Annotated[str, Field(pattern=LINE_ID_PATTERN.pattern, description="CAF or COP and 10 digits")]
LineTypeName = Literal["hikari_next", "hikari_light", "b_flets", "adsl"]
Yen = Annotated[int, Field(ge=0, le=10_000_000)]
LoginId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{2,63}$")]
MIN_IPV6_PREFIX = 32


class LineCreate(Body):
    """A new line, as the carrier's order system knows it."""

    line_id: LineId
    line_type: LineTypeName
    flets_dot_net: bool = False
    holder_name: Annotated[str, Field(min_length=1, max_length=200)]
    base_monthly_fee: Yen
    monthly_limit: Yen | None = None


class LineUpdate(Body):
    """Change a line's status, limit or fee; only the fields given change."""

    status: Literal["active", "suspended", "terminated"] | None = None
    monthly_limit: Yen | None = None
    base_monthly_fee: Yen | None = None
    holder_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    flets_dot_net: bool | None = None


class LineOut(BaseModel):
    """A line as the ops API shows it."""

    line_id: str
    line_type: LineTypeName
    flets_dot_net: bool
    holder_name: str
    base_monthly_fee: int
    status: Literal["active", "suspended", "terminated"]
    monthly_limit: int
    eligible: bool
    created_at: datetime


class SessionCreate(Body):
    """The access network reports an address: an IPv4 address or an IPv6 prefix."""

    address: Annotated[str, Field(min_length=2, max_length=64, examples=["192.0.2.10", "2001:db8:1200::/56"])]


class SessionOut(BaseModel):
    """An address a line holds; open while ``ended_at`` is null."""

    id: str
    line_id: str
    address: str
    started_at: datetime
    ended_at: datetime | None


class AccountCreate(Body):
    """A new subscriber ID on a line; the initial password is generated and shown once."""

    login_id: LoginId
    is_minor: bool = False
    monthly_limit: Yen | None = None


class AccountOut(BaseModel):
    """A subscriber ID; ``initial_password`` appears only in the answer that created it."""

    login_id: str
    line_id: str
    is_minor: bool
    monthly_limit: int
    status: str
    locked_until: datetime | None = None
    initial_password: str | None = None


def line_view(line: Line) -> dict[str, object]:
    """The ops API's line object."""
    return {
        "line_id": line.line_id,
        "line_type": line.line_type.value,
        "flets_dot_net": line.flets_dot_net,
        "holder_name": line.holder_name,
        "base_monthly_fee": line.base_monthly_fee,
        "status": line.status.value,
        "monthly_limit": line.monthly_limit,
        "eligible": line.eligible,
        "created_at": line.created_at,
    }


def session_view(session: LineSession) -> dict[str, object]:
    """The ops API's session object."""
    return {
        "id": session.id,
        "line_id": session.line_id,
        "address": session.address,
        "started_at": session.started_at,
        "ended_at": session.ended_at,
    }


def account_view(account: SubscriberAccount, *, initial_password: str | None = None) -> dict[str, object]:
    """The ops API's subscriber ID object (never the hash)."""
    view: dict[str, object] = {
        "login_id": account.login_id,
        "line_id": account.line_id,
        "is_minor": account.is_minor,
        "monthly_limit": account.monthly_limit,
        "status": account.status.value,
        "locked_until": account.locked_until,
    }
    if initial_password is not None:
        view["initial_password"] = initial_password
    return view


async def _line(line_id: str, *, lock: bool = False) -> Line:
    query = Line.select_for_update() if lock else Line
    line = await query.get_or_none(line_id=line_id) if LINE_ID_PATTERN.match(line_id) else None
    if line is None:
        raise NotFound(f"No line {line_id}.", param="line_id")
    return line


@ops_routes.route(
    "POST", "/lines", summary="Create a line", body=LineCreate, response=LineOut, status=201, errors=(400, 401, 409)
)
async def create_line(request: web.Request, body: LineCreate) -> web.Response:
    """A new line; an ``adsl`` line without ``flets_dot_net`` is stored but can never purchase."""
    now = await clock.now()
    fields = body.model_dump(exclude_none=True)
    try:
        async with in_transaction():
            line = await Line.create(**fields, created_at=now, updated_at=now)
            await audit(request, "line.create", "line", line.line_id, **fields)
    except IntegrityError:
        raise Conflict(f"Line {body.line_id} exists already.", param="line_id", code="line_exists") from None
    return json_response(line_view(line), status=201)


@ops_routes.route("GET", "/lines/{line_id}", summary="Retrieve a line", response=LineOut)
async def get_line(request: web.Request) -> web.Response:
    """One line."""
    return json_response(line_view(await _line(request.match_info["line_id"])))


@ops_routes.route(
    "PATCH", "/lines/{line_id}", summary="Update a line", body=LineUpdate, response=LineOut, errors=(400, 401, 404, 409)
)
async def update_line(request: web.Request, body: LineUpdate) -> web.Response:
    """Suspend, reactivate or terminate a line; change its limit or fee.

    Termination is final: it ends the line's sessions, and the charges worker cancels its
    subscriptions (a message written in this same transaction).
    """
    changes = body.model_dump(exclude_none=True)
    from workers.charges import cancel_line_subscriptions

    async with in_transaction():
        line = await _line(request.match_info["line_id"], lock=True)
        now = await clock.now()
        if line.status == LineStatus.TERMINATED and changes:
            raise Conflict("A terminated line cannot be changed.", param="status", code="line_terminated")
        for name, value in changes.items():
            setattr(line, name, LineStatus(value) if name == "status" else value)
        line.updated_at = now
        if changes.get("status") == LineStatus.TERMINATED:
            line.terminated_at = now
            await LineSession.filter(line_id=line.line_id, ended_at=None).update(ended_at=now)
            await send(cancel_line_subscriptions, line.line_id)
        await line.save()
        await audit(request, "line.update", "line", line.line_id, **changes)
    return json_response(line_view(line))


def _network(address: str) -> tuple[str, str, int]:
    """The canonical (address, network, family) of a reported address; 400 when malformed."""
    try:
        network = ipaddress.ip_network(address, strict=True)
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


@ops_routes.route(
    "POST",
    "/lines/{line_id}/sessions",
    summary="Open a line session",
    body=SessionCreate,
    response=SessionOut,
    status=201,
    errors=(400, 401, 404, 409),
)
async def open_session(request: web.Request, body: SessionCreate) -> web.Response:
    """The line now holds ``address``.

    An address is held by one line at a time: an open session of another line that overlaps
    it is ended, because the network has given the address to this line. Reporting the same
    open address again answers the session already open.
    """
    address, network, family = _network(body.address)
    async with in_transaction():
        line = await _line(request.match_info["line_id"], lock=True)
        if line.status == LineStatus.TERMINATED:
            raise Conflict("The line is terminated.", param="line_id", code="line_terminated")
        now = await clock.now()
        current = await LineSession.filter(line_id=line.line_id, network=network, ended_at=None).first()
        if current is not None:
            return json_response(session_view(current), status=200)
        wanted = ipaddress.ip_network(network)
        overlapping = [
            other
            for other in await LineSession.filter(ended_at=None, family=family).exclude(line_id=line.line_id)
            if ipaddress.ip_network(other.network).overlaps(wanted)
        ]
        for other in overlapping:
            other.ended_at = now
            await other.save(update_fields=["ended_at"])
            await audit(request, "session.superseded", "line", other.line_id, session=other.id)
        session = await LineSession.create(line=line, address=address, network=network, family=family, started_at=now)
        await audit(request, "session.open", "line", line.line_id, session=session.id, address=address)
    return json_response(session_view(session), status=201)


@ops_routes.route("GET", "/lines/{line_id}/sessions", summary="List a line's open sessions")
async def list_sessions(request: web.Request) -> web.Response:
    """The sessions of a line that are still open."""
    line = await _line(request.match_info["line_id"])
    sessions = await LineSession.filter(line_id=line.line_id, ended_at=None).order_by("started_at")
    return json_response({"object": "list", "data": [session_view(s) for s in sessions], "has_more": False})


@ops_routes.route("POST", "/lines/{line_id}/sessions/{id}/end", summary="End a line session", response=SessionOut)
async def end_session(request: web.Request) -> web.Response:
    """The line no longer holds the address; ending an ended session changes nothing."""
    async with in_transaction():
        line = await _line(request.match_info["line_id"])
        session = await LineSession.select_for_update().get_or_none(id=request.match_info["id"], line_id=line.line_id)
        if session is None:
            raise NotFound("No such session on this line.", param="id")
        if session.ended_at is None:
            session.ended_at = await clock.now()
            await session.save(update_fields=["ended_at"])
            await audit(request, "session.end", "line", line.line_id, session=session.id)
    return json_response(session_view(session))


@ops_routes.route(
    "POST",
    "/lines/{line_id}/accounts",
    summary="Create a subscriber ID",
    body=AccountCreate,
    response=AccountOut,
    status=201,
    errors=(400, 401, 404, 409),
)
async def create_account(request: web.Request, body: AccountCreate) -> web.Response:
    """A new ID with a generated initial password, shown in this answer only; at most five
    live IDs per line (a sixth is a 409)."""
    limit = body.monthly_limit
    if limit is None:
        limit = DEFAULT_MINOR_LIMIT if body.is_minor else DEFAULT_ACCOUNT_LIMIT
    if body.is_minor and limit > DEFAULT_MINOR_LIMIT:
        raise InvalidRequest(f"A minor's monthly limit is at most {DEFAULT_MINOR_LIMIT} yen.", param="monthly_limit")
    password = generate_password()
    password_hash = await hash_password(password)
    try:
        async with in_transaction():
            line = await _line(request.match_info["line_id"], lock=True)
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
                login_id=body.login_id,
                line=line,
                slot=free[0],
                password_hash=password_hash,
                is_minor=body.is_minor,
                monthly_limit=limit,
                status=AccountStatus.ACTIVE,
                created_at=await clock.now(),
            )
            await audit(request, "account.create", "account", account.login_id, line_id=line.line_id)
    except IntegrityError as error:
        if await SubscriberAccount.exists(login_id=body.login_id):
            raise Conflict(f"login_id {body.login_id} is taken.", param="login_id", code="login_id_taken") from None
        raise Conflict("Another ID was created on this line at the same time; try again.", param="line_id") from error
    return json_response(account_view(account, initial_password=password), status=201)


@ops_routes.route("GET", "/accounts/{login_id}", summary="Retrieve a subscriber ID", response=AccountOut)
async def get_account(request: web.Request) -> web.Response:
    """One subscriber ID, without its password."""
    account = await SubscriberAccount.get_or_none(login_id=request.match_info["login_id"])
    if account is None:
        raise NotFound("No such subscriber ID.", param="login_id")
    return json_response(account_view(account))
