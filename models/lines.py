"""Lines (フレッツ・アクセス回線) and the sessions the access network reports for them.

A line is the unit that is billed: its base fee heads its monthly invoice. A session says which
IPv4 address or IPv6 prefix the line holds; a purchase is only confirmed from inside an open one.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from models.base import State, id_factory

__all__ = [
    "LINE_ID_PATTERN",
    "Line",
    "LineSession",
    "LineStatus",
    "LineType",
    "address_range",
    "open_sessions_overlapping",
    "open_sessions_starting_within",
    "open_sessions_walking_back",
]

LINE_ID_PATTERN = re.compile(r"^(CAF|COP)\d{10}$")
DEFAULT_LINE_MONTHLY_LIMIT = 100_000


class LineType(State):
    """The four access products that may use the service."""

    HIKARI_NEXT = "hikari_next"
    HIKARI_LIGHT = "hikari_light"
    B_FLETS = "b_flets"
    ADSL = "adsl"


class LineStatus(State):
    """A suspended or terminated line can buy nothing."""

    ACTIVE = "active"
    SUSPENDED = "suspended"
    TERMINATED = "terminated"


class Line(Model):
    """One contracted access line and its own monthly fee and spending limit."""

    line_id = fields.CharField(max_length=13, primary_key=True)
    line_type = fields.CharEnumField(LineType, max_length=16)
    flets_dot_net = fields.BooleanField(default=False)
    holder_name = fields.CharField(max_length=200)
    base_monthly_fee = fields.BigIntField()
    status = fields.CharEnumField(LineStatus, max_length=16, default=LineStatus.ACTIVE)
    monthly_limit = fields.BigIntField(default=DEFAULT_LINE_MONTHLY_LIMIT)
    # The line's ひかり電話 number in E.164 (``+81...``), set by operators; CAMARA aggregators
    # may name the line by it (product.md §13).
    phone_number = fields.CharField(max_length=16, null=True, unique=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    terminated_at = fields.DatetimeField(null=True)

    class Meta:
        table = "lines"

    @property
    def eligible(self) -> bool:
        """Only ADSL needs more than its type: a Flets.net contract (product.md §2)."""
        return self.line_type != LineType.ADSL or self.flets_dot_net


def address_range(network: str) -> tuple[str, str]:
    """The first and last address of ``network`` as keys that sort like the addresses.

    Each key is the family digit then the address as 32 hex digits (33 characters for IPv4 and
    IPv6 alike), so comparing keys as text compares addresses, every IPv4 key sorts before every
    IPv6 key, and one index serves both families.
    """
    parsed = ipaddress.ip_network(network)
    first, last = int(parsed.network_address), int(parsed.broadcast_address)
    return f"{parsed.version}{first:032x}", f"{parsed.version}{last:032x}"


class LineSession(Model):
    """An address held by the line from ``started_at`` until ``ended_at`` (open while null).

    ``network`` is the canonical network: a /32 for an IPv4 address, the prefix for IPv6, so a
    purchase's client address is checked with one containment test for both families.
    ``first_address`` and ``last_address`` are its bounds as ``address_range`` keys, written by
    ``save`` from ``network``, so the open sessions overlapping an address are found by range
    scans of the ``(ended_at, first_address)`` index (``open_sessions_overlapping``).
    """

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("ls"))
    line: fields.ForeignKeyRelation[Line] = fields.ForeignKeyField(
        "models.Line", related_name="sessions", on_delete=fields.RESTRICT
    )
    if TYPE_CHECKING:
        line_id: str
    address = fields.CharField(max_length=64)
    network = fields.CharField(max_length=64)
    family = fields.SmallIntField()
    first_address = fields.CharField(max_length=33)
    last_address = fields.CharField(max_length=33)
    started_at = fields.DatetimeField()
    ended_at = fields.DatetimeField(null=True)

    class Meta:
        table = "line_sessions"
        indexes = (("line_id", "ended_at"), ("ended_at", "first_address"))

    async def save(
        self,
        using_db: BaseDBAsyncClient | None = None,
        update_fields: Iterable[str] | None = None,
        force_create: bool = False,
        force_update: bool = False,
    ) -> None:
        """Save, with ``first_address`` and ``last_address`` computed from ``network``.

        Callers set ``network`` only (``LineSession.create(..., network=...)`` goes through here);
        an update of ``network`` by ``update_fields`` writes the bounds with it.
        """
        network = getattr(self, "network", None)
        if network is not None:
            self.first_address, self.last_address = address_range(network)
            if update_fields is not None and "network" in update_fields:
                update_fields = [*update_fields, "first_address", "last_address"]
        await super().save(
            using_db=using_db, update_fields=update_fields, force_create=force_create, force_update=force_update
        )

    def contains(self, client_address: str) -> bool:
        """True when ``client_address`` lies inside this session's address or prefix."""
        try:
            address = ipaddress.ip_address(client_address)
        except ValueError:
            return False
        return address in ipaddress.ip_network(self.network)


# Sessions read per query while walking back from an address (see open_sessions_overlapping).
_PAGE = 16


async def open_sessions_overlapping(network: str, *, exclude_line_id: str) -> list[LineSession]:
    """The open sessions of lines other than ``exclude_line_id`` that overlap ``network``.

    Opening a session ends the overlapping open sessions of other lines, so open sessions of
    different lines never overlap; only one line's own sessions may (a prefix and a longer one
    inside it). So a session overlapping ``network`` [F, L] either starts inside it (one range
    scan: ``first_address`` between F and L) or starts before F and contains F. The latter are
    found walking back from F in ``first_address`` order: every session met on the way until one
    containing F starts inside that one, so it is of the same line; the walk stops at the first
    session of another line, and at once when the nearest one is of ``exclude_line_id``. Every
    query is an index range scan of ``(ended_at, first_address)``; none reads the whole network.
    """
    first, last = address_range(network)
    found: dict[str, LineSession] = {
        session.id: session
        for session in await open_sessions_starting_within(first, last)
        if session.line_id != exclude_line_id
    }
    walk_line: str | None = None
    after: LineSession | None = None
    while True:
        page = await open_sessions_walking_back(first, after=after)
        for session in page:
            walk_line = walk_line or session.line_id
            if session.line_id != walk_line or walk_line == exclude_line_id:
                return sorted(found.values(), key=lambda session: session.first_address)
            if session.last_address >= first:
                found[session.id] = session
        if len(page) < _PAGE:
            return sorted(found.values(), key=lambda session: session.first_address)
        after = page[-1]


def open_sessions_starting_within(first: str, last: str) -> QuerySet[LineSession]:
    """Open sessions whose first address key lies in [``first``, ``last``]: one index range."""
    return LineSession.filter(ended_at=None, first_address__gte=first, first_address__lte=last).order_by(
        "first_address"
    )


def open_sessions_walking_back(first: str, *, after: LineSession | None = None) -> QuerySet[LineSession]:
    """A page of open sessions starting at or before ``first``, nearest first, continuing below
    ``after`` (the last session of the previous page) in ``(first_address, id)`` order."""
    query = LineSession.filter(ended_at=None, first_address__lte=first)
    if after is not None:
        query = query.filter(
            Q(first_address__lt=after.first_address) | Q(first_address=after.first_address, id__lt=after.id)
        )
    return query.order_by("-first_address", "-id").limit(_PAGE)
