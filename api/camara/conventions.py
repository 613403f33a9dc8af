"""CAMARA's conventions on its paths: errors, ``x-correlator``, access tokens and scopes, limits.

Order of checks for every operation: the access token (401 ``UNAUTHENTICATED``; failures count
against ``camara_token_failures`` per client address, and an address over it is refused first),
the operation's scope (403 ``PERMISSION_DENIED``), the client's request limit
(``camara_requests``, 429 ``TOO_MANY_REQUESTS``), the ``x-correlator`` header (400), then the
operation's own parsing and rules.
"""

from __future__ import annotations

import asyncio
import functools
import re
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from pydantic import BaseModel, ValidationError

from api.http import json_response, whole_numbers
from api.keys import SETTINGS
from api.ratelimit import RATE_LIMITER, address_key
from models.operations.camara import Caller, Refusal
from models.operations.oauth import TokenRejected, verify_access_token

__all__ = [
    "CORRELATOR",
    "camara_middleware",
    "error_body",
    "operation",
    "parse",
]

log = structlog.get_logger("matomete.camara")
CORRELATOR = "x-correlator"
CORRELATOR_PATTERN = re.compile(r"^[a-zA-Z0-9-_:;.\/<>{}]{0,256}$")
M = TypeVar("M", bound=BaseModel)
CamaraHandler = Callable[[web.Request, Caller], Awaitable[web.StreamResponse]]
# aiohttp's own refusals (an unknown path, a wrong method, a body over the limit) in CAMARA's words.
HTTP_CODES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    413: "INVALID_ARGUMENT",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "TOO_MANY_REQUESTS",
}


def error_body(status: int, code: str, message: str) -> dict[str, Any]:
    """CAMARA's ``ErrorInfo``."""
    return {"status": status, "code": code, "message": message}


def _correlator(request: web.Request) -> str | None:
    """The request's ``x-correlator`` if it is one CAMARA allows (else it is not echoed)."""
    value = request.headers.get(CORRELATOR)
    return value if value is not None and CORRELATOR_PATTERN.match(value) else None


@web.middleware
async def camara_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every answer on a CAMARA path: errors as ``ErrorInfo``, ``x-correlator`` echoed and bound."""
    correlator = _correlator(request)
    if correlator is not None:
        structlog.contextvars.bind_contextvars(correlator=correlator)
    try:
        response = await _answer(request, handler)
    finally:
        structlog.contextvars.unbind_contextvars("correlator")
    if correlator is not None:
        response.headers[CORRELATOR] = correlator
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Refusal as refusal:
        headers = {"Retry-After": str(refusal.retry_after)} if isinstance(refusal, Limited) else None
        body = error_body(refusal.status, refusal.code, refusal.message)
        return json_response(body, status=refusal.status, headers=headers)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = HTTP_CODES.get(exc.status, "INVALID_ARGUMENT" if exc.status < 500 else "INTERNAL")
        kept = {name: exc.headers[name] for name in ("Allow", "Retry-After") if name in exc.headers}
        return json_response(error_body(exc.status, code, exc.reason), status=exc.status, headers=kept or None)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("unhandled_error", path=request.path)
        return json_response(error_body(500, "INTERNAL", "Something went wrong on our side."), status=500)


class Limited(Refusal):
    """429 with how long to wait."""

    def __init__(self, wait: int) -> None:
        super().__init__(429, "TOO_MANY_REQUESTS", f"Too many requests; retry after {wait} seconds.")
        self.retry_after = wait


async def _authenticate(request: web.Request) -> Caller:
    limiter = request.config_dict[RATE_LIMITER]
    address = address_key(request)
    wait = await limiter.check("camara_token_failures", address)
    if wait is not None:
        raise Limited(wait)
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    try:
        if scheme.lower() != "bearer" or not token.strip():
            raise TokenRejected("invalid")  # noqa: TRY301 - counted and answered as any other failure
        access = await verify_access_token(token.strip(), issuer=request.config_dict[SETTINGS].base_url)
    except TokenRejected as rejected:
        await limiter.hit("camara_token_failures", address)
        message = (
            "The access token has expired." if rejected.reason == "expired" else "A valid access token is required."
        )
        raise Refusal(401, "UNAUTHENTICATED", message) from None
    return Caller(
        client_id=access.client_id,
        merchant_id=access.merchant_id,
        subject=access.subject,
        account_id=access.account_id,
        line_id=access.line_id,
        authorization_details=tuple(access.authorization_details),
        token_id=access.jti,
        scopes=access.scopes,
    )


def operation(scope: str) -> Callable[[CamaraHandler], Handler]:
    """A CAMARA operation needing ``scope``: the handler gets the authenticated caller."""

    def decorate(handler: CamaraHandler) -> Handler:
        @functools.wraps(handler)
        async def checked(request: web.Request) -> web.StreamResponse:
            caller = await _authenticate(request)
            if scope not in caller.scopes:
                raise Refusal(403, "PERMISSION_DENIED", f"The access token does not carry the scope {scope}.")
            wait = await request.config_dict[RATE_LIMITER].hit("camara_requests", caller.client_id)
            if wait is not None:
                raise Limited(wait)
            if CORRELATOR in request.headers and _correlator(request) is None:
                raise Refusal(400, "INVALID_ARGUMENT", "The x-correlator header does not match its pattern.")
            structlog.contextvars.bind_contextvars(camara_client=caller.client_id)
            try:
                return await handler(request, caller)
            finally:
                structlog.contextvars.unbind_contextvars("camara_client")

        return checked

    return decorate


def _named(error: ValidationError) -> str:
    first = error.errors(include_url=False)[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "json_invalid":
        return "The body is not valid JSON."
    if first["type"] == "missing":
        return f"Missing required property: {where}."
    return f"Invalid {where or 'body'}: {first['msg']}."


async def parse(request: web.Request, model: type[M]) -> M:
    """The body as ``model`` (every body is required: an empty one is a 400, ``{}`` is an object)."""
    raw = await request.read()
    if not raw.strip():
        raise Refusal(400, "INVALID_ARGUMENT", "A request body is required.")
    try:
        return model.model_validate_json(whole_numbers(raw))
    except ValidationError as error:
        raise Refusal(400, "INVALID_ARGUMENT", _named(error)) from None
