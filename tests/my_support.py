"""Helpers for the my page's tests: an app that trusts the test client as a proxy (so
``X-Forwarded-For`` says which line's address a request comes from), browsers with their own
cookies, and purchases confirmed from a chosen address."""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import aiohttp
import pytest
from sites_support import CSRF_FIELD

from settings import Settings
from tests_support import MERCHANT_BODY, line_body, purchase

OTHER_LINE = "CAF0000001002"
AWAY = "198.51.100.7"  # the other line's address


@pytest.fixture(name="client")
async def proxied_client(aiohttp_client: Any, settings: Settings) -> Any:
    """The whole application behind a proxy at 127.0.0.1 (the test client): a request with
    ``X-Forwarded-For`` comes from that address, one without from 127.0.0.1."""
    from api.app import create_app

    trusting = replace(settings, trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),))
    return await aiohttp_client(create_app(trusting))


class MyBrowser:
    """A browser without JavaScript at one address, with its own cookies: it reads each form's
    CSRF token and sends it back."""

    def __init__(self, client: Any, *, address: str | None = None) -> None:
        self.client = client
        self.session = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.headers = {"X-Forwarded-For": address} if address else {}
        self.token = ""

    def _remember(self, text: str) -> None:
        found = CSRF_FIELD.search(text)
        if found:
            self.token = found.group(1)

    async def get(self, path: str) -> tuple[int, str]:
        """GET ``path`` without following redirects; (status, page)."""
        async with self.session.get(self.client.make_url(path), headers=self.headers, allow_redirects=False) as got:
            text = await got.text()
        self._remember(text)
        return got.status, text

    async def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: str | None = None) -> Any:
        """POST a form with the last CSRF token seen (or ``csrf``); the response, with ``body_text``."""
        form = {**(data or {}), "csrf_token": self.token if csrf is None else csrf}
        async with self.session.post(
            self.client.make_url(path), data=form, headers=self.headers, allow_redirects=False
        ) as response:
            response.body_text = await response.text()  # type: ignore[attr-defined]
        self._remember(response.body_text)  # type: ignore[attr-defined]
        return response

    async def sign_in(self, login_id: str, password: str) -> Any:
        """Open the sign-in page and post the ID and password."""
        await self.get("/my/login")
        return await self.post("/my/login", {"login_id": login_id, "password": password})

    async def close(self) -> None:
        """Close the browser's connection pool."""
        await self.session.close()


@pytest.fixture(name="browsers")
async def open_browsers(client: Any) -> AsyncIterator[Callable[..., MyBrowser]]:
    """``browsers(address=None)`` opens a new browser; all are closed after the test."""
    opened: list[MyBrowser] = []

    def open_browser(*, address: str | None = None) -> MyBrowser:
        browser = MyBrowser(client, address=address)
        opened.append(browser)
        return browser

    yield open_browser
    for browser in opened:
        await browser.close()


async def other_line(ops: Any, *, login_id: str, line_id: str = OTHER_LINE, address: str = AWAY) -> str:
    """A second line holding ``address``, with one ID; the ID's first password."""
    status, _ = await ops.post("/ops/v1/lines", json=line_body(line_id))
    assert status == 201
    status, _ = await ops.post(f"/ops/v1/lines/{line_id}/sessions", json={"address": address})
    assert status in (200, 201)
    return await add_id(ops, line_id, login_id)


async def add_id(ops: Any, line_id: str, login_id: str, **account: Any) -> str:
    """Another ID on ``line_id``; its first password."""
    status, created = await ops.post(f"/ops/v1/lines/{line_id}/accounts", json={"login_id": login_id, **account})
    assert status == 201, created
    return str(created["initial_password"])


async def another_merchant(ops: Any, name: str) -> tuple[str, dict[str, str]]:
    """A second merchant: its id and API headers."""
    status, merchant = await ops.post("/ops/v1/merchants", json={**MERCHANT_BODY, "name": name})
    assert status == 201, merchant
    return merchant["id"], {"Authorization": f"Bearer {merchant['api_key']}"}


async def buy(  # noqa: PLR0913 - the purchase's parts, keyword-only
    client: Any,
    settings: Settings,
    auth: dict[str, str],
    *,
    login_id: str,
    password: str,
    amount: int,
    address: str | None = None,
    monthly: bool = False,
    until: str = "succeeded",
) -> str:
    """A purchase (or, ``monthly``, a subscription) confirmed from ``address``; the id, once it
    is ``until`` (or the subscription active)."""
    return await purchase(
        client,
        settings,
        auth,
        login_id=login_id,
        password=password,
        amount=amount,
        description=f"item {amount}",
        address=address,
        monthly=monthly,
        until=until,
    )
