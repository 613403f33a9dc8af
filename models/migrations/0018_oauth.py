"""CAMARA's authorization server: the aggregators as OAuth clients, the ES256 signing keys, the
authorization codes of the sign-in page, and the access tokens already spent on a payment."""

from enum import StrEnum

from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from models.base import new_oac_id, new_oak_id
from tortoise.fields.base import OnDelete
from tortoise import fields

OAuthClientStatus = StrEnum("OAuthClientStatus", {"ACTIVE": "active", "REVOKED": "revoked"})


class Migration(migrations.Migration):
    dependencies = [("models", "0017_camara")]

    initial = False

    operations = [
        ops.CreateModel(
            name="OAuthClient",
            fields=[
                (
                    "id",
                    fields.CharField(primary_key=True, default=new_oac_id, unique=True, db_index=True, max_length=32),
                ),
                (
                    "merchant",
                    fields.ForeignKeyField(
                        "models.Merchant",
                        source_field="merchant_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="oauth_clients",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("name", fields.CharField(max_length=200)),
                (
                    "redirect_uris",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                (
                    "scopes",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("secret_hash", fields.CharField(max_length=64)),
                (
                    "status",
                    fields.CharEnumField(
                        default=OAuthClientStatus.ACTIVE,
                        description="ACTIVE: active\nREVOKED: revoked",
                        enum_type=OAuthClientStatus,
                        max_length=16,
                    ),
                ),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "oauth_clients",
                "app": "models",
                "pk_attr": "id",
                "table_description": "An aggregator registered by an operator, for a merchant (the one paid).",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="OAuthCode",
            fields=[
                ("code_hash", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                (
                    "client",
                    fields.ForeignKeyField(
                        "models.OAuthClient",
                        source_field="client_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="codes",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "account",
                    fields.ForeignKeyField(
                        "models.SubscriberAccount",
                        source_field="account_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="oauth_codes",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("redirect_uri", fields.CharField(max_length=2000)),
                ("code_challenge", fields.CharField(max_length=128)),
                (
                    "scopes",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                (
                    "authorization_details",
                    fields.JSONField(
                        default=list, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads
                    ),
                ),
                ("expires_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("used_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "oauth_codes",
                "app": "models",
                "pk_attr": "code_hash",
                "table_description": "An authorization code, given once to the client's redirect URI and exchanged once.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="OAuthKey",
            fields=[
                (
                    "kid",
                    fields.CharField(primary_key=True, default=new_oak_id, unique=True, db_index=True, max_length=32),
                ),
                ("algorithm", fields.CharField(default="ES256", max_length=16)),
                (
                    "public_jwk",
                    fields.JSONField(encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
                ),
                ("sealed_private_jwk", fields.TextField(unique=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("retired_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "oauth_keys",
                "app": "models",
                "pk_attr": "kid",
                "table_description": "An ES256 signing key: the newest unretired one signs, a retired one still verifies the",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="OAuthTokenUse",
            fields=[
                ("jti", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ("charge_id", fields.CharField(max_length=32)),
                ("used_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "oauth_token_uses",
                "app": "models",
                "pk_attr": "jti",
                "table_description": "An access token spent on a payment: its ``jti`` once, ever.",
            },
            bases=["Model"],
        ),
    ]
