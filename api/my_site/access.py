"""Who is signed in to the my page: one subscriber ID, whose own data alone the pages read."""

from __future__ import annotations

from aiohttp import web

from api.keys import REQUEST_ID
from api.site.pages import SITE_USER
from models.accounts import SubscriberAccount
from models.audit_log import Actor
from models.operations.subscribers import subscriber_actor

__all__ = ["account_of", "acting"]


def account_of(request: web.Request) -> SubscriberAccount:
    """The signed-in subscriber ID of this request."""
    account = request[SITE_USER]
    assert isinstance(account, SubscriberAccount)  # noqa: S101 - the site guard sets it for every signed-in page
    return account


def acting(request: web.Request) -> Actor:
    """Who the audit log names for an action on the my page."""
    return subscriber_actor(account_of(request).id, request.get(REQUEST_ID))
