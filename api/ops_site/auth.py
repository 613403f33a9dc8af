"""Signing in to the console (e-mail and password; five failures lock for 30 minutes) and out."""

from __future__ import annotations

from aiohttp import web

from api.keys import REQUEST_ID
from api.ops_site.access import acting
from api.site.pages import render, see_other
from api.site.sessions import Site, sign_in, sign_out
from billing.sign_in import SignInOutcome
from models.operations.staff import sign_in_staff

__all__ = ["routes"]

routes = web.RouteTableDef()


def _site() -> Site:
    from api.ops_site import SITE  # the site is defined beside its routes

    return SITE


@routes.get("/ops/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    """The sign-in form."""
    return await render(request, "ops/login.html", {"email": "", "error": None, "next": _site().after_sign_in(request)})


@routes.post("/ops/login")
async def login(request: web.Request) -> web.StreamResponse:
    """Check the e-mail and password under the lockout rule; open a session."""
    form = await request.post()
    email, password = str(form.get("email", "")).strip(), str(form.get("password", ""))
    context = {"email": email, "next": _site().after_sign_in(request)}
    if not email or not password:
        return await render(request, "ops/login.html", {**context, "error": "required"}, status=400)
    outcome, user = await sign_in_staff(email, password, request_id=request.get(REQUEST_ID))
    if outcome == SignInOutcome.LOCKED:
        return await render(request, "ops/login.html", {**context, "error": "locked"}, status=403)
    if user is None:
        return await render(request, "ops/login.html", {**context, "error": "wrong_credentials"}, status=401)
    await sign_in(request, _site(), user.id)
    return see_other(context["next"])


@routes.post("/ops/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    """End the session server-side."""
    await sign_out(request, _site(), actor=acting(request))
    return see_other("/ops/login")
