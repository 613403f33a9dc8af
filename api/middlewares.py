"""Request-wide middleware: a request id bound to every log line, and one place where any
error becomes product.md §9's error object (never a bare 500 page)."""

from __future__ import annotations

import asyncio
import re
import secrets
import time

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from tortoise.exceptions import DoesNotExist

from api.http import json_response
from api.keys import REQUEST_ID
from billing.errors import MatometeError, NotFound

__all__ = ["error_middleware", "loggable_path", "request_id_middleware"]

log = structlog.get_logger("matomete.http")
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
# A confirmation URL's token is a bearer secret: whoever holds it may answer the purchase.
BEARER_PATH = re.compile(r"^(/confirm/)[^/]+")
JSON_PREFIXES = ("/v1", "/ops/v1", "/readyz", "/healthz", "/oauth/token", "/oauth/jwks.json", "/.well-known/")
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before the answer (never sent)
INTERNAL_ERROR = {
    "error": {
        "type": "api_error",
        "code": "internal_error",
        "message": "Something went wrong on our side; nothing was changed.",
        "param": None,
    }
}


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Take a sane ``X-Request-Id`` or make one; bind it to the logs; echo it back."""
    offered = request.headers.get("X-Request-Id", "")
    request_id = offered if REQUEST_ID_PATTERN.match(offered) else "req_" + secrets.token_hex(12)
    request[REQUEST_ID] = request_id
    structlog.contextvars.bind_contextvars(request_id=request_id)
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        status = exc.status
        exc.headers["X-Request-Id"] = request_id
        raise
    except asyncio.CancelledError:  # a server cancelling handlers whose client left, or shutdown
        if _client_gone(request):
            status = CLIENT_CLOSED_REQUEST
        raise
    else:
        status = response.status
        response.headers["X-Request-Id"] = request_id
        return response
    finally:
        log.info(
            "request",
            method=request.method,
            path=loggable_path(request.path),
            status=status,
            duration_ms=round((time.perf_counter() - started) * 1000, 1),
        )
        structlog.contextvars.unbind_contextvars("request_id")


def loggable_path(path: str) -> str:
    """``path`` with any bearer secret in it (a confirmation token) masked, for the logs."""
    return BEARER_PATH.sub(r"\1***", path)


def _wants_json(request: web.Request) -> bool:
    return request.path.startswith(JSON_PREFIXES)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Render rule errors, HTTP errors on JSON surfaces, and crashes as the error object."""
    try:
        return await handler(request)
    except MatometeError as error:
        return json_response(error.as_dict(), status=error.status)
    except DoesNotExist:
        return json_response(NotFound("No such object.").as_dict(), status=404)
    except web.HTTPException as exc:
        if not _wants_json(request) or exc.status < 400:
            raise
        code = {404: "resource_missing", 405: "method_not_allowed", 413: "body_too_large"}.get(exc.status, "http_error")
        body = {"error": {"type": "invalid_request_error", "code": code, "message": exc.reason, "param": None}}
        # RFC 9110: a 405 names the methods the resource has (aiohttp's exception carries them).
        kept = {name: exc.headers[name] for name in ("Allow", "Retry-After") if name in exc.headers}
        return json_response(body, status=exc.status, headers=kept or None)
    except asyncio.CancelledError:
        if _client_gone(request):
            log.info("client_disconnected", path=loggable_path(request.path), error="cancelled")
        raise
    except ConnectionError as error:
        return _connection_error(request, error)
    except Exception:
        log.exception("unhandled_error", path=loggable_path(request.path))
        return json_response(INTERNAL_ERROR, status=500)


def _connection_error(request: web.Request, error: ConnectionError) -> web.Response:
    """The answer to a ``ConnectionError``. Once the client has gone, aiohttp fails the body's
    read with ``ConnectionResetError("Connection lost")`` and a write with
    ``ClientConnectionResetError`` (a ``ConnectionResetError``): nobody is there to answer and
    nothing is wrong on our side (an info line, a 499 in the request log). A ``ConnectionError``
    with the client still there is a crash like any other."""
    if not _client_gone(request):
        log.error("unhandled_error", path=loggable_path(request.path), exc_info=error)
        return json_response(INTERNAL_ERROR, status=500)
    log.info("client_disconnected", path=loggable_path(request.path), error=repr(error))
    return web.Response(status=CLIENT_CLOSED_REQUEST)


def _client_gone(request: web.Request) -> bool:
    """True when the client's connection is closed (a ``ConnectionError`` from the database or
    Redis, with the client still there, is a crash like any other)."""
    transport = request.transport
    return transport is None or transport.is_closing()
