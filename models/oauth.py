"""The OAuth 2.0 / OpenID Connect authorization server of CAMARA Carrier Billing (product.md §13):
the aggregators registered as clients, the keys access tokens are signed with, the authorization
codes of the sign-in page, and the tokens already spent on a payment.

A client secret is a long random string, stored as its SHA-256 digest (a slow hash adds nothing);
a signing key's private half is sealed with the platform's secret key; a code is stored as its
digest only, so neither a database dump nor a log can replay one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from models.base import State, id_factory

if TYPE_CHECKING:
    from models.accounts import SubscriberAccount
    from models.merchants import Merchant

__all__ = ["OAuthClient", "OAuthClientStatus", "OAuthCode", "OAuthKey", "OAuthTokenUse"]


class OAuthClientStatus(State):
    """A revoked client can get no token, and the tokens it holds stop working."""

    ACTIVE = "active"
    REVOKED = "revoked"


class OAuthClient(Model):
    """An aggregator registered by an operator, for a merchant (the one paid)."""

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("oac"))
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="oauth_clients", on_delete=fields.RESTRICT
    )
    if TYPE_CHECKING:
        merchant_id: str
    name = fields.CharField(max_length=200)
    redirect_uris: list[str] = fields.JSONField(default=list)
    scopes: list[str] = fields.JSONField(default=list)
    secret_hash = fields.CharField(max_length=64)
    status = fields.CharEnumField(OAuthClientStatus, max_length=16, default=OAuthClientStatus.ACTIVE)
    created_at = fields.DatetimeField()

    class Meta:
        table = "oauth_clients"


class OAuthKey(Model):
    """An ES256 signing key: the newest unretired one signs, a retired one still verifies the
    tokens it signed until they have all expired."""

    kid = fields.CharField(max_length=32, primary_key=True, default=id_factory("oak"))
    algorithm = fields.CharField(max_length=16, default="ES256")
    public_jwk: dict[str, Any] = fields.JSONField()
    sealed_private_jwk = fields.TextField()
    created_at = fields.DatetimeField()
    retired_at = fields.DatetimeField(null=True)

    class Meta:
        table = "oauth_keys"


class OAuthCode(Model):
    """An authorization code, given once to the client's redirect URI and exchanged once."""

    code_hash = fields.CharField(max_length=64, primary_key=True)
    client: fields.ForeignKeyRelation[OAuthClient] = fields.ForeignKeyField(
        "models.OAuthClient", related_name="codes", on_delete=fields.CASCADE
    )
    account: fields.ForeignKeyRelation[SubscriberAccount] = fields.ForeignKeyField(
        "models.SubscriberAccount", related_name="oauth_codes", on_delete=fields.CASCADE
    )
    if TYPE_CHECKING:
        client_id: str
        account_id: str
    redirect_uri = fields.CharField(max_length=2000)
    code_challenge = fields.CharField(max_length=128)
    scopes: list[str] = fields.JSONField(default=list)
    authorization_details: list[dict[str, Any]] = fields.JSONField(default=list)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "oauth_codes"


class OAuthTokenUse(Model):
    """An access token spent on a payment: its ``jti`` once, ever."""

    jti = fields.CharField(max_length=64, primary_key=True)
    charge_id = fields.CharField(max_length=32)
    used_at = fields.DatetimeField()

    class Meta:
        table = "oauth_token_uses"
