"""The CAMARA authorization server (product.md §13): client registration, client credentials,
access-token verification, signing-key rotation and the at-most-once use of a paying token."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey
from tortoise.transactions import in_transaction

from conftest import OpsClient, row_counts
from models.audit_log import AuditEntry
from models.clock import clock
from models.oauth import OAuthClient
from models.operations import oauth
from settings import Settings
from tests_support import MERCHANT_BODY

PAYMENTS = ["carrier-billing:payments:create", "carrier-billing:payments:read"]
REDIRECT = "https://aggregator.example/callback"


async def _merchant(ops: OpsClient) -> str:
    status, merchant = await ops.post("/ops/v1/merchants", json=MERCHANT_BODY)
    assert status == 201
    return str(merchant["id"])


async def _register(ops: OpsClient, merchant_id: str, **changes: Any) -> dict[str, Any]:
    body = {"merchant_id": merchant_id, "name": "集約決済", "redirect_uris": [REDIRECT], "scopes": PAYMENTS, **changes}
    status, client = await ops.post("/ops/v1/oauth_clients", json=body)
    assert status == 201, client
    return dict(client)


def _basic(client_id: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


async def test_a_client_is_registered_with_its_secret_shown_once(ops: OpsClient) -> None:
    """The answer holds the secret; reading the client back never does, and only a digest is stored."""
    merchant_id = await _merchant(ops)
    created = await _register(ops, merchant_id)
    assert created["client_id"].startswith("oac_")
    assert created["client_secret"]
    assert created["merchant_id"] == merchant_id
    assert created["redirect_uris"] == [REDIRECT]
    assert created["scopes"] == PAYMENTS
    status, read = await ops.get(f"/ops/v1/oauth_clients/{created['client_id']}")
    assert status == 200
    assert "client_secret" not in read
    assert read["name"] == "集約決済"
    stored = await OAuthClient.get(id=created["client_id"])
    assert created["client_secret"] not in stored.secret_hash
    status, _ = await ops.get("/ops/v1/oauth_clients/oac_0123456789abcdef01234567")
    assert status == 404


@pytest.mark.parametrize(
    ("change", "status"),
    [
        ({"merchant_id": "mer_0123456789abcdef01234567"}, 404),
        ({"redirect_uris": ["http://aggregator.example/cb"]}, 400),
        ({"redirect_uris": ["https://aggregator.example/cb#part"]}, 400),
        ({"scopes": ["carrier-billing:everything"]}, 400),
        ({"scopes": []}, 400),
        ({"name": "   "}, 400),
    ],
)
async def test_bad_registrations_are_refused_and_write_nothing(
    ops: OpsClient, change: dict[str, Any], status: int
) -> None:
    """An unknown merchant is 404; a plain-http or fragment URI, an unknown scope or a blank name 400; no row."""
    merchant_id = await _merchant(ops)
    before = await row_counts()
    body = {"merchant_id": merchant_id, "name": "集約決済", "redirect_uris": [REDIRECT], "scopes": PAYMENTS, **change}
    answered, error = await ops.post("/ops/v1/oauth_clients", json=body)
    assert answered == status, error
    assert await row_counts() == before


async def test_localhost_redirect_uris_may_be_plain_http(ops: OpsClient) -> None:
    """A developer's aggregator on this machine may use http://localhost or http://127.0.0.1."""
    merchant_id = await _merchant(ops)
    uris = ["http://localhost:8000/cb", "http://127.0.0.1/cb?x=1"]
    assert (await _register(ops, merchant_id, redirect_uris=uris))["redirect_uris"] == uris


async def test_client_credentials_grant_a_verifiable_two_legged_token(
    client: Any, ops: OpsClient, settings: Settings
) -> None:
    """Basic or form authentication gets a Bearer token of the asked scopes; it verifies as two-legged."""
    merchant_id = await _merchant(ops)
    created = await _register(ops, merchant_id)
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials", "scope": "carrier-billing:payments:read"},
        headers=_basic(created["client_id"], created["client_secret"]),
    )
    assert response.status == 200, await response.text()
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 600
    assert body["scope"] == "carrier-billing:payments:read"
    token = await oauth.verify_access_token(body["access_token"], issuer=settings.base_url)
    assert token.client_id == created["client_id"] == token.subject
    assert token.merchant_id == merchant_id
    assert token.scopes == {"carrier-billing:payments:read"}
    assert token.account_id is None
    assert token.line_id is None
    assert token.authorization_details == ()
    form = {
        "grant_type": "client_credentials",
        "client_id": created["client_id"],
        "client_secret": created["client_secret"],
    }
    response = await client.post("/oauth/token", data=form)
    assert response.status == 200
    assert (await response.json())["scope"] == " ".join(PAYMENTS)  # none asked: all the client's


@pytest.mark.parametrize(
    ("form", "secret_ok", "status", "error"),
    [
        ({"grant_type": "client_credentials"}, False, 401, "invalid_client"),
        (
            {"grant_type": "client_credentials", "scope": "carrier-billing-refund:refunds:create"},
            True,
            400,
            "invalid_scope",
        ),
        ({"grant_type": "password", "username": "taro"}, True, 400, "unsupported_grant_type"),
        ({"scope": "carrier-billing:payments:read"}, True, 400, "invalid_request"),
        ({"grant_type": "client_credentials", "scope": "openid\x00"}, True, 400, "invalid_request"),
        ({"grant_type": "authorization_code", "code": "nope", "code_verifier": "x" * 43}, True, 400, "invalid_grant"),
    ],
)
async def test_token_endpoint_errors_are_rfc_6749s(  # noqa: PLR0913, PLR0917 - the case's parts
    client: Any, ops: OpsClient, form: dict[str, str], secret_ok: bool, status: int, error: str
) -> None:
    """A wrong secret is 401 invalid_client; a scope beyond the client's, another grant, none, a bad code: 400."""
    created = await _register(ops, await _merchant(ops))
    secret = created["client_secret"] if secret_ok else "ocs_wrong"
    response = await client.post("/oauth/token", data=form, headers=_basic(created["client_id"], secret))
    assert response.status == status
    assert response.headers["Cache-Control"] == "no-store"
    body = await response.json()
    assert body["error"] == error
    assert body["error_description"]


async def test_tokens_expire_by_the_platform_clock(client: Any, ops: OpsClient, settings: Settings) -> None:
    """A token holds for its ten minutes of the test clock, then is rejected as expired; so is a minted expired one."""
    _ = client
    registered = await OAuthClient.get(id=(await _register(ops, await _merchant(ops)))["client_id"])
    issuer = settings.base_url
    live = await oauth.issue_access_token(registered, PAYMENTS, issuer=issuer)
    assert (await oauth.verify_access_token(live, issuer=issuer)).expires_at > await clock.now()
    dead = await oauth.issue_access_token(registered, PAYMENTS, issuer=issuer, lifetime=timedelta(seconds=-1))
    with pytest.raises(oauth.TokenRejected) as rejected:
        await oauth.verify_access_token(dead, issuer=issuer)
    assert rejected.value.reason == "expired"
    await clock.move_to(await clock.now() + timedelta(minutes=11))
    with pytest.raises(oauth.TokenRejected) as rejected:
        await oauth.verify_access_token(live, issuer=issuer)
    assert rejected.value.reason == "expired"


async def test_forged_foreign_and_revoked_tokens_are_invalid(client: Any, ops: OpsClient, settings: Settings) -> None:
    """Another key's signature, another issuer, a revoked client, or no JWT at all: rejected as invalid."""
    _ = client
    created = await _register(ops, await _merchant(ops))
    registered = await OAuthClient.get(id=created["client_id"])
    issuer = settings.base_url
    token = await oauth.issue_access_token(registered, PAYMENTS, issuer=issuer)
    claims = jwt.decode(token, ECKey.import_key((await oauth.published_keys())["keys"][0])).claims
    forged = jwt.encode(jwt_header(token), claims, ECKey.generate_key("P-256"))
    other_issuer = await oauth.issue_access_token(registered, PAYMENTS, issuer="https://elsewhere.example")
    nul_kid = jwt.encode({**jwt_header(token), "kid": "oak_\x00"}, claims, ECKey.generate_key("P-256"))
    for bad in (forged, other_issuer, nul_kid, "not-a-token", token[:-4] + "AAAA"):
        with pytest.raises(oauth.TokenRejected) as rejected:
            await oauth.verify_access_token(bad, issuer=issuer)
        assert rejected.value.reason == "invalid"
    status, revoked = await ops.post(f"/ops/v1/oauth_clients/{registered.id}/revoke")
    assert (status, revoked["status"]) == (200, "revoked")
    with pytest.raises(oauth.TokenRejected):
        await oauth.verify_access_token(token, issuer=issuer)
    response = await client.post(
        "/oauth/token",
        data={"grant_type": "client_credentials"},
        headers=_basic(registered.id, created["client_secret"]),
    )
    assert response.status == 401


async def test_rotation_keeps_old_tokens_valid_and_publishes_both_keys(
    client: Any, ops: OpsClient, settings: Settings
) -> None:
    """After a rotation the old key still verifies and is in the JWKS beside the new one, until its tokens expired."""
    registered = await OAuthClient.get(id=(await _register(ops, await _merchant(ops)))["client_id"])
    issuer = settings.base_url
    old = await oauth.issue_access_token(registered, PAYMENTS, issuer=issuer)
    status, rotated = await ops.post("/ops/v1/oauth_keys/rotate")
    assert status == 201
    assert await AuditEntry.exists(action="oauth_key.rotate", target_id=rotated["kid"], actor="ops_token")
    new = await oauth.issue_access_token(registered, PAYMENTS, issuer=issuer)
    response = await client.get("/oauth/jwks.json")
    kids = [key["kid"] for key in (await response.json())["keys"]]
    assert len(kids) == 2
    for token in (old, new):
        assert (await oauth.verify_access_token(token, issuer=issuer)).client_id == registered.id
    assert {jwt_header(old)["kid"], jwt_header(new)["kid"]} == set(kids)
    await clock.move_to(await clock.now() + timedelta(minutes=11))
    kids_later = [key["kid"] for key in (await (await client.get("/oauth/jwks.json")).json())["keys"]]
    assert kids_later == [jwt_header(new)["kid"]]


def jwt_header(token: str) -> dict[str, Any]:
    """The JOSE header of ``token``, unverified."""
    from joserfc import jws

    return dict(jws.extract_compact(token.encode()).headers())


async def test_a_token_is_consumed_once(client: Any) -> None:
    """consume_token_once answers True the first time for a jti, False after, inside the caller's transaction."""
    _ = client
    async with in_transaction():
        assert await oauth.consume_token_once("jti-1", "ch_0123456789abcdef01234567") is True
        assert await oauth.consume_token_once("jti-1", "ch_0123456789abcdef01234568") is False
        assert await oauth.consume_token_once("jti-2", "ch_0123456789abcdef01234568") is True
    assert await oauth.consume_token_once("jti-1", "ch_0123456789abcdef01234569") is False


async def test_discovery_names_the_endpoints(client: Any, settings: Settings) -> None:
    """The OpenID configuration names our endpoints, S256, ES256, pairwise subjects and the payment details type."""
    document = await (await client.get("/.well-known/openid-configuration")).json()
    assert document["issuer"] == settings.base_url
    assert document["token_endpoint"] == f"{settings.base_url}/oauth/token"
    assert document["jwks_uri"] == f"{settings.base_url}/oauth/jwks.json"
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["grant_types_supported"] == ["authorization_code", "client_credentials"]
    assert document["authorization_details_types_supported"] == ["carrier_billing_payment"]
    assert document["subject_types_supported"] == ["pairwise"]


async def test_wrong_client_secrets_from_one_address_are_stopped(
    aiohttp_client: Any, ops: OpsClient, settings: Settings
) -> None:
    """Failed client authentications count like failed API keys: over the limit, even the right secret is 429."""
    from api.app import create_app

    created = await _register(ops, await _merchant(ops))
    limited = await aiohttp_client(create_app(settings.replace(rate_limit_api_key_failures="2/minute")))
    form = {"grant_type": "client_credentials"}
    for _ in range(2):
        response = await limited.post("/oauth/token", data=form, headers=_basic(created["client_id"], "ocs_wrong"))
        assert response.status == 401
    right = _basic(created["client_id"], created["client_secret"])
    response = await limited.post("/oauth/token", data=form, headers=right)
    assert response.status == 429
    assert response.headers["Retry-After"]
