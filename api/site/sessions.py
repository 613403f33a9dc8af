"""Who is signed in to a site: the encrypted cookie names a server-side session
(``models.operations.site_users``), which ends on sign-out or after 30 minutes idle.

``site_middleware`` guards every path of each registered site: it sets the page language,
refuses a form without the session's CSRF token (403, nothing changes), sends a visitor
without a live session to the sign-in page, and renders errors as pages.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp_session import get_session
from tortoise.exceptions import DoesNotExist

from api.http import holds_control_character
from api.site.i18n import LANGUAGE_COOKIE, LOCALE, ONE_YEAR, chosen_language
from api.site.pages import SITE_USER, csrf_ok, error_page, rotate_csrf_token, see_other
from billing.errors import MatometeError
from models.audit_log import Actor
from models.operations import site_users

__all__ = ["SESSION_ID", "Site", "current_session_id", "sign_in", "sign_out", "site_middleware"]

log = structlog.get_logger("matomete.site")
SESSION_ID = web.RequestKey("site_session_id", str)


@dataclass(frozen=True, kw_only=True)
class Site:
    """One site: where it lives, its public pages, and how a session's user id becomes a user
    (None when the user may no longer sign in)."""

    name: str
    prefix: str
    load_user: Callable[[str], Awaitable[Any | None]]
    public_paths: frozenset[str] = frozenset()
    # False for pages anyone with the link may use (the confirmation pages): no sign-in, and the
    # handlers check the CSRF token themselves so a refused form comes back filled in.
    sign_in_required: bool = True
    excluded_prefixes: tuple[str, ...] = ()
    extra_checks: Sequence[Callable[[web.Request], Awaitable[web.StreamResponse | None]]] = field(default=())

    @property
    def login_path(self) -> str:
        """Where a visitor without a session is sent."""
        return f"{self.prefix}/login"

    def after_sign_in(self, request: web.Request) -> str:
        """Where to go after signing in: the ``next`` page asked for, if it is one of this site's."""
        target = request.query.get("next", "")
        if self.covers(target.split("?", 1)[0]) and not target.startswith("//") and "\\" not in target:
            return target
        return self.prefix

    def covers(self, path: str) -> bool:
        """True for the site's own paths (and not an API mounted under the same prefix)."""
        if path != self.prefix and not path.startswith(self.prefix + "/"):
            return False
        return not path.startswith(self.excluded_prefixes)


def _cookie_key(site: Site | str) -> str:
    return f"{site.name if isinstance(site, Site) else site}_session"


async def sign_in(request: web.Request, site: Site, user_id: str) -> None:
    """Open a session for ``user_id`` and put it in the cookie; the CSRF token changes."""
    session = await get_session(request)
    old = session.get(_cookie_key(site))
    if old:
        await site_users.end_session(str(old))
    session[_cookie_key(site)] = await site_users.open_session(site.name, user_id)
    await rotate_csrf_token(request)


async def sign_out(request: web.Request, site: Site, *, actor: Actor) -> None:
    """End the session server-side (the audit log names ``actor``) and forget it in the cookie."""
    session = await get_session(request)
    session_id = session.pop(_cookie_key(site), None)
    if session_id:
        await site_users.end_session(str(session_id), actor=actor)
    await rotate_csrf_token(request)


def current_session_id(request: web.Request) -> str:
    """The id of the live session this request was signed in with."""
    return request[SESSION_ID]


async def _signed_in_user(request: web.Request, site: Site) -> Any | None:
    session = await get_session(request)
    session_id = session.get(_cookie_key(site))
    if not session_id:
        return None
    live = await site_users.live_session(site.name, str(session_id))
    if live is None:
        session.pop(_cookie_key(site), None)
        return None
    user = await site.load_user(live.user_id)
    if user is None:
        await site_users.end_session(live.id)
        session.pop(_cookie_key(site), None)
        return None
    request[SESSION_ID] = live.id
    return user


async def _holds_control_characters(request: web.Request) -> bool:
    """A query or form value with a control character (NUL...) is refused before any handler:
    PostgreSQL text cannot hold NUL, and none belongs on a page or a bill."""
    values: list[object] = list(request.query.values())
    if request.method == "POST":
        values += [value for value in (await request.post()).values() if isinstance(value, str)]
    return holds_control_character(values)


def site_middleware(sites: Sequence[Site]) -> Middleware:
    """The guard of every site page: language, CSRF, sign-in, and errors as pages."""

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        site = next((s for s in sites if s.covers(request.path)), None)
        if site is None:
            return await handler(request)
        language, asked = chosen_language(request)
        request[LOCALE] = language
        response: web.StreamResponse
        try:
            if await _holds_control_characters(request):
                response = await error_page(request, 400, "control_characters")
            else:
                response = await _guarded(request, handler, site)
        except MatometeError as error:
            response = await error_page(request, error.status, error.code)
        except DoesNotExist:
            response = await error_page(request, 404, "resource_missing")
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = await error_page(request, exc.status, "http_error")
        if asked and request.cookies.get(LANGUAGE_COOKIE) != language:
            response.set_cookie(LANGUAGE_COOKIE, language, max_age=ONE_YEAR, path="/", samesite="Lax", httponly=True)
        return response

    return guard


async def _guarded(request: web.Request, handler: Handler, site: Site) -> web.StreamResponse:
    if not site.sign_in_required:
        return await handler(request)
    if request.method == "POST" and not await csrf_ok(request):
        log.info("csrf_refused", path=request.path)
        return await error_page(request, 403, "csrf")
    if request.path in site.public_paths:
        return await handler(request)
    user = await _signed_in_user(request, site)
    if user is None:
        target = request.path_qs if request.method == "GET" else site.prefix
        return see_other(f"{site.login_path}?next={quote(target, safe='')}")
    request[SITE_USER] = user
    for check in site.extra_checks:
        detour = await check(request)
        if detour is not None:
            return detour
    return await handler(request)
