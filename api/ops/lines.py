"""Lines, their sessions and their subscriber IDs, as the carrier provisions them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from api.http import Body, json_response
from api.ops.table import operator, ops_routes
from models.accounts import SubscriberAccount
from models.lines import LINE_ID_PATTERN, Line, LineSession
from models.operations import lines

__all__ = ["line_view", "session_view"]

LineId = Annotated[str, Field(pattern=LINE_ID_PATTERN.pattern, description="CAF or COP and 10 digits")]
LineTypeName = Literal["hikari_next", "hikari_light", "b_flets", "adsl"]
Yen = Annotated[int, Field(ge=0, le=10_000_000)]
E164_PATTERN = r"^\+[1-9][0-9]{4,14}$"
LoginId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{2,63}$")]


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
    # Its ひかり電話 number in E.164 (CAMARA's ``phoneNumber``); null takes it away.
    phone_number: Annotated[str, Field(pattern=E164_PATTERN)] | None = None


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
    phone_number: str | None
    created_at: datetime


_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = rf"{_OCTET}(\.{_OCTET}){{3}}"
_H = r"[0-9A-Fa-f]{1,4}"
_IPV6 = (
    rf"(({_H}:){{7}}{_H}|({_H}:){{1,7}}:|({_H}:){{1,6}}:{_H}|({_H}:){{1,5}}(:{_H}){{1,2}}|({_H}:){{1,4}}(:{_H}){{1,3}}"
    rf"|({_H}:){{1,3}}(:{_H}){{1,4}}|({_H}:){{1,2}}(:{_H}){{1,5}}|{_H}:(:{_H}){{1,6}}|:((:{_H}){{1,7}}|:))"
)
# What a session may hold: one IPv4 address (or it as /32), or an IPv6 address or prefix of /32
# to /128 (host bits are dropped: 2001:db8::1/56 is 2001:db8::/56).
ADDRESS_PATTERN = rf"^({_IPV4}(/32)?|{_IPV6}(/(3[2-9]|[4-9][0-9]|1[01][0-9]|12[0-8]))?)$"


class SessionCreate(Body):
    """The access network reports an address: an IPv4 address or an IPv6 address or prefix."""

    address: Annotated[
        str,
        Field(
            min_length=2,
            max_length=64,
            pattern=ADDRESS_PATTERN,
            description="An IPv4 address, or an IPv6 address or prefix (/32 to /128)",
            examples=["192.0.2.10", "2001:db8:1200::/56"],
        ),
    ]


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


class Reason(Body):
    """Why a person does this (kept in the audit log)."""

    reason: Annotated[str, Field(min_length=1, max_length=500)] | None = None


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
        "phone_number": line.phone_number,
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


@ops_routes.route(
    "POST", "/lines", summary="Create a line", body=LineCreate, response=LineOut, status=201, errors=(400, 401, 409)
)
async def create_line(request: web.Request, body: LineCreate) -> web.Response:
    """A new line; an ``adsl`` line without ``flets_dot_net`` is stored but can never purchase."""
    line = await lines.create_line(body.model_dump(exclude_none=True), actor=operator(request))
    return json_response(line_view(line), status=201)


@ops_routes.route("GET", "/lines/{line_id}", summary="Retrieve a line", response=LineOut)
async def get_line(request: web.Request) -> web.Response:
    """One line."""
    return json_response(line_view(await lines.find_line(request.match_info["line_id"])))


@ops_routes.route(
    "PATCH", "/lines/{line_id}", summary="Update a line", body=LineUpdate, response=LineOut, errors=(400, 401, 404, 409)
)
async def update_line(request: web.Request, body: LineUpdate) -> web.Response:
    """Suspend, reactivate or terminate a line; change its limit or fee.

    Termination is final: it ends the line's sessions, and the charges worker cancels its
    subscriptions (a message written in this same transaction).
    """
    # A field given as null is not changed, but for the phone number, which null takes away.
    changes = {
        name: value
        for name, value in body.model_dump(exclude_unset=True).items()
        if value is not None or name == "phone_number"
    }
    line = await lines.update_line(request.match_info["line_id"], changes, actor=operator(request))
    return json_response(line_view(line))


@ops_routes.route(
    "POST",
    "/lines/{line_id}/sessions",
    summary="Open a line session",
    body=SessionCreate,
    response=SessionOut,
    status=201,
    errors=(400, 401, 404, 409),
    also=(200,),
    description="201 with a new session; 200 with the session already open for the same address.",
)
async def open_session(request: web.Request, body: SessionCreate) -> web.Response:
    """The line now holds ``address``; an overlapping open session of another line is ended.
    Reporting the same open address again answers the session already open (200)."""
    session, new = await lines.open_session(request.match_info["line_id"], body.address, actor=operator(request))
    return json_response(session_view(session), status=201 if new else 200)


class SessionList(BaseModel):
    """A line's open sessions."""

    object: Literal["list"]
    data: list[SessionOut]
    has_more: bool


@ops_routes.route("GET", "/lines/{line_id}/sessions", summary="List a line's open sessions", response=SessionList)
async def list_sessions(request: web.Request) -> web.Response:
    """The sessions of a line that are still open."""
    line = await lines.find_line(request.match_info["line_id"])
    sessions = await LineSession.filter(line_id=line.line_id, ended_at=None).order_by("started_at")
    return json_response({"object": "list", "data": [session_view(s) for s in sessions], "has_more": False})


@ops_routes.route("POST", "/lines/{line_id}/sessions/{id}/end", summary="End a line session", response=SessionOut)
async def end_session(request: web.Request) -> web.Response:
    """The line no longer holds the address; ending an ended session changes nothing."""
    session = await lines.end_session(request.match_info["line_id"], request.match_info["id"], actor=operator(request))
    return json_response(session_view(session))


@ops_routes.route(
    "POST",
    "/lines/{line_id}/accounts",
    summary="Create a subscriber ID",
    body=AccountCreate,
    response=AccountOut,
    status=201,
    errors=(400, 401, 404, 409, 422),
    description="A minor's ID may have at most 10,000 yen a month (422 above).",
)
async def create_account(request: web.Request, body: AccountCreate) -> web.Response:
    """A new ID with a generated initial password, shown in this answer only; at most five
    live IDs per line (a sixth is a 409)."""
    account, password = await lines.create_account(
        request.match_info["line_id"],
        body.login_id,
        is_minor=body.is_minor,
        monthly_limit=body.monthly_limit,
        actor=operator(request),
    )
    return json_response(account_view(account, initial_password=password), status=201)


@ops_routes.route("GET", "/accounts/{login_id}", summary="Retrieve a subscriber ID", response=AccountOut)
async def get_account(request: web.Request) -> web.Response:
    """One subscriber ID, without its password."""
    return json_response(account_view(await lines.find_account(request.match_info["login_id"])))


@ops_routes.route(
    "POST",
    "/accounts/{login_id}/unlock",
    summary="Unlock a subscriber ID",
    body=Reason,
    response=AccountOut,
    errors=(400, 401, 404),
)
async def unlock_account(request: web.Request, body: Reason) -> web.Response:
    """Lift the lock and forget the failed attempts."""
    account = await lines.unlock_account(request.match_info["login_id"], actor=operator(request), reason=body.reason)
    return json_response(account_view(account))


@ops_routes.route(
    "POST",
    "/accounts/{login_id}/reset_password",
    summary="Reset a subscriber ID's password",
    body=Reason,
    response=AccountOut,
    errors=(400, 401, 404, 409),
)
async def reset_password(request: web.Request, body: Reason) -> web.Response:
    """A new generated password, shown in this answer only (``initial_password``)."""
    account, password = await lines.reset_password(
        request.match_info["login_id"], actor=operator(request), reason=body.reason
    )
    return json_response(account_view(account, initial_password=password))
