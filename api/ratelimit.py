"""Rate limits on guessing and on writes (issue 13): the one place they are decided.

Seven limits, each a ``MATOMETE_RATE_LIMIT_*`` setting in the ``limits`` notation
(``30/minute;300/hour``), counted in a moving window:

- ``sign_in_address`` and ``sign_in_login``: every post of a form that checks a password (the
  confirmation form, the sign-in forms of ``/merchant``, ``/my`` and ``/ops``, the TOTP step,
  the password-change forms), per client address and per login id. ``GUARDED_FORMS`` lists them.
- ``api_key_failures`` and ``ops_token_failures``: failed ``/v1`` API keys and ``/ops/v1``
  tokens, per client address. Only failures count, so a correct key is never slowed by its own
  traffic; once an address is over the limit it is refused before any key lookup.
- ``merchant_writes``: ``/v1`` POST, PATCH and DELETE, per merchant.
- ``camara_requests``: every CAMARA request (reads too: CAMARA answers 429 on every operation),
  per aggregator client; ``camara_token_failures``: failed CAMARA access tokens, per address.

A refusal is a 429 with ``Retry-After`` (whole seconds): product.md §9's error object on the
APIs (``rate_limit_error`` / ``rate_limited``), the sites' error page naming the problem on a
form. The client address is ``api.confirm.client_address`` (trusted proxies respected); an IPv6
client counts by its /64, the block one subscriber's router holds.

The counts live in Redis (``MATOMETE_REDIS_URL``) so every web process sees the same ones, or in
the process's memory without it (the embedded mode). **When Redis does not answer, the limits
fail open**: the request goes on unlimited, ``rate_limit_store_unreachable`` is logged at
warning (once per ``STORE_RETRY_SECONDS``) and counted in ``/metrics``, and the store is not
asked again for that long, so an outage costs no request more than one short timeout. Payments
and sign-ins keep working; the per-ID lockout (five wrong passwords) still stands behind the
sign-in forms, and API keys are too long to guess without a limit.

Logs name the limit and a 12-character hash of its key, never the key itself (an address, a
login id, an e-mail); no password or API key reaches this module.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from aiohttp_session import get_session
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage, RedisStorage, Storage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError
from prometheus_client import Counter
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from api.confirm import client_address
from api.http import json_response
from api.keys import SETTINGS
from api.merchant_site.access import staff_of
from api.merchant_site.auth import PENDING_KEY
from api.my_site.access import account_of
from api.site.pages import error_page
from billing.errors import AuthenticationFailed, RateLimited
from settings import Settings

__all__ = [
    "GUARDED_FORMS",
    "LIMITS",
    "RATE_LIMITER",
    "GuardedForm",
    "Limiter",
    "failed_auth_limit",
    "form_limit_middleware",
    "rate_limiter_ctx",
    "write_limit",
]

log = structlog.get_logger("matomete.ratelimit")

LIMITS = (
    "sign_in_address",
    "sign_in_login",
    "api_key_failures",
    "ops_token_failures",
    "merchant_writes",
    "camara_requests",
    "camara_token_failures",
)
STORE_TIMEOUT_SECONDS = 0.5
STORE_RETRY_SECONDS = 5.0
WRITE_METHODS = frozenset({"POST", "PATCH", "DELETE"})

REFUSED = Counter("matomete_rate_limited", "Requests refused with 429, by limit.", ["limit"])
STORE_ERRORS = Counter(
    "matomete_rate_limit_store_errors", "Times the rate-limit store did not answer and the limits failed open."
)


def _hashed(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def _store(settings: Settings) -> Storage:
    if not settings.redis_url:
        return MemoryStorage()
    # One short try per question: a Redis that does not answer costs a request one timeout, not
    # redis-py's default retries with back-off (the limits then fail open for a while).
    client_options: dict[str, Any] = {
        "socket_timeout": STORE_TIMEOUT_SECONDS,
        "socket_connect_timeout": STORE_TIMEOUT_SECONDS,
        "retry": Retry(NoBackoff(), 0),
    }
    return RedisStorage(
        "async+" + settings.redis_url,
        implementation="redispy",
        wrap_exceptions=True,
        key_prefix="matomete:ratelimit",
        **client_options,
    )


class Limiter:
    """The limits of one web process, on the store every process shares."""

    def __init__(self, settings: Settings, storage: Storage | None = None) -> None:
        self.storage = storage or _store(settings)
        self.strategy = MovingWindowRateLimiter(self.storage)
        self.limits: dict[str, tuple[RateLimitItem, ...]] = {
            name: tuple(parse_many(getattr(settings, f"rate_limit_{name}"))) for name in LIMITS
        }
        self._store_down_until = 0.0
        if not settings.redis_url and not settings.embedded:
            log.warning("rate_limits_in_process_memory", hint="set MATOMETE_REDIS_URL so every web process shares them")
        # What a store that does not answer raises (``wrap_exceptions`` turns Redis's errors
        # into ``StorageError``): the limits then fail open.
        self._store_errors: tuple[type[BaseException], ...] = (StorageError, OSError, TimeoutError)

    async def hit(self, name: str, key: str) -> int | None:
        """Count one request of limit ``name`` for ``key``: None when allowed, else the seconds
        to wait (the request that crosses the limit is the first one refused)."""
        return await self._ask(name, key, consume=True)

    async def check(self, name: str, key: str) -> int | None:
        """Like ``hit`` without counting: None while ``key`` is under every window of ``name``."""
        return await self._ask(name, key, consume=False)

    async def _ask(self, name: str, key: str, *, consume: bool) -> int | None:
        if time.monotonic() < self._store_down_until:
            return None
        hashed = _hashed(key)
        try:
            for item in self.limits[name]:
                allowed = await (self.strategy.hit if consume else self.strategy.test)(item, name, hashed)
                if not allowed:
                    reset_time, _ = await self.strategy.get_window_stats(item, name, hashed)
                    wait = max(1, math.ceil(reset_time - time.time()))
                    REFUSED.labels(name).inc()
                    log.info("rate_limited", limit=name, key=hashed[:12], window=str(item), retry_after=wait)
                    return wait
        except self._store_errors as error:
            self._store_down_until = time.monotonic() + STORE_RETRY_SECONDS
            STORE_ERRORS.inc()
            log.warning(
                "rate_limit_store_unreachable",
                limit=name,
                error=type(error).__name__,
                failing_open_seconds=STORE_RETRY_SECONDS,
            )
        return None

    async def close(self) -> None:
        """Close the store's connections (Redis) or stop its expiry task (memory)."""
        if isinstance(self.storage, RedisStorage):
            bridge: Any = self.storage.bridge
            await bridge.storage.aclose()
        elif isinstance(self.storage, MemoryStorage) and self.storage.timer is not None:
            self.storage.timer.cancel()


RATE_LIMITER = web.AppKey("rate_limiter", Limiter)


def rate_limiter_ctx(limiter: Limiter) -> Callable[[web.Application], AsyncIterator[None]]:
    """A ``cleanup_ctx`` that closes the limiter's store when the application stops."""

    async def lifetime(_app: web.Application) -> AsyncIterator[None]:
        yield
        await limiter.close()

    return lifetime


def _limiter(request: web.Request) -> Limiter:
    return request.config_dict[RATE_LIMITER]


def address_key(request: web.Request) -> str:
    """The client address a limit counts by; an IPv6 address by its /64."""
    address = client_address(request, request.config_dict[SETTINGS])
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return str(parsed)


def _api_refusal(wait: int) -> web.Response:
    error = RateLimited(f"Too many requests; retry after {wait} seconds.", retry_after=wait)
    return json_response(error.as_dict(), status=error.status, headers={"Retry-After": str(wait)})


async def _page_refusal(request: web.Request, wait: int) -> web.Response:
    response = await error_page(request, RateLimited.status, RateLimited.code)
    response.headers["Retry-After"] = str(wait)
    return response


# ---- the APIs ----------------------------------------------------------------------------


def failed_auth_limit(name: str) -> Middleware:
    """A sub-application's outermost middleware: an address over limit ``name`` is refused
    before its credentials are looked at; a request whose credentials fail counts once."""

    @web.middleware
    async def limited(request: web.Request, handler: Handler) -> web.StreamResponse:
        limiter, address = _limiter(request), address_key(request)
        wait = await limiter.check(name, address)
        if wait is not None:
            return _api_refusal(wait)
        try:
            return await handler(request)
        except AuthenticationFailed:
            await limiter.hit(name, address)
            raise

    return limited


def write_limit(name: str, key: Callable[[web.Request], str | None]) -> Middleware:
    """A middleware after authentication: every POST, PATCH and DELETE counts against limit
    ``name`` for ``key(request)`` (the merchant; None on a public path, not counted)."""

    @web.middleware
    async def limited(request: web.Request, handler: Handler) -> web.StreamResponse:
        owner = key(request) if request.method in WRITE_METHODS else None
        if owner is not None:
            wait = await _limiter(request).hit(name, owner)
            if wait is not None:
                return _api_refusal(wait)
        return await handler(request)

    return limited


# ---- the forms ---------------------------------------------------------------------------


LoginKey = Callable[[web.Request], Awaitable[str]]


def _form_field(name: str) -> LoginKey:
    async def login(request: web.Request) -> str:
        return str((await request.post()).get(name, ""))

    return login


async def _pending_merchant_user(request: web.Request) -> str:
    """The merchant user between password and TOTP code."""
    pending = (await get_session(request)).get(PENDING_KEY)
    return str(pending.get("user", "")) if isinstance(pending, dict) else ""


async def _signed_in_subscriber(request: web.Request) -> str:
    return account_of(request).login_id


async def _signed_in_merchant_user(request: web.Request) -> str:
    return staff_of(request).user.email


@dataclass(frozen=True)
class GuardedForm:
    """A form that checks a password: whose login ids it takes (``realm``) and where the one
    being tried is."""

    realm: str
    login_id: LoginKey


# Every form that checks a password, by its route; a post counts whatever its outcome.
# Subscriber IDs count together on the confirmation pages and the my page, as their lockout does.
GUARDED_FORMS: dict[str, GuardedForm] = {
    "/confirm/{token}": GuardedForm("subscriber", _form_field("login_id")),
    "/my/login": GuardedForm("subscriber", _form_field("login_id")),
    "/oauth/authorize": GuardedForm("subscriber", _form_field("login_id")),
    "/my/password": GuardedForm("subscriber", _signed_in_subscriber),
    "/merchant/login": GuardedForm("merchant_user", _form_field("email")),
    "/merchant/login/otp": GuardedForm("merchant_totp", _pending_merchant_user),
    "/merchant/account/password": GuardedForm("merchant_user", _signed_in_merchant_user),
    "/ops/login": GuardedForm("staff", _form_field("email")),
}


def _route(request: web.Request) -> str | None:
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else None


@web.middleware
async def form_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Inside each site's guard (language set, sign-in and CSRF checked): a post of a guarded
    form counts against its address, then its login id; over either, the 429 page."""
    form = GUARDED_FORMS.get(_route(request) or "") if request.method == "POST" else None
    if form is None:
        return await handler(request)
    limiter = _limiter(request)
    wait = await limiter.hit("sign_in_address", address_key(request))
    if wait is None:
        login_id = (await form.login_id(request)).strip().lower()
        if login_id:
            wait = await limiter.hit("sign_in_login", f"{form.realm}:{login_id}")
    if wait is not None:
        return await _page_refusal(request, wait)
    return await handler(request)
