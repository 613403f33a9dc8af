"""Signing in to the merchant site: e-mail and password (lockout after 5 failures), then a TOTP
code when the user has one; signing out; the user's own account page (password, TOTP)."""

from __future__ import annotations

import time

import segno
from aiohttp import web
from aiohttp_session import get_session

from api.keys import REQUEST_ID
from api.merchant_site.access import acting, staff_of
from api.site.pages import render, see_other
from api.site.sessions import Site, current_session_id, sign_in, sign_out
from billing.errors import InvalidRequest
from billing.sign_in import SignInOutcome
from models.operations import site_users

__all__ = ["PENDING_KEY", "routes", "totp_enrolment_detour"]

routes = web.RouteTableDef()
PENDING_KEY = "merchant_pending"
PENDING_SECONDS = 300
ENROL_PATH = "/merchant/account/totp"


def _next(request: web.Request) -> str:
    """Where to go after signing in: the page asked for, if it is one of this site's."""
    return _site(request).after_sign_in(request)


def _site(request: web.Request) -> Site:
    from api.merchant_site import SITE  # the site is defined beside its routes

    del request
    return SITE


@routes.get("/merchant/login")
async def login_form(request: web.Request) -> web.StreamResponse:
    """The sign-in form."""
    return await render(request, "merchant/login.html", {"email": "", "error": None, "next": _next(request)})


@routes.post("/merchant/login")
async def login(request: web.Request) -> web.StreamResponse:
    """Check the e-mail and password; then the TOTP step, or straight in."""
    form = await request.post()
    email, password = str(form.get("email", "")).strip(), str(form.get("password", ""))
    context = {"email": email, "next": _next(request)}
    if not email or not password:
        return await render(request, "merchant/login.html", {**context, "error": "required"}, status=400)
    attempt = await site_users.sign_in_merchant_user(email, password, request_id=request.get(REQUEST_ID))
    if attempt.outcome == SignInOutcome.LOCKED:
        return await render(request, "merchant/login.html", {**context, "error": "locked"}, status=403)
    if attempt.user is None:
        return await render(request, "merchant/login.html", {**context, "error": "wrong_credentials"}, status=401)
    if attempt.needs_totp:
        session = await get_session(request)
        session[PENDING_KEY] = {"user": attempt.user.id, "at": time.time()}
        return see_other(f"/merchant/login/otp?next={context['next']}")
    await sign_in(request, _site(request), attempt.user.id)
    return see_other(context["next"])


@routes.get("/merchant/login/otp")
async def otp_form(request: web.Request) -> web.StreamResponse:
    """The second step: a code from the user's authenticator app."""
    if await _pending_user(request) is None:
        return see_other("/merchant/login")
    return await render(request, "merchant/otp.html", {"error": None, "next": _next(request)})


@routes.post("/merchant/login/otp")
async def otp(request: web.Request) -> web.StreamResponse:
    """Check the code; five wrong codes lock the user like five wrong passwords."""
    user_id = await _pending_user(request)
    if user_id is None:
        return see_other("/merchant/login")
    code = str((await request.post()).get("otp", "")).strip().replace(" ", "")
    attempt = await site_users.second_step(user_id, code, request_id=request.get(REQUEST_ID))
    context = {"next": _next(request)}
    if attempt.outcome == SignInOutcome.LOCKED:
        (await get_session(request)).pop(PENDING_KEY, None)
        return await render(request, "merchant/login.html", {**context, "email": "", "error": "locked"}, status=403)
    if attempt.user is None:
        return await render(request, "merchant/otp.html", {**context, "error": "wrong_otp"}, status=401)
    (await get_session(request)).pop(PENDING_KEY, None)
    await sign_in(request, _site(request), attempt.user.id)
    return see_other(context["next"])


async def _pending_user(request: web.Request) -> str | None:
    pending = (await get_session(request)).get(PENDING_KEY)
    if not isinstance(pending, dict) or time.time() - float(pending.get("at", 0)) > PENDING_SECONDS:
        return None
    return str(pending["user"])


@routes.post("/merchant/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    """End the session server-side; the cookie no longer signs anyone in."""
    await sign_out(request, _site(request), actor=acting(request))
    return see_other("/merchant/login")


async def _account(request: web.Request, *, status: int = 200, **context: object) -> web.Response:
    staff = staff_of(request)
    qr = None
    if staff.user.totp_secret and not staff.user.totp_enabled:
        qr = segno.make(site_users.totp_uri(staff.user), error="m").svg_data_uri(scale=4)
    page = {"errors": {}, "saved": None, "enrolling": False, "qr": qr, "totp_secret": staff.user.totp_secret, **context}
    return await render(request, "merchant/account.html", page, status=status)


@routes.get("/merchant/account")
async def account(request: web.Request) -> web.StreamResponse:
    """The user's own account: change the password, set up TOTP."""
    return await _account(request, saved=request.query.get("saved"))


@routes.post("/merchant/account/password")
async def change_password(request: web.Request) -> web.StreamResponse:
    """A new password (current one checked; twice; not weak); the user's other sessions end."""
    staff = staff_of(request)
    form = await request.post()
    new = str(form.get("new_password", ""))
    if new != str(form.get("new_password_confirmation", "")):
        return await _account(request, status=400, errors={"new_password_confirmation": "passwords_differ"})
    try:
        await site_users.change_password(
            staff.user,
            current=str(form.get("current_password", "")),
            new=new,
            keep_session=current_session_id(request),
            actor=acting(request),
        )
    except InvalidRequest as problem:
        return await _account(request, status=400, errors={problem.param or "new_password": problem.code})
    return see_other("/merchant/account?saved=password")


@routes.get(ENROL_PATH)
async def totp_enrolment(request: web.Request) -> web.StreamResponse:
    """Start TOTP: a secret and its QR code; it turns on once a code from it is confirmed."""
    await site_users.start_totp_enrolment(staff_of(request).user)
    return await _account(request, enrolling=True)


@routes.post(ENROL_PATH)
async def confirm_totp(request: web.Request) -> web.StreamResponse:
    """Turn TOTP on with a code from the new secret; a wrong code changes nothing."""
    code = str((await request.post()).get("otp", "")).strip().replace(" ", "")
    if not await site_users.confirm_totp(staff_of(request).user, code, actor=acting(request)):
        return await _account(request, status=400, enrolling=True, errors={"otp": "wrong_otp"})
    return see_other("/merchant/account?saved=totp")


async def totp_enrolment_detour(request: web.Request) -> web.StreamResponse | None:
    """While the merchant requires TOTP and this user has none, every page leads to enrolment."""
    staff = staff_of(request)
    if not staff.merchant.require_totp or staff.user.totp_enabled:
        return None
    if request.path in (ENROL_PATH, "/merchant/logout"):
        return None
    return see_other(ENROL_PATH)
