"""Rate limits on the sites' forms that check a password (issue 13, finding 3): every sign-in
form, the TOTP step and the password-change forms count posts per client address and per login
id; past a limit the post is answered with the 429 page naming the problem, with Retry-After,
and nothing behind it runs. Limits are per address and expire."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest
from sites_support import SiteBrowser, csrf_of, merchant_user, staff_member

from conftest import OpsClient
from models.accounts import SubscriberAccount
from models.audit_log import AuditEntry
from settings import Settings
from tests_support import open_shop

PROXY = (ipaddress.ip_network("127.0.0.1/32"),)  # the test client, trusted: X-Forwarded-For names the address
GUESSER = "198.51.100.66"
NEIGHBOUR = "198.51.100.67"


@pytest.fixture
async def proxied(aiohttp_client: Any, settings: Settings) -> Any:
    """Makes clients of the whole application behind a trusted proxy: ``await make(**changes)``."""
    from api.app import create_app

    async def make(**changes: Any) -> Any:
        return await aiohttp_client(create_app(settings.replace(trusted_proxies=PROXY, **changes)))

    return make


async def _post(client: Any, page: str, path: str, address: str, form: dict[str, str]) -> Any:
    """Open ``page`` from ``address`` for its CSRF token and post ``form`` to ``path``."""
    got = await client.get(page, headers={"X-Forwarded-For": address}, allow_redirects=False)
    data = {**form, "csrf_token": csrf_of(await got.text())}
    return await client.post(path, data=data, headers={"X-Forwarded-For": address}, allow_redirects=False)


def _refused_page(response: Any, text: str) -> None:
    assert response.status == 429
    assert 1 <= int(response.headers["Retry-After"]) <= 3600
    assert 'data-problem="rate_limited"' in text
    assert response.headers["Cache-Control"] == "no-store"


async def test_forty_login_ids_from_one_address_on_the_my_page(proxied: Any) -> None:
    """40 IDs tried on /my/login from one address: refused with the 429 page (Japanese by default,
    English on request) after the limit; a refused try of a real ID is not even looked at (no
    failure counted on the ID, nothing audited); another address may still try."""
    client = await proxied()
    shop = await open_shop(OpsClient(client))
    statuses = []
    audited = 0
    for guess in range(40):
        if guess == 30:
            audited = await AuditEntry.all().count()
        # Past the limit, the real ID: its wrong password would count against it and be audited.
        login_id = shop.login_id if guess >= 30 else f"guess{guess:02d}"
        response = await _post(client, "/my/login", "/my/login", GUESSER, {"login_id": login_id, "password": "x" * 12})
        statuses.append(response.status)
    assert statuses == [401] * 30 + [429] * 10  # the default: 30 posts a minute per address
    _refused_page(response, text := await response.text())
    assert "試行回数が多すぎます" in text
    assert await AuditEntry.all().count() == audited
    assert (await SubscriberAccount.get(login_id=shop.login_id)).failed_attempts == 0
    english = await _post(client, "/my/login?lang=en", "/my/login?lang=en", GUESSER, {"login_id": "a", "password": "b"})
    assert "Too many attempts" in await english.text()
    other = await _post(client, "/my/login", "/my/login", NEIGHBOUR, {"login_id": "guess40", "password": "x" * 12})
    assert other.status == 401


@pytest.mark.parametrize(
    ("page", "path", "form", "allowed"),
    [
        ("/merchant/login", "/merchant/login", {"email": "nobody@shop.example.jp", "password": "x" * 12}, 401),
        ("/merchant/login", "/merchant/login/otp", {"otp": "123456"}, 303),  # no password step pending
        ("/ops/login", "/ops/login", {"email": "nobody@carrier.example.jp", "password": "x" * 12}, 401),
    ],
)
async def test_staff_sign_in_forms_are_limited_per_address_and_the_window_passes(
    proxied: Any, page: str, path: str, form: dict[str, str], allowed: int
) -> None:
    """With a three-a-second limit, the fourth post from one address is the 429 page, another
    address is not limited, and a second later the first address may post again."""
    client = await proxied(rate_limit_sign_in_address="3/second", rate_limit_sign_in_login="100/second")
    statuses = [(await _post(client, page, path, GUESSER, form)).status for _ in range(4)]
    assert statuses == [allowed] * 3 + [429]
    assert (await _post(client, page, path, NEIGHBOUR, form)).status == allowed
    await asyncio.sleep(1.2)
    assert (await _post(client, page, path, GUESSER, form)).status == allowed


@pytest.mark.parametrize("prefix", ["/merchant", "/ops"])
async def test_one_email_is_limited_across_addresses(proxied: Any, prefix: str) -> None:
    """The same e-mail (in any case) tried from eleven addresses: the eleventh post is refused,
    whatever the lockout said before it."""
    client = await proxied()
    ops = OpsClient(client)
    if prefix == "/merchant":
        shop = await open_shop(ops)
        email = (await merchant_user(ops, shop.merchant_id))["email"]
    else:
        email, _ = await staff_member("support")
    statuses = []
    for attempt in range(11):
        form = {"email": email.upper() if attempt % 2 else email, "password": "wrong-password-1"}
        response = await _post(client, f"{prefix}/login", f"{prefix}/login", f"203.0.113.{attempt + 1}", form)
        statuses.append(response.status)
    assert 429 not in statuses[:10]
    assert statuses[10] == 429  # the default: 10 posts a minute per login id


async def test_the_my_page_password_form_is_limited_per_id(proxied: Any) -> None:
    """Signed in to the my page, the ID's password form is refused once the ID's posts (its sign-in
    included) pass the limit."""
    client = await proxied()
    shop = await open_shop(OpsClient(client))
    browser = SiteBrowser(client)
    await browser.get("/my/login")
    signed = await browser.post("/my/login", {"login_id": shop.login_id, "password": shop.password})
    assert signed.status == 303, signed.body_text
    await browser.get("/my/password")
    form = {"current_password": "wrong-password", "new_password": "a-new-password-1", "new_password_confirmation": "x"}
    statuses = [(await browser.post("/my/password", form)).status for _ in range(10)]
    assert statuses == [400] * 9 + [429]
    status, _ = await browser.get("/my")
    assert status == 200  # refused posts end nothing


async def test_the_merchant_account_password_form_is_limited_per_user(proxied: Any) -> None:
    """A signed-in merchant user's password form is refused once the user's posts pass the limit."""
    client = await proxied()
    ops = OpsClient(client)
    shop = await open_shop(ops)
    user = await merchant_user(ops, shop.merchant_id)
    browser = SiteBrowser(client)
    assert (await browser.sign_in(user["email"], user["initial_password"])).status == 303
    await browser.get("/merchant/account")
    form = {"current_password": "x", "new_password": "a-new-password-1", "new_password_confirmation": "y"}
    statuses = [(await browser.post("/merchant/account/password", form)).status for _ in range(10)]
    assert statuses == [400] * 9 + [429]
