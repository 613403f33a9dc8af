"""Subscriber IDs (one per household member, at most five per line) and carrier staff users.

The five-per-line rule is held by the database: each live ID takes a ``slot`` 1-5 of its line,
unique per line, so two concurrent creations cannot make a sixth.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from models.base import State, id_factory

if TYPE_CHECKING:
    from models.lines import Line

__all__ = [
    "ACCOUNTS_PER_LINE",
    "AccountStatus",
    "StaffRole",
    "StaffUser",
    "SubscriberAccount",
]

ACCOUNTS_PER_LINE = 5
DEFAULT_ACCOUNT_LIMIT = 50_000
DEFAULT_MINOR_LIMIT = 10_000
LOCK_AFTER_FAILURES = 5
LOCK_MINUTES = 30


class AccountStatus(State):
    """A closed ID frees its slot and can never sign in again."""

    ACTIVE = "active"
    CLOSED = "closed"


class SubscriberAccount(Model):
    """A carrier-issued sign-in ID of one line, with its own monthly spending limit."""

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("acct"))
    login_id = fields.CharField(max_length=64, unique=True)
    line: fields.ForeignKeyRelation[Line] = fields.ForeignKeyField(
        "models.Line", related_name="accounts", on_delete=fields.RESTRICT
    )
    if TYPE_CHECKING:
        line_id: str
    slot = fields.SmallIntField(null=True)
    password_hash = fields.CharField(max_length=255)
    is_minor = fields.BooleanField(default=False)
    monthly_limit = fields.BigIntField()
    status = fields.CharEnumField(AccountStatus, max_length=16, default=AccountStatus.ACTIVE)
    failed_attempts = fields.SmallIntField(default=0)
    locked_until = fields.DatetimeField(null=True)
    password_changed_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "subscriber_accounts"
        unique_together = (("line_id", "slot"),)


class StaffRole(State):
    """What a carrier staff member may do in the console."""

    SUPPORT = "support"
    BILLING = "billing"
    ADMIN = "admin"


class StaffUser(Model):
    """A carrier staff member who signs in to the operator console ``/ops``."""

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("staff"))
    email = fields.CharField(max_length=254, unique=True)
    name = fields.CharField(max_length=200)
    role = fields.CharEnumField(StaffRole, max_length=16)
    password_hash = fields.CharField(max_length=255)
    active = fields.BooleanField(default=True)
    failed_attempts = fields.SmallIntField(default=0, db_default=0)
    locked_until = fields.DatetimeField(null=True)
    last_sign_in_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "staff_users"
