"""Lines (フレッツ・アクセス回線) and the sessions the access network reports for them.

A line is the unit that is billed: its base fee heads its monthly invoice. A session says which
IPv4 address or IPv6 prefix the line holds; a purchase is only confirmed from inside an open one.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from models.base import State, id_factory

__all__ = ["LINE_ID_PATTERN", "Line", "LineSession", "LineStatus", "LineType"]

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
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    terminated_at = fields.DatetimeField(null=True)

    class Meta:
        table = "lines"

    @property
    def eligible(self) -> bool:
        """Only ADSL needs more than its type: a Flets.net contract (product.md §2)."""
        return self.line_type != LineType.ADSL or self.flets_dot_net


class LineSession(Model):
    """An address held by the line from ``started_at`` until ``ended_at`` (open while null).

    ``network`` is the canonical network: a /32 for an IPv4 address, the prefix for IPv6, so a
    purchase's client address is checked with one containment test for both families.
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
    started_at = fields.DatetimeField()
    ended_at = fields.DatetimeField(null=True)

    class Meta:
        table = "line_sessions"
        indexes = (("line_id", "ended_at"),)

    def contains(self, client_address: str) -> bool:
        """True when ``client_address`` lies inside this session's address or prefix."""
        try:
            address = ipaddress.ip_address(client_address)
        except ValueError:
            return False
        return address in ipaddress.ip_network(self.network)
