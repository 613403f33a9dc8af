"""The authorization-code flow with PKCE through ``/oauth/authorize`` (product.md §13): the page is
the confirmation sign-in with the line check, and the code is exchanged once for a three-legged token."""

from __future__ import annotations

import base64
import io
import json
import logging
import secrets
from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import structlog
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from joserfc import jwt
from joserfc.jwk import KeySet

from conftest import OpsClient
from models.accounts import SubscriberAccount
from models.clock import clock
from models.oauth import OAuthClient, OAuthCode
from models.operations import oauth
from settings import Settings
from settings.logging import configure_logging
from tests_support import CSRF, MERCHANT_BODY, Shop, open_shop

REDIRECT = "https://aggregator.example/callback"
SCOPES = "openid carrier-billing:payments:create carrier-billing:payments:read"
PAYMENT = [{"type": "carrier_billing_payment", "amount": 330, "currency": "JPY", "description": "動画 1本"}]


@pytest.fixture
async def shop(ops: OpsClient) -> Shop:
    """A line with its 127.0.0.1 session, an ID on it, and a merchant."""
    return await open_shop(ops)


@pytest.fixture
async def merchant_id(ops: OpsClient) -> str:
    """A merchant only, for requests that never get as far as a sign-in."""
    status, merchant = await ops.post("/ops/v1/merchants", json=MERCHANT_BODY)
    assert status == 201
    return str(merchant["id"])


async def _register(ops: OpsClient, shop: Shop | str, name: str = "集約決済") -> dict[str, Any]:
    merchant = shop if isinstance(shop, str) else shop.merchant_id
    body = {"merchant_id": merchant, "name": name, "redirect_uris": [REDIRECT], "scopes": SCOPES.split()}
    status, created = await ops.post("/ops/v1/oauth_clients", json=body)
    assert status == 201, created
    return dict(created)


def _authorize_path(client_id: str, challenge: str, **changes: str) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": SCOPES,
        "state": "s-123",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "authorization_details": json.dumps(PAYMENT),
        **changes,
    }
    return "/oauth/authorize?" + urlencode(query)


async def _sign_in(client: Any, path: str, shop: Shop, *, password: str | None = None, action: str = "allow") -> Any:
    """Open the page and post its form as a browser would; the raw response."""
    page = await client.get(path)
    assert page.status == 200, await page.text()
    csrf = CSRF.search(await page.text())
    assert csrf is not None
    form = {
        "csrf_token": csrf.group(1),
        "login_id": shop.login_id,
        "password": shop.password if password is None else password,
        "action": action,
    }
    return await client.post(path, data=form, allow_redirects=False)


def _redirected(response: Any) -> dict[str, str]:
    assert response.status == 303, response.status
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    return {name: values[0] for name, values in parse_qs(location.query).items()}


async def _exchange(client: Any, registered: dict[str, Any], code: str, verifier: str) -> Any:
    basic = base64.b64encode(f"{registered['client_id']}:{registered['client_secret']}".encode()).decode()
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, "code_verifier": verifier}
    return await client.post("/oauth/token", data=form, headers={"Authorization": f"Basic {basic}"})


async def test_code_flow_signs_in_on_the_page_and_exchanges_the_code_once(
    client: Any, ops: OpsClient, shop: Shop, settings: Settings
) -> None:
    """The page names the client and the payment; the sign-in from the line redirects with a code, which
    buys a three-legged token with the payment's details and an ID token, once."""
    registered = await _register(ops, shop)
    verifier = secrets.token_urlsafe(48)
    path = _authorize_path(registered["client_id"], create_s256_code_challenge(verifier))
    page = await client.get(path + "&lang=en")
    assert page.headers["Cache-Control"] == "no-store"
    text = await page.text()
    assert "集約決済" in text
    assert "動画 1本" in text
    assert "¥330" in text
    assert 'data-scope="carrier-billing:payments:create"' in text
    answer = _redirected(await _sign_in(client, path, shop))
    assert answer["state"] == "s-123"
    response = await _exchange(client, registered, answer["code"], verifier)
    assert response.status == 200, await response.text()
    body = await response.json()
    assert body["scope"] == SCOPES
    token = await oauth.verify_access_token(body["access_token"], issuer=settings.base_url)
    account = await SubscriberAccount.get(login_id=shop.login_id)
    assert token.account_id == account.id
    assert token.line_id == shop.line_id
    assert token.merchant_id == shop.merchant_id
    assert token.authorization_details == tuple(PAYMENT)
    assert token.subject == oauth.pairwise_subject(registered["client_id"], account.id) != account.id
    keys = KeySet.import_key_set(await (await client.get("/oauth/jwks.json")).json())
    id_token = jwt.decode(body["id_token"], keys, algorithms=["ES256"])
    assert id_token.claims["sub"] == token.subject
    assert id_token.claims["aud"] == registered["client_id"]
    again = await _exchange(client, registered, answer["code"], verifier)
    assert again.status == 400
    assert (await again.json())["error"] == "invalid_grant"


async def test_a_wrong_verifier_or_a_late_exchange_is_invalid_grant(client: Any, ops: OpsClient, shop: Shop) -> None:
    """PKCE holds (another verifier is refused), and a code lives one minute of the platform's clock."""
    registered = await _register(ops, shop)
    verifier = secrets.token_urlsafe(48)
    path = _authorize_path(registered["client_id"], create_s256_code_challenge(verifier))
    first = _redirected(await _sign_in(client, path, shop))["code"]
    response = await _exchange(client, registered, first, secrets.token_urlsafe(48))
    assert (response.status, (await response.json())["error"]) == (400, "invalid_grant")
    second = _redirected(await _sign_in(client, path, shop))["code"]
    await clock.move_to(await clock.now() + timedelta(minutes=2))
    response = await _exchange(client, registered, second, verifier)
    assert (response.status, (await response.json())["error"]) == (400, "invalid_grant")


async def test_a_wrong_password_re_renders_the_page_with_the_problem(client: Any, ops: OpsClient, shop: Shop) -> None:
    """A wrong password answers the page again naming invalid_credentials; no code is made, nobody is redirected."""
    registered = await _register(ops, shop)
    path = _authorize_path(registered["client_id"], create_s256_code_challenge(secrets.token_urlsafe(48)))
    response = await _sign_in(client, path, shop, password="wrong-password")
    assert response.status == 401
    assert 'data-problem="invalid_credentials"' in await response.text()
    assert await OAuthCode.all().count() == 0


async def test_signing_in_from_another_line_is_line_mismatch(client: Any, ops: OpsClient, shop: Shop) -> None:
    """With the line's 127.0.0.1 session ended, the right password from here is refused as line_mismatch."""
    _, sessions = await ops.get(f"/ops/v1/lines/{shop.line_id}/sessions")
    for session in sessions["data"]:
        await ops.post(f"/ops/v1/lines/{shop.line_id}/sessions/{session['id']}/end")
    registered = await _register(ops, shop)
    path = _authorize_path(registered["client_id"], create_s256_code_challenge(secrets.token_urlsafe(48)))
    response = await _sign_in(client, path, shop)
    assert response.status == 403
    assert 'data-problem="line_mismatch"' in await response.text()
    assert await OAuthCode.all().count() == 0


async def test_declining_sends_access_denied(client: Any, ops: OpsClient, shop: Shop) -> None:
    """Cancel on the page sends the client access_denied with its state, and no code."""
    registered = await _register(ops, shop)
    path = _authorize_path(registered["client_id"], create_s256_code_challenge(secrets.token_urlsafe(48)))
    answer = _redirected(await _sign_in(client, path, shop, action="decline"))
    assert answer == {
        "error": "access_denied",
        "error_description": "The subscriber declined.",
        "state": "s-123",
    }


async def test_unknown_clients_and_redirect_uris_get_a_page_never_a_redirect(
    client: Any, ops: OpsClient, merchant_id: str
) -> None:
    """An unknown client, an unregistered redirect URI or none answers an error page (400), with no Location."""
    registered = await _register(ops, merchant_id)
    challenge = create_s256_code_challenge(secrets.token_urlsafe(48))
    without_redirect = _authorize_path(registered["client_id"], challenge).replace("redirect_uri=", "other=")
    for path in (
        _authorize_path("oac_0123456789abcdef01234567", challenge),
        _authorize_path(registered["client_id"], challenge, redirect_uri="https://evil.example/cb"),
        without_redirect,
    ):
        response = await client.get(path, allow_redirects=False)
        assert response.status == 400
        assert "Location" not in response.headers
        assert 'data-problem="oauth_unknown' in await response.text()


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "carrier-billing-refund:refunds:create"}, "invalid_scope"),
        ({"authorization_details": json.dumps([{**PAYMENT[0], "amount": 3.5}])}, "invalid_authorization_details"),
        ({"authorization_details": json.dumps([{**PAYMENT[0], "currency": "USD"}])}, "invalid_authorization_details"),
        ({"authorization_details": json.dumps([{**PAYMENT[0], "type": "x"}])}, "invalid_authorization_details"),
        (
            {"authorization_details": json.dumps([{**PAYMENT[0], "description": "x" * 501}])},
            "invalid_authorization_details",
        ),
    ],
)
async def test_other_bad_requests_go_back_with_the_error(
    client: Any, ops: OpsClient, merchant_id: str, change: dict[str, str], error: str
) -> None:
    """No S256, another response type, a scope beyond the client's, bad payment details: redirected with error=."""
    registered = await _register(ops, merchant_id)
    path = _authorize_path(registered["client_id"], create_s256_code_challenge(secrets.token_urlsafe(48)), **change)
    response = await client.get(path, allow_redirects=False)
    answer = _redirected(response)
    assert answer["error"] == error
    assert answer["state"] == "s-123"


async def test_pairwise_subjects_differ_per_client_and_are_stable(
    client: Any, ops: OpsClient, shop: Shop, settings: Settings
) -> None:
    """One ID has one subject per client, the same in every token, and another one at another client."""
    _ = client
    first = await OAuthClient.get(id=(await _register(ops, shop))["client_id"])
    second = await OAuthClient.get(id=(await _register(ops, shop, name="別の集約"))["client_id"])
    account = await SubscriberAccount.get(login_id=shop.login_id)
    issuer = settings.base_url
    subjects = [
        (
            await oauth.verify_access_token(
                await oauth.issue_access_token(c, ["openid"], issuer=issuer, account=account), issuer=issuer
            )
        ).subject
        for c in (first, first, second)
    ]
    assert subjects[0] == subjects[1] != subjects[2]
    assert account.id not in subjects


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """Every structlog line (JSON) and standard library log line written to the buffer it yields."""
    root_handlers = logging.getLogger().handlers[:]
    buffer = io.StringIO()
    configure_logging(log_format="json", log_level="debug", stream=buffer)
    yield buffer
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = root_handlers


async def test_no_secret_of_the_flow_reaches_a_log_line(
    client: Any, ops: OpsClient, shop: Shop, log_lines: io.StringIO
) -> None:
    """The client secret, the password, the code, its verifier and the tokens are never logged."""
    registered = await _register(ops, shop)
    verifier = secrets.token_urlsafe(48)
    path = _authorize_path(registered["client_id"], create_s256_code_challenge(verifier))
    code = _redirected(await _sign_in(client, path, shop))["code"]
    body = await (await _exchange(client, registered, code, verifier)).json()
    logged = log_lines.getvalue()
    assert '"request"' in logged  # the request lines were captured
    for secret in (registered["client_secret"], shop.password, code, verifier, body["access_token"], body["id_token"]):
        assert secret not in logged


async def test_the_sign_in_limits_guard_the_form(
    aiohttp_client: Any, ops: OpsClient, shop: Shop, settings: Settings
) -> None:
    """Posts of the form count against the sign-in limits of the ID, as the confirmation form's do: then 429."""
    from api.app import create_app

    registered = await _register(ops, shop)
    limited = await aiohttp_client(create_app(settings.replace(rate_limit_sign_in_login="2/minute")))
    path = _authorize_path(registered["client_id"], create_s256_code_challenge(secrets.token_urlsafe(48)))
    statuses = [(await _sign_in(limited, path, shop, password="wrong-password")).status for _ in range(3)]
    assert statuses == [401, 401, 429]
