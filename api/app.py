"""The application factory: ``create_app(settings)`` builds every surface of the web process."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator, Callable

import aiohttp_session
from aiohttp import web
from aiohttp_session.cookie_storage import EncryptedCookieStorage
from cryptography.fernet import Fernet

import queues
from api import confirm, health, metrics, oauth
from api import demo as demo_routes
from api.camara import camara_apps
from api.keys import BROKER_PROBE, SETTINGS
from api.merchant import merchant_app
from api.merchant_site import ROUTES as MERCHANT_SITE_ROUTES
from api.merchant_site import SITE as MERCHANT_SITE
from api.middlewares import error_middleware, request_id_middleware
from api.my_site import ROUTES as MY_SITE_ROUTES
from api.my_site import SITE as MY_SITE
from api.ops import ops_app
from api.ops_site import ROUTES as OPS_SITE_ROUTES
from api.ops_site import SITE as OPS_SITE
from api.ratelimit import RATE_LIMITER, Limiter, form_limit_middleware, rate_limiter_ctx
from api.site import setup_sites
from models.clock import clock
from models.operations import oauth as oauth_server
from models.operations.decisions import DecisionWaiters
from settings import Settings, SettingsError
from settings.database import connected

__all__ = ["create_app"]

MAX_BODY_BYTES = 1024 * 1024


def _database_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def database(_app: web.Application) -> AsyncIterator[None]:
        async with connected(settings):
            yield

    return database


def _decisions_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    async def decisions(app: web.Application) -> AsyncIterator[None]:
        app[confirm.DECISIONS] = waiters = DecisionWaiters(settings.database_url)
        yield
        await waiters.close()

    return decisions


def create_app(
    settings: Settings, *, broker_probe: Callable[[], bool] | None = None, demo: bool = False
) -> web.Application:
    """The aiohttp application for ``settings``; the database opens on start-up, closes on exit."""
    clock.configure(test_clock=settings.test_clock)
    oauth_server.configure(secret_key=settings.secret_key)
    app = web.Application(
        middlewares=[metrics.metrics_middleware, request_id_middleware, error_middleware],
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    app[BROKER_PROBE] = broker_probe or queues.broker_probe(settings)
    app.cleanup_ctx.append(_database_ctx(settings))
    app.cleanup_ctx.append(_decisions_ctx(settings))
    app[RATE_LIMITER] = limiter = Limiter(settings)
    app.cleanup_ctx.append(rate_limiter_ctx(limiter))
    aiohttp_session.setup(app, _cookie_storage(settings))
    setup_sites(app, [MERCHANT_SITE, MY_SITE, OPS_SITE, confirm.SITE, oauth.SITE])
    app.middlewares.append(form_limit_middleware)  # inside the sites' guard: language, sign-in, CSRF
    app.add_routes(health.routes)
    app.add_routes(metrics.routes)
    app.add_routes(confirm.routes)
    app.add_routes(oauth.routes)
    for routes in (*MERCHANT_SITE_ROUTES, *MY_SITE_ROUTES, *OPS_SITE_ROUTES):
        app.add_routes(routes)
    if demo:
        app.add_routes(demo_routes.routes)
    app.add_subapp("/ops/v1", ops_app(settings))
    app.add_subapp("/v1", merchant_app(settings))
    for prefix, camara_app in camara_apps(settings):
        app.add_subapp(prefix, camara_app)
    return app


def _cookie_storage(settings: Settings) -> EncryptedCookieStorage:
    """Encrypted, signed session cookies keyed from ``MATOMETE_SECRET_KEY``."""
    if not settings.secret_key:
        raise SettingsError("SECRET_KEY", "is required to serve pages (cookie sessions)")
    key = hashlib.sha256(b"matomete/session/" + settings.secret_key.encode()).digest()
    return EncryptedCookieStorage(
        Fernet(base64.urlsafe_b64encode(key)),
        cookie_name="matomete_session",
        httponly=True,
        samesite="Lax",
        secure=settings.base_url.startswith("https://"),
    )
