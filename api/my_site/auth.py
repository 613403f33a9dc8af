"""Signing in to the my page with the carrier ID and password, under a purchase's own rules
(product.md §4, §10); signing out; changing the ID's password."""

from __future__ import annotations

from aiohttp import web

from api.confirm import client_address
from api.keys import REQUEST_ID, SETTINGS
from api.my_site.access import account_of, acting
from api.site.pages import render, see_other
from api.site.sessions import Site, current_session_id, sign_in, sign_out
from billing.errors import MatometeError
from models.operations import subscribers

__all__ = ["routes"]

routes = web.RouteTableDef()
PASSWORD_PATH = "/my/password"  # noqa: S105 - a page address
# A refused sign-in's status: a wrong ID or password is unauthenticated; the rest are refusals.
REFUSAL_STATUS = {"invalid_credentials": 401}


def _site() -> Site:
    from api.my_site import SITE  # the site is defined beside its routes

    return SITE


@routes.get("/my/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    """The sign-in form: the carrier ID and its password."""
    return await render(
        request, "my/login.html", {"login_id": "", "error": None, "next": _site().after_sign_in(request)}
    )


@routes.post("/my/login")
async def login(request: web.Request) -> web.StreamResponse:
    """Check the ID, the password, the lock, the line and the address; a refusal names its reason."""
    form = await request.post()
    login_id, password = str(form.get("login_id", "")).strip(), str(form.get("password", ""))
    context = {"login_id": login_id, "next": _site().after_sign_in(request)}
    if not login_id or not password:
        return await render(request, "my/login.html", {**context, "error": "required"}, status=400)
    attempt = await subscribers.sign_in_subscriber(
        login_id,
        password,
        client_address=client_address(request, request.app[SETTINGS]),
        request_id=request.get(REQUEST_ID),
    )
    if attempt.account is None:
        code = attempt.failure_code or "invalid_credentials"
        return await render(request, "my/login.html", {**context, "error": code}, status=REFUSAL_STATUS.get(code, 403))
    await sign_in(request, _site(), attempt.account.id)
    return see_other(str(context["next"]))


@routes.post("/my/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    """End the session server-side; the cookie no longer signs anyone in."""
    await sign_out(request, _site(), actor=acting(request))
    return see_other("/my/login")


async def _password_page(request: web.Request, *, status: int = 200, **context: object) -> web.Response:
    page = {"errors": {}, "saved": request.query.get("saved") == "1", **context}
    return await render(request, "my/password.html", page, status=status)


@routes.get(PASSWORD_PATH)
async def password_form(request: web.Request) -> web.StreamResponse:
    """The form to change the ID's password."""
    return await _password_page(request)


@routes.post(PASSWORD_PATH)
async def change_password(request: web.Request) -> web.StreamResponse:
    """A new password (current one checked; twice; at least 10 characters; not the ID); the ID's
    other my-page sessions end. Bad input is named and changes nothing."""
    form = await request.post()
    new = str(form.get("new_password", ""))
    if new != str(form.get("new_password_confirmation", "")):
        return await _password_page(request, status=400, errors={"new_password_confirmation": "passwords_differ"})
    try:
        await subscribers.change_subscriber_password(
            account_of(request),
            current=str(form.get("current_password", "")),
            new=new,
            keep_session=current_session_id(request),
            actor=acting(request),
        )
    except MatometeError as problem:
        return await _password_page(
            request, status=problem.status, errors={problem.param or "new_password": problem.code}
        )
    return see_other(f"{PASSWORD_PATH}?saved=1")
