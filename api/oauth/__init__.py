"""The OAuth 2.0 / OpenID Connect endpoints CAMARA aggregators use (product.md §13).

``/.well-known/openid-configuration`` and ``/oauth/jwks.json`` describe the server;
``/oauth/token`` grants tokens (client credentials, or an authorization code with PKCE) and
answers RFC 6749's JSON errors; ``/oauth/authorize`` is the confirmation sign-in: the subscriber
signs in from their own line (the purchase's checks and lockout) and the client gets a code.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any
from urllib.parse import unquote_plus, urlencode, urlsplit, urlunsplit

from aiohttp import web

from api.confirm import client_address, see_other
from api.http import holds_control_character, json_response
from api.keys import REQUEST_ID, SETTINGS
from api.ratelimit import RATE_LIMITER, address_key
from api.site.pages import csrf_ok, render
from api.site.sessions import Site
from models.operations import oauth
from models.operations.subscribers import sign_in_subscriber
from settings import Settings

__all__ = ["SITE", "discovery_document", "routes"]

routes = web.RouteTableDef()


async def _nobody(_user_id: str) -> None:
    return None


# The authorization page is a confirmation page: anyone may open it (no site session); the
# handler checks the form's CSRF token. The JSON endpoints under /oauth are not pages.
SITE = Site(
    name="oauth",
    prefix="/oauth",
    load_user=_nobody,
    sign_in_required=False,
    excluded_prefixes=("/oauth/token", "/oauth/jwks.json"),
)
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
FAILED_CLIENT_LIMIT = "api_key_failures"  # a wrong client secret counts as a wrong API key does
FORM_TYPE = "application/x-www-form-urlencoded"


def _issuer(request: web.Request) -> str:
    settings: Settings = request.app[SETTINGS]
    return settings.base_url


def discovery_document(issuer: str) -> dict[str, Any]:
    """The OpenID Provider Metadata of the server at ``issuer``."""
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/oauth/authorize",
        "token_endpoint": f"{issuer}/oauth/token",
        "jwks_uri": f"{issuer}/oauth/jwks.json",
        "scopes_supported": list(oauth.CAMARA_SCOPES),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "id_token_signing_alg_values_supported": [oauth.ALGORITHM],
        "subject_types_supported": ["pairwise"],
        "authorization_details_types_supported": [oauth.PAYMENT_DETAILS_TYPE],
        "claims_supported": ["iss", "sub", "aud", "exp", "iat", "auth_time"],
    }


@routes.get("/.well-known/openid-configuration")
async def openid_configuration(request: web.Request) -> web.Response:
    """Where everything is and what is supported (OpenID Connect Discovery 1.0)."""
    return json_response(discovery_document(_issuer(request)))


@routes.get("/oauth/jwks.json")
async def jwks(_request: web.Request) -> web.Response:
    """The public keys access and ID tokens are verified with, rotated ones included."""
    return json_response(await oauth.published_keys(), headers={"Cache-Control": "max-age=60"})


# ---- the token endpoint -----------------------------------------------------------------


def _oauth_error(error: oauth.OAuthError) -> web.Response:
    headers = dict(NO_STORE)
    if error.status == 401:  # RFC 6749 §5.2: the client authentication failed
        headers["WWW-Authenticate"] = 'Basic realm="matomete"'
    return json_response(
        {"error": error.error, "error_description": error.description}, status=error.status, headers=headers
    )


def _credentials(request: web.Request, form: dict[str, str]) -> tuple[str, str]:
    """The client id and secret: HTTP Basic (RFC 6749 §2.3.1, form-encoded parts) or the form."""
    header = request.headers.get("Authorization")
    if header is None:
        if "client_id" in form and "client_secret" in form:
            return form["client_id"], form["client_secret"]
        raise oauth.OAuthError(
            "invalid_client", "Authenticate with client_secret_basic or client_secret_post.", status=401
        )
    if "client_secret" in form:
        raise oauth.OAuthError("invalid_request", "Use one way of client authentication, not two.")
    scheme, _, value = header.partition(" ")
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        decoded = ""
    client_id, colon, secret = decoded.partition(":")
    if scheme.lower() != "basic" or not colon:
        raise oauth.OAuthError("invalid_client", "The Authorization header is not HTTP Basic.", status=401)
    return unquote_plus(client_id), unquote_plus(secret)


async def _grant(request: web.Request, form: dict[str, str]) -> oauth.TokenResponse:
    if holds_control_character([*form, *form.values()]):
        raise oauth.OAuthError("invalid_request", "The request holds control characters.")
    client_id, secret = _credentials(request, form)
    if holds_control_character([client_id, secret]):  # Basic's parts are form-encoded: %00 decodes
        raise oauth.OAuthError("invalid_client", "Client authentication failed.", status=401)
    client = await oauth.authenticate_client(client_id, secret)
    if "client_id" in form and form["client_id"] != client.id:
        raise oauth.OAuthError("invalid_request", "client_id is not the authenticated client.")
    grant_type = form.get("grant_type")
    issuer = _issuer(request)
    if grant_type == "client_credentials":
        return await oauth.client_credentials_token(client, form.get("scope"), issuer=issuer)
    if grant_type == "authorization_code":
        return await oauth.exchange_code(
            client,
            form.get("code", ""),
            redirect_uri=form.get("redirect_uri"),
            code_verifier=form.get("code_verifier"),
            issuer=issuer,
        )
    if not grant_type:
        raise oauth.OAuthError("invalid_request", "grant_type is required.")
    raise oauth.OAuthError("unsupported_grant_type", "Use client_credentials or authorization_code.")


@routes.post("/oauth/token")
async def token(request: web.Request) -> web.Response:
    """A token for an authenticated client: RFC 6749 §5 answers, never cached."""
    limiter, address = request.config_dict[RATE_LIMITER], address_key(request)
    wait = await limiter.check(FAILED_CLIENT_LIMIT, address)
    if wait is not None:
        body = {
            "error": "invalid_request",
            "error_description": f"Too many failed attempts; retry after {wait} seconds.",
        }
        return json_response(body, status=429, headers={**NO_STORE, "Retry-After": str(wait)})
    if request.content_type != FORM_TYPE:
        return _oauth_error(oauth.OAuthError("invalid_request", f"The body must be {FORM_TYPE}."))
    form = {name: value for name, value in (await request.post()).items() if isinstance(value, str)}
    try:
        answer = await _grant(request, form)
    except oauth.OAuthError as error:
        if error.error == "invalid_client":
            await limiter.hit(FAILED_CLIENT_LIMIT, address)
        return _oauth_error(error)
    return json_response(answer.as_dict(), headers=NO_STORE)


# ---- the authorization page -------------------------------------------------------------


def _with_query(uri: str, params: dict[str, str | None]) -> str:
    parts = urlsplit(uri)
    added = urlencode({name: value for name, value in params.items() if value is not None})
    return urlunsplit(parts._replace(query=f"{parts.query}&{added}" if parts.query else added))


def _back_to_client(refusal: oauth.BadAuthorizationRequest) -> web.Response:
    params = {"error": refusal.error, "error_description": refusal.description, "state": refusal.state}
    return see_other(_with_query(refusal.redirect_uri, params))


async def _checked(request: web.Request) -> oauth.AuthorizationRequest | web.Response:
    """The request, or the answer to a bad one: a page when the client or its redirect URI is
    unknown (never a redirect there), else a redirect with RFC 6749's ``error``."""
    query = {name: request.query.getone(name) for name in request.query}
    try:
        return await oauth.check_authorization_request(query)
    except oauth.UnknownClientOrRedirect as problem:
        return await render(request, "oauth/error.html", {"code": problem.code}, status=400)
    except oauth.BadAuthorizationRequest as refusal:
        return _back_to_client(refusal)


async def _form(
    request: web.Request,
    asked: oauth.AuthorizationRequest,
    *,
    error: str | None = None,
    status: int = 200,
    login_id: str = "",
) -> web.Response:
    context = {
        "client_name": asked.client.name,
        "scopes": [scope for scope in asked.scopes if scope != "openid"],
        "payments": asked.authorization_details,
        "error": error,
        "login_id": login_id,
        "action_url": request.path_qs,
    }
    return await render(request, "oauth/authorize.html", context, status=status)


@routes.get("/oauth/authorize")
async def show_authorization(request: web.Request) -> web.StreamResponse:
    """Who asks, for what (and how much), and the sign-in form."""
    asked = await _checked(request)
    if isinstance(asked, web.Response):
        return asked
    return await _form(request, asked)


# A refused sign-in's status: a wrong ID or password is unauthenticated; the rest are refusals.
REFUSAL_STATUS = {"invalid_credentials": 401}


def _form_problem(action: object, login_id: str, password: str) -> tuple[int, str] | None:
    """The status and problem code of a form that cannot be answered as sent."""
    if action not in ("allow", "decline"):
        return 400, "choose_action"
    if action == "allow" and (not login_id or not password):
        return 400, "credentials_required"
    return None


@routes.post("/oauth/authorize")
async def answer_authorization(request: web.Request) -> web.StreamResponse:
    """Sign in from the line (a purchase's checks and lockout) and send the client its code; or
    decline and send it ``access_denied``."""
    asked = await _checked(request)
    if isinstance(asked, web.Response):
        return asked
    form = await request.post()
    login_id, password, action = (
        str(form.get("login_id", "")).strip(),
        str(form.get("password", "")),
        form.get("action"),
    )
    problem = (403, "csrf") if not await csrf_ok(request) else _form_problem(action, login_id, password)
    if problem is not None:
        return await _form(request, asked, status=problem[0], login_id=login_id, error=problem[1])
    if action == "decline":
        return _back_to_client(
            oauth.BadAuthorizationRequest(
                "access_denied", "The subscriber declined.", redirect_uri=asked.redirect_uri, state=asked.state
            )
        )
    attempt = await sign_in_subscriber(
        login_id,
        password,
        client_address=client_address(request, request.app[SETTINGS]),
        request_id=request.get(REQUEST_ID),
    )
    if attempt.account is None:
        code = attempt.failure_code or "invalid_credentials"
        return await _form(request, asked, status=REFUSAL_STATUS.get(code, 403), login_id=login_id, error=code)
    code = await oauth.create_authorization_code(asked, attempt.account)
    return see_other(_with_query(asked.redirect_uri, {"code": code, "state": asked.state}))
