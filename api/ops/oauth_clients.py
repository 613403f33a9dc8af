"""CAMARA aggregators as OAuth clients (product.md §13): registered by an operator for a merchant,
which is the one paid. The client secret is shown once, in the answer that made it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, Field

from api.http import Body, json_response
from api.ops.table import operator, ops_routes
from models.oauth import OAuthClient
from models.operations import oauth

__all__: list[str] = []

Scope = Literal[
    "openid",
    "carrier-billing:payments:create",
    "carrier-billing:payments:read",
    "carrier-billing:payments:write",
    "carrier-billing-refund:refunds:create",
    "carrier-billing-refund:refunds:read",
]
PORT = r"(:(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4}))?"
REST = r"([/?][^\s#\x00-\x1f\x7f]*)?"
# Exactly what ``models.operations.oauth.redirect_uri_allowed`` takes, so the document says it.
REDIRECT_URI_TEXT = (
    rf"^(https://[A-Za-z0-9][A-Za-z0-9.-]{{0,252}}|http://(localhost|127\.0\.0\.1|\[::1\]))"
    rf"{PORT}{REST}$"
)
VISIBLE_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
RedirectUri = Annotated[
    str,
    Field(
        max_length=oauth.MAX_REDIRECT_URI,
        pattern=REDIRECT_URI_TEXT,
        description="https, or http for localhost, 127.0.0.1 and [::1] only; no fragment",
    ),
]


class OAuthClientCreate(Body):
    """An aggregator of the merchant ``merchant_id``, its redirect URIs and the scopes it may ask."""

    merchant_id: Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_]{1,32}$")]
    name: Annotated[str, Field(min_length=1, max_length=200, json_schema_extra={"pattern": VISIBLE_TEXT})]
    redirect_uris: Annotated[list[RedirectUri], Field(max_length=oauth.MAX_REDIRECT_URIS)]
    scopes: Annotated[list[Scope], Field(min_length=1, max_length=len(oauth.CAMARA_SCOPES))]


class OAuthClientOut(BaseModel):
    """A client; ``client_secret`` only in the answer that made it."""

    client_id: str
    client_secret: str | None = None
    merchant_id: str
    name: str
    redirect_uris: list[str]
    scopes: list[str]
    status: Literal["active", "revoked"]
    created_at: datetime


class OAuthKeyOut(BaseModel):
    """A signing key of access and ID tokens (its public half)."""

    kid: str
    algorithm: str
    created_at: datetime
    public_jwk: dict[str, str]


def _client_view(client: OAuthClient, secret: str | None = None) -> dict[str, object]:
    view: dict[str, object] = {
        "client_id": client.id,
        "merchant_id": client.merchant_id,
        "name": client.name,
        "redirect_uris": client.redirect_uris,
        "scopes": client.scopes,
        "status": client.status.value,
        "created_at": client.created_at,
    }
    if secret is not None:
        view["client_secret"] = secret
    return view


@ops_routes.route(
    "POST",
    "/oauth_clients",
    summary="Register a CAMARA aggregator as an OAuth client",
    body=OAuthClientCreate,
    response=OAuthClientOut,
    status=201,
    errors=(400, 401, 404),
)
async def create_oauth_client(request: web.Request, body: OAuthClientCreate) -> web.Response:
    """The client and its secret, shown once (stored only as a digest)."""
    client, secret = await oauth.register_client(
        merchant_id=body.merchant_id,
        name=body.name,
        redirect_uris=list(body.redirect_uris),
        scopes=list(body.scopes),
        actor=operator(request),
    )
    return json_response(_client_view(client, secret), status=201)


@ops_routes.route("GET", "/oauth_clients/{client_id}", summary="Retrieve an OAuth client", response=OAuthClientOut)
async def get_oauth_client(request: web.Request) -> web.Response:
    """One client (never its secret)."""
    return json_response(_client_view(await oauth.find_client(request.match_info["client_id"])))


@ops_routes.route(
    "POST",
    "/oauth_clients/{client_id}/revoke",
    summary="Revoke an OAuth client",
    response=OAuthClientOut,
)
async def revoke_oauth_client(request: web.Request) -> web.Response:
    """The client gets no more tokens and the tokens it holds stop working; again, nothing changes."""
    client = await oauth.revoke_client(request.match_info["client_id"], actor=operator(request))
    return json_response(_client_view(client))


@ops_routes.route(
    "POST",
    "/oauth_keys/rotate",
    summary="Rotate the token signing key",
    response=OAuthKeyOut,
    status=201,
    errors=(401,),
)
async def rotate_oauth_key(request: web.Request) -> web.Response:
    """A new key signs from now on; the one it replaces stays in the JWKS and verifies the tokens it
    signed until they have expired."""
    row = await oauth.rotate_signing_key(actor=operator(request))
    view = {"kid": row.kid, "algorithm": row.algorithm, "created_at": row.created_at, "public_jwk": row.public_jwk}
    return json_response(view, status=201)
