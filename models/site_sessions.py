"""Signed-in sessions of the sites (``/merchant``, ``/my``, ``/ops``), kept server-side.

The browser holds only an encrypted cookie naming the session; the row says who is signed in,
when the session was last used (30 minutes idle ends it) and whether it was ended (sign-out, a
password change). So ending a session is a database write, not a hope that the cookie goes away.
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

__all__ = ["SiteSession"]


class SiteSession(Model):
    """One sign-in of one user of one site."""

    id = fields.CharField(max_length=64, primary_key=True)
    site = fields.CharField(max_length=16)
    user_id = fields.CharField(max_length=32)
    created_at = fields.DatetimeField()
    last_seen_at = fields.DatetimeField()
    ended_at = fields.DatetimeField(null=True)

    class Meta:
        table = "site_sessions"
        indexes = (("site", "user_id"),)
