"""Rendering a site page: the template, the page's language, its CSRF token, who is signed in;
the form's CSRF check; and error pages instead of JSON for people."""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp_session import get_session

from api.keys import REQUEST_ID
from api.site.i18n import DEFAULT_LANGUAGE, LOCALE, RENDERING_LANGUAGE, language_links

__all__ = ["CSRF_KEY", "SITE_USER", "csrf_ok", "csrf_token", "error_page", "render", "see_other"]

CSRF_KEY = "csrf"
SITE_USER = web.RequestKey("site_user", object)


async def csrf_token(request: web.Request) -> str:
    """The session's CSRF token (made on first need); every form carries it."""
    session = await get_session(request)
    if CSRF_KEY not in session:
        session[CSRF_KEY] = secrets.token_urlsafe(32)
    return str(session[CSRF_KEY])


async def rotate_csrf_token(request: web.Request) -> None:
    """A new CSRF token (at sign-in and sign-out), so one seen before cannot be replayed after."""
    session = await get_session(request)
    session[CSRF_KEY] = secrets.token_urlsafe(32)


async def csrf_ok(request: web.Request) -> bool:
    """True when the posted form's ``csrf_token`` is the session's."""
    session = await get_session(request)
    expected = session.get(CSRF_KEY)
    form = await request.post()
    offered = form.get("csrf_token")
    return bool(expected) and isinstance(offered, str) and secrets.compare_digest(offered, str(expected))


async def render(
    request: web.Request, template: str, context: Mapping[str, Any] | None = None, *, status: int = 200
) -> web.Response:
    """``template`` with ``context`` and what every page shows: language, switch, CSRF token, user."""
    page: dict[str, Any] = {
        "request": request,
        "locale": request.get(LOCALE, DEFAULT_LANGUAGE),
        "languages": language_links(request),
        "csrf_token": await csrf_token(request),
        "user": request.get(SITE_USER),
        "request_id": request.get(REQUEST_ID),
    }
    page.update(context or {})
    RENDERING_LANGUAGE.set(page["locale"])
    return aiohttp_jinja2.render_template(template, request, page, status=status)


async def error_page(request: web.Request, status: int, code: str) -> web.Response:
    """A page that says what went wrong (``code`` picks the words), with ``status``."""
    return await render(request, "site/error.html", {"status": status, "code": code}, status=status)


def see_other(location: str) -> web.Response:
    """A 303 to ``location``: after a form post, the browser follows with a GET."""
    return web.Response(status=303, headers={"Location": location})
