"""The authorization server of CAMARA Carrier Billing (product.md §13): clients, signing keys,
access tokens, authorization codes with PKCE, and the at-most-once use of a paying token.

Access tokens are ES256 JWTs (RFC 9068: header ``typ: at+jwt``) signed with the newest unretired
``OAuthKey``; a rotated key stays published and verifies until every token it signed has
expired. Time is the platform's clock, so the test clock expires tokens too.

A three-legged token names the subscriber by a pairwise ``sub`` (a different value for each
client, the same every time for one); which ID signed in travels in the token sealed with the
platform's secret key, so no aggregator learns our account ids. The secret key is given once at
start-up (``configure``), as the clock's mode is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge
from cryptography.fernet import Fernet, InvalidToken
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey
from tortoise.transactions import in_transaction

from billing.errors import InvalidRequest, NotFound
from models.accounts import AccountStatus, SubscriberAccount
from models.audit_log import SYSTEM, Actor, audit
from models.base import fits_id_column
from models.clock import clock
from models.oauth import OAuthClient, OAuthClientStatus, OAuthCode, OAuthKey
from models.operations.merchants import find_merchant
from models.sql import execute

__all__ = [
    "ACCESS_TOKEN_LIFETIME",
    "CAMARA_SCOPES",
    "CODE_LIFETIME",
    "PAYMENT_DETAILS_TYPE",
    "AccessToken",
    "AuthorizationRequest",
    "BadAuthorizationRequest",
    "OAuthError",
    "TokenRejected",
    "TokenResponse",
    "UnknownClientOrRedirect",
    "authenticate_client",
    "check_authorization_request",
    "client_credentials_token",
    "configure",
    "consume_token_once",
    "create_authorization_code",
    "exchange_code",
    "find_client",
    "issue_access_token",
    "pairwise_subject",
    "published_keys",
    "register_client",
    "revoke_client",
    "rotate_signing_key",
    "verify_access_token",
]

CAMARA_SCOPES: tuple[str, ...] = (
    "openid",
    "carrier-billing:payments:create",
    "carrier-billing:payments:read",
    "carrier-billing:payments:write",
    "carrier-billing-refund:refunds:create",
    "carrier-billing-refund:refunds:read",
)
ACCESS_TOKEN_LIFETIME = timedelta(minutes=10)
ID_TOKEN_LIFETIME = timedelta(minutes=10)
CODE_LIFETIME = timedelta(minutes=1)
ALGORITHM = "ES256"
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 - a media type (RFC 9068), not a secret
ID_TOKEN_TYPE = "JWT"  # noqa: S105 - a media type, not a secret
PAYMENT_DETAILS_TYPE = "carrier_billing_payment"
MAX_DESCRIPTION = 500
MAX_AMOUNT = 1_000_000
MAX_REDIRECT_URI = 2000
MAX_REDIRECT_URIS = 10
KID_SHAPE = re.compile(r"[a-z]+_[0-9a-f]{24}")  # models.base.new_id's
SEALED_ACCOUNT_CLAIM = "mtm_acc"  # our own claim: the signed-in ID, sealed (Fernet) for us alone


class _Configuration:
    secret_key = ""


_configuration = _Configuration()
_private_keys: dict[str, ECKey] = {}


def configure(*, secret_key: str) -> None:
    """Set once at start-up from ``Settings.secret_key``: it seals the signing keys and the
    signed-in ID in tokens, and keys the pairwise subjects."""
    if secret_key != _configuration.secret_key:
        _private_keys.clear()
    _configuration.secret_key = secret_key


def _secret(purpose: bytes) -> bytes:
    if not _configuration.secret_key:
        raise RuntimeError("the OAuth server has no secret key: call models.operations.oauth.configure")
    return hashlib.sha256(b"matomete/oauth/" + purpose + b"/" + _configuration.secret_key.encode()).digest()


def _fernet(purpose: bytes) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_secret(purpose)))


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _base64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# ---- tokens as the payment routers see them -------------------------------------------------


@dataclass(frozen=True)
class AccessToken:
    """A verified access token: who holds it, for which merchant, what it may do."""

    client_id: str
    merchant_id: str  # the aggregator client's merchant (it is paid)
    scopes: frozenset[str]
    subject: str  # pairwise sub (3-legged) or the client_id (2-legged)
    account_id: str | None  # the SubscriberAccount that signed in (3-legged), else None
    line_id: str | None  # that account's line, else None
    authorization_details: tuple[dict[str, Any], ...]  # RFC 9396, () when none
    jti: str
    expires_at: datetime


class TokenRejected(Exception):
    """An access token that does not hold: ``reason`` is ``invalid`` or ``expired``."""

    def __init__(self, reason: Literal["invalid", "expired"], message: str = "") -> None:
        super().__init__(message or f"the access token is {reason}")
        self.reason = reason


class OAuthError(Exception):
    """An RFC 6749 error: ``error`` is its code, ``status`` the HTTP status of the token endpoint."""

    def __init__(self, error: str, description: str, *, status: int = 400) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status


# ---- clients ----------------------------------------------------------------------------


def _loopback(host: str) -> bool:
    return host in ("localhost", "127.0.0.1", "::1")


def redirect_uri_allowed(uri: str) -> bool:
    """An absolute https URL, or http to this machine only (a developer's aggregator), with no
    fragment (RFC 6749 §3.1.2) and no credentials."""
    if len(uri) > MAX_REDIRECT_URI or any(ord(c) < 0x21 or ord(c) == 0x7F for c in uri) or "#" in uri:
        return False
    try:
        parts = urlsplit(uri)
        host = parts.hostname
        _ = parts.port
    except ValueError:
        return False
    if not host or parts.username is not None or parts.password is not None:
        return False
    return parts.scheme == "https" or (parts.scheme == "http" and _loopback(host))


def _checked_registration(name: str, redirect_uris: list[str], scopes: list[str]) -> None:
    if not name.strip():
        raise InvalidRequest("name must not be empty.", param="name")
    if len(redirect_uris) > MAX_REDIRECT_URIS:
        raise InvalidRequest(f"At most {MAX_REDIRECT_URIS} redirect URIs.", param="redirect_uris")
    for uri in redirect_uris:
        if not redirect_uri_allowed(uri):
            raise InvalidRequest(
                "Each redirect URI must be an https:// URL (http:// only for localhost), without a fragment.",
                param="redirect_uris",
            )
    if not scopes:
        raise InvalidRequest("Give at least one scope.", param="scopes")
    unknown = sorted(set(scopes) - set(CAMARA_SCOPES))
    if unknown:
        raise InvalidRequest(f"Unknown scopes: {', '.join(unknown)}.", param="scopes")


async def register_client(
    *, merchant_id: str, name: str, redirect_uris: list[str], scopes: list[str], actor: Actor
) -> tuple[OAuthClient, str]:
    """A new client of the merchant and its secret, shown once (stored as a digest)."""
    _checked_registration(name, redirect_uris, scopes)
    secret = "ocs_" + secrets.token_urlsafe(32)
    async with in_transaction():
        merchant = await find_merchant(merchant_id)
        client = await OAuthClient.create(
            merchant=merchant,
            name=name.strip(),
            redirect_uris=list(dict.fromkeys(redirect_uris)),
            scopes=[scope for scope in CAMARA_SCOPES if scope in scopes],
            secret_hash=_digest(secret),
            created_at=await clock.now(),
        )
        await audit(actor, "oauth_client.register", "oauth_client", client.id, merchant_id=merchant.id, name=name)
    return client, secret


async def find_client(client_id: str) -> OAuthClient:
    """The client ``client_id`` (active or revoked); ``NotFound`` otherwise."""
    client = await OAuthClient.get_or_none(id=client_id) if fits_id_column(client_id) else None
    if client is None:
        raise NotFound(f"No OAuth client {client_id}.", param="client_id")
    return client


async def revoke_client(client_id: str, *, actor: Actor) -> OAuthClient:
    """The client gets no more tokens and its tokens stop working; again, nothing changes."""
    async with in_transaction():
        client = await find_client(client_id)
        client = await OAuthClient.select_for_update().get(id=client.id)
        if client.status != OAuthClientStatus.REVOKED:
            client.status = OAuthClientStatus.REVOKED
            await client.save(update_fields=["status"])
            await audit(actor, "oauth_client.revoke", "oauth_client", client.id)
    return client


async def _active_client(client_id: str) -> OAuthClient | None:
    if not fits_id_column(client_id):
        return None
    return await OAuthClient.get_or_none(id=client_id, status=OAuthClientStatus.ACTIVE)


async def authenticate_client(client_id: str, secret: str) -> OAuthClient:
    """The active client whose secret this is; ``OAuthError(invalid_client)`` otherwise."""
    client = await _active_client(client_id)
    offered = _digest(secret)
    if client is None or not hmac.compare_digest(offered, client.secret_hash):
        raise OAuthError("invalid_client", "Client authentication failed.", status=401)
    return client


# ---- signing keys -------------------------------------------------------------------------


async def _new_key(now: datetime) -> OAuthKey:
    row = OAuthKey(created_at=now, public_jwk={}, sealed_private_jwk="")
    key = ECKey.generate_key("P-256", parameters={"kid": row.kid, "use": "sig", "alg": ALGORITHM})
    row.public_jwk = dict(key.as_dict(private=False))
    row.sealed_private_jwk = _fernet(b"signing-key").encrypt(json.dumps(key.as_dict(private=True)).encode()).decode()
    await row.save()
    _private_keys[row.kid] = key
    return row


async def _current_key() -> tuple[OAuthKey, ECKey]:
    """The newest unretired key (made on first need) and its private half."""
    row = await OAuthKey.filter(retired_at__isnull=True).order_by("-created_at", "-kid").first()
    if row is None:
        row = await _new_key(await clock.now())
    key = _private_keys.get(row.kid)
    if key is None:
        try:
            sealed = _fernet(b"signing-key").decrypt(row.sealed_private_jwk.encode())
        except InvalidToken:
            raise RuntimeError("the signing key was sealed with another secret key") from None
        key = _private_keys[row.kid] = ECKey.import_key(json.loads(sealed))
    return row, key


async def rotate_signing_key(*, actor: Actor = SYSTEM) -> OAuthKey:
    """Retire the signing key(s) in use and make a new one; the retired ones stay published and
    verify what they signed until those tokens have expired."""
    async with in_transaction():
        now = await clock.now()
        retired = [row.kid for row in await OAuthKey.filter(retired_at__isnull=True)]
        await OAuthKey.filter(kid__in=retired).update(retired_at=now)
        row = await _new_key(now)
        await audit(actor, "oauth_key.rotate", "oauth_key", row.kid, retired=retired)
    return row


def _still_verifies(row: OAuthKey, now: datetime) -> bool:
    return row.retired_at is None or row.retired_at + ACCESS_TOKEN_LIFETIME > now


async def published_keys() -> dict[str, list[dict[str, Any]]]:
    """The JWK Set of every key that may have signed a live token (made on first need)."""
    await _current_key()
    now = await clock.now()
    rows = await OAuthKey.all().order_by("-created_at", "-kid")
    return {"keys": [dict(row.public_jwk) for row in rows if _still_verifies(row, now)]}


# ---- access tokens ----------------------------------------------------------------------


def pairwise_subject(client_id: str, account_id: str) -> str:
    """The subject ``client_id`` knows ``account_id`` by: stable, and unlinkable across clients."""
    digest = hmac.new(_secret(b"pairwise-subject"), f"{client_id}:{account_id}".encode(), hashlib.sha256).digest()
    return _base64url(digest)


async def _sign(claims: dict[str, Any], *, token_type: str) -> str:
    row, key = await _current_key()
    return jwt.encode({"alg": ALGORITHM, "kid": row.kid, "typ": token_type}, claims, key, algorithms=[ALGORITHM])


async def issue_access_token(  # noqa: PLR0913 - keyword-only, the token's parts
    client: OAuthClient,
    scopes: Iterable[str],
    *,
    issuer: str,
    account: SubscriberAccount | None = None,
    authorization_details: Sequence[dict[str, Any]] = (),
    lifetime: timedelta = ACCESS_TOKEN_LIFETIME,
) -> str:
    """A signed access token of ``client``: two-legged without ``account``, else for the ID that
    signed in. ``lifetime`` may be negative (an already expired token, for tests)."""
    now = await clock.now()
    issued = int(now.timestamp())
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": pairwise_subject(client.id, account.id) if account is not None else client.id,
        "aud": client.id,
        "client_id": client.id,
        "scope": " ".join(dict.fromkeys(scopes)),
        "iat": issued,
        "exp": issued + int(lifetime.total_seconds()),
        "jti": secrets.token_urlsafe(18),
    }
    if account is not None:
        claims[SEALED_ACCOUNT_CLAIM] = _fernet(b"token-account").encrypt(account.id.encode()).decode()
    if authorization_details:
        claims["authorization_details"] = [dict(detail) for detail in authorization_details]
    return await _sign(claims, token_type=ACCESS_TOKEN_TYPE)


def _header(token: str) -> dict[str, Any]:
    try:
        return dict(jws.extract_compact(token.encode()).headers())
    except (JoseError, ValueError, TypeError, UnicodeError) as error:
        raise TokenRejected("invalid", "not a signed token") from error


async def _signing_row(header: Mapping[str, Any], now: datetime) -> OAuthKey:
    kid = header.get("kid")
    if header.get("typ") != ACCESS_TOKEN_TYPE or header.get("alg") != ALGORITHM or not isinstance(kid, str):
        raise TokenRejected("invalid", "not an access token of ours")
    row = await OAuthKey.get_or_none(kid=kid) if KID_SHAPE.fullmatch(kid) else None  # unverified yet
    if row is None or not _still_verifies(row, now):
        raise TokenRejected("invalid", "unknown signing key")
    return row


def _claims(token: str, row: OAuthKey) -> dict[str, Any]:
    try:
        return dict(jwt.decode(token, ECKey.import_key(row.public_jwk), algorithms=[ALGORITHM]).claims)
    except (JoseError, ValueError, TypeError) as error:
        raise TokenRejected("invalid", "bad signature") from error


def _timestamp(claims: Mapping[str, Any], name: str) -> int:
    value = claims.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise TokenRejected("invalid", f"no {name}")
    return value


async def _signed_in(claims: Mapping[str, Any]) -> SubscriberAccount | None:
    sealed = claims.get(SEALED_ACCOUNT_CLAIM)
    if sealed is None:
        return None
    try:
        account_id = _fernet(b"token-account").decrypt(str(sealed).encode()).decode()
    except InvalidToken:
        raise TokenRejected("invalid", "unreadable subject") from None
    account = await SubscriberAccount.get_or_none(id=account_id, status=AccountStatus.ACTIVE)
    if account is None:
        raise TokenRejected("invalid", "the ID is closed")
    return account


async def verify_access_token(token: str, *, issuer: str) -> AccessToken:
    """The access token ``token`` if it holds: our key's signature, our ``issuer``, in its time
    by the platform's clock, its client still active; ``TokenRejected`` otherwise."""
    now = await clock.now()
    claims = _claims(token, await _signing_row(_header(token), now))
    if claims.get("iss") != issuer:
        raise TokenRejected("invalid", "another issuer")
    expires = _timestamp(claims, "exp")
    if "nbf" in claims and _timestamp(claims, "nbf") > now.timestamp():
        raise TokenRejected("invalid", "not valid yet")
    if expires <= now.timestamp():
        raise TokenRejected("expired")
    client = await _active_client(str(claims.get("client_id", "")))
    jti, scope, subject = claims.get("jti"), claims.get("scope", ""), claims.get("sub")
    details = claims.get("authorization_details", [])
    if (
        client is None
        or claims.get("aud") != client.id
        or not isinstance(jti, str)
        or not isinstance(scope, str)
        or not isinstance(subject, str)
        or not isinstance(details, list)
        or not all(isinstance(detail, dict) for detail in details)
    ):
        raise TokenRejected("invalid", "unknown or revoked client")
    account = await _signed_in(claims)
    return AccessToken(
        client_id=client.id,
        merchant_id=client.merchant_id,
        scopes=frozenset(scope.split()),
        subject=subject,
        account_id=account.id if account is not None else None,
        line_id=account.line_id if account is not None else None,
        authorization_details=tuple(details),
        jti=jti,
        expires_at=datetime.fromtimestamp(expires, UTC),
    )


async def consume_token_once(jti: str, charge_id: str) -> bool:
    """Spend the token ``jti`` on ``charge_id``: True the first time, False ever after. Call it
    in the transaction of the payment; a conflict leaves that transaction usable."""
    rows = await execute(
        "INSERT INTO oauth_token_uses (jti, charge_id, used_at) VALUES (%(jti)s, %(charge)s, %(now)s)"
        " ON CONFLICT (jti) DO NOTHING RETURNING jti",
        {"jti": jti, "charge": charge_id, "now": await clock.now()},
    )
    return bool(rows)


# ---- the token endpoint's grants ------------------------------------------------------------


@dataclass(frozen=True)
class TokenResponse:
    """What the token endpoint answers (RFC 6749 §5.1)."""

    access_token: str
    expires_in: int
    scope: str
    id_token: str | None = None

    def as_dict(self) -> dict[str, Any]:
        """The JSON body."""
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
            "scope": self.scope,
        }
        if self.id_token is not None:
            body["id_token"] = self.id_token
        return body


def _scopes(raw: str | None, allowed: Sequence[str]) -> list[str]:
    """The requested scopes (all the client's when none are asked), in the catalogue's order."""
    if raw is None or not raw.strip():
        return [scope for scope in CAMARA_SCOPES if scope in allowed]
    asked = raw.split()
    if not set(asked) <= set(allowed):
        raise OAuthError("invalid_scope", "The client may not ask for some of these scopes.")
    return [scope for scope in CAMARA_SCOPES if scope in asked]


async def client_credentials_token(client: OAuthClient, scope: str | None, *, issuer: str) -> TokenResponse:
    """A two-legged token for the client's own use (no subscriber): ``openid`` needs one, so it
    is never granted here."""
    scopes = [s for s in _scopes(scope, client.scopes) if s != "openid"]
    if not scopes:
        raise OAuthError("invalid_scope", "No scope the client credentials grant can give.")
    token = await issue_access_token(client, scopes, issuer=issuer)
    return TokenResponse(token, int(ACCESS_TOKEN_LIFETIME.total_seconds()), " ".join(scopes))


async def _id_token(client: OAuthClient, account: SubscriberAccount, *, issuer: str, auth_time: datetime) -> str:
    now = await clock.now()
    claims = {
        "iss": issuer,
        "sub": pairwise_subject(client.id, account.id),
        "aud": client.id,
        "iat": int(now.timestamp()),
        "exp": int((now + ID_TOKEN_LIFETIME).timestamp()),
        "auth_time": int(auth_time.timestamp()),
    }
    return await _sign(claims, token_type=ID_TOKEN_TYPE)


async def exchange_code(
    client: OAuthClient, code: str, *, redirect_uri: str | None, code_verifier: str | None, issuer: str
) -> TokenResponse:
    """The tokens for an authorization code of ``client``: once, in its minute, with the
    redirect URI it was given to and the verifier of its challenge (PKCE, S256)."""
    if not code or not code_verifier:
        raise OAuthError("invalid_request", "code and code_verifier are required.")
    async with in_transaction():
        row = await OAuthCode.select_for_update().get_or_none(code_hash=_digest(code))
        now = await clock.now()
        if row is None or row.client_id != client.id or row.used_at is not None or row.expires_at <= now:
            raise OAuthError("invalid_grant", "The code is unknown, used, expired or another client's.")
        row.used_at = now
        await row.save(update_fields=["used_at"])
    if redirect_uri != row.redirect_uri:
        raise OAuthError("invalid_grant", "redirect_uri is not the one the code was given to.")
    if not hmac.compare_digest(create_s256_code_challenge(code_verifier), row.code_challenge):
        raise OAuthError("invalid_grant", "The code_verifier does not match the code_challenge.")
    account = await SubscriberAccount.get_or_none(id=row.account_id, status=AccountStatus.ACTIVE)
    if account is None:
        raise OAuthError("invalid_grant", "The ID that signed in is closed.")
    token = await issue_access_token(
        client, row.scopes, issuer=issuer, account=account, authorization_details=row.authorization_details
    )
    id_token = None
    if "openid" in row.scopes:
        id_token = await _id_token(client, account, issuer=issuer, auth_time=row.created_at)
    return TokenResponse(token, int(ACCESS_TOKEN_LIFETIME.total_seconds()), " ".join(row.scopes), id_token)


# ---- the authorization request ------------------------------------------------------------


class UnknownClientOrRedirect(Exception):
    """No such active client, or a redirect URI it did not register: shown as a page, never a
    redirect (RFC 6749 §4.1.2.1). ``code`` names the problem for the page."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class BadAuthorizationRequest(Exception):
    """A request to send back to the client's redirect URI with ``error`` (RFC 6749 §4.1.2.1)."""

    def __init__(self, error: str, description: str, *, redirect_uri: str, state: str | None) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state


@dataclass(frozen=True)
class AuthorizationRequest:
    """A checked ``/oauth/authorize`` request."""

    client: OAuthClient
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None
    code_challenge: str
    authorization_details: tuple[dict[str, Any], ...]


def payment_details(raw: str | None) -> tuple[dict[str, Any], ...]:
    """RFC 9396 ``authorization_details``: a JSON array of ``carrier_billing_payment`` entries,
    each a whole positive yen ``amount``, ``currency`` JPY and a ``description`` (≤ 500)."""
    if raw is None or not raw.strip():
        return ()
    try:
        details = json.loads(raw)
    except ValueError:
        raise ValueError("authorization_details is not JSON") from None
    if not isinstance(details, list) or not details:
        raise ValueError("authorization_details must be a non-empty JSON array")
    checked = []
    for detail in details:
        if not isinstance(detail, dict) or detail.get("type") != PAYMENT_DETAILS_TYPE:
            raise ValueError(f"each authorization_details entry must be of type {PAYMENT_DETAILS_TYPE}")
        amount, currency, description = detail.get("amount"), detail.get("currency"), detail.get("description", "")
        if not isinstance(amount, int) or isinstance(amount, bool) or not 0 < amount <= MAX_AMOUNT:
            raise ValueError("amount must be a whole number of yen, 1 or more")
        if currency != "JPY":
            raise ValueError("currency must be JPY")
        if not isinstance(description, str) or len(description) > MAX_DESCRIPTION:
            raise ValueError(f"description must be text of at most {MAX_DESCRIPTION} characters")
        if set(detail) - {"type", "amount", "currency", "description"}:
            raise ValueError("authorization_details entries take type, amount, currency and description only")
        checked.append({"type": PAYMENT_DETAILS_TYPE, "amount": amount, "currency": "JPY", "description": description})
    return tuple(checked)


CODE_CHALLENGE_LENGTH = 43  # base64url of a SHA-256 digest, without padding


async def check_authorization_request(query: Mapping[str, str]) -> AuthorizationRequest:
    """The request as ``/oauth/authorize`` received it, checked: ``UnknownClientOrRedirect``
    when there is no safe place to answer, ``BadAuthorizationRequest`` to answer there."""
    client = await _active_client(query.get("client_id", ""))
    if client is None:
        raise UnknownClientOrRedirect("oauth_unknown_client")
    # Always named (OpenID Connect requires it), so the token request can be held to the same one.
    redirect_uri = query.get("redirect_uri")
    if redirect_uri is None or redirect_uri not in client.redirect_uris:
        raise UnknownClientOrRedirect("oauth_unknown_redirect_uri")
    state = query.get("state")

    def refuse(error: str, description: str) -> BadAuthorizationRequest:
        return BadAuthorizationRequest(error, description, redirect_uri=redirect_uri, state=state)

    if query.get("response_type") != "code":
        raise refuse("unsupported_response_type", "Only response_type=code is supported.")
    challenge = query.get("code_challenge", "")
    if query.get("code_challenge_method") != "S256" or len(challenge) != CODE_CHALLENGE_LENGTH:
        raise refuse("invalid_request", "PKCE is required: code_challenge with code_challenge_method=S256.")
    try:
        scopes = tuple(_scopes(query.get("scope"), client.scopes))
    except OAuthError as error:
        raise refuse("invalid_scope", error.description) from None
    try:
        details = payment_details(query.get("authorization_details"))
    except ValueError as error:
        raise refuse("invalid_authorization_details", str(error)) from None
    return AuthorizationRequest(client, redirect_uri, scopes, state, challenge, details)


async def create_authorization_code(request: AuthorizationRequest, account: SubscriberAccount) -> str:
    """A code for ``account``'s consent to ``request``, good once within a minute."""
    code = secrets.token_urlsafe(32)
    now = await clock.now()
    await OAuthCode.create(
        code_hash=_digest(code),
        client=request.client,
        account=account,
        redirect_uri=request.redirect_uri,
        code_challenge=request.code_challenge,
        scopes=list(request.scopes),
        authorization_details=list(request.authorization_details),
        expires_at=now + CODE_LIFETIME,
        created_at=now,
    )
    return code
