"""The sites' sign-in: server-side sessions, merchant users' lockout and TOTP, each API key's last use,
a merchant's "TOTP for everyone", and indexes for the merchant site's purchase filters."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [("models", "0013_session_address_ranges")]

    initial = False

    operations = [
        ops.CreateModel(
            name="SiteSession",
            fields=[
                ("id", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ("site", fields.CharField(max_length=16)),
                ("user_id", fields.CharField(max_length=32)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("last_seen_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("ended_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "site_sessions",
                "app": "models",
                "indexes": [Index(fields=["site", "user_id"])],
                "pk_attr": "id",
                "table_description": "One sign-in of one user of one site.",
            },
            bases=["Model"],
        ),
        ops.AddField(
            model_name="ApiKey",
            name="last_used_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddIndex(
            model_name="Charge",
            index=Index(fields=["merchant_id", "status", "created_at"]),
        ),
        ops.AddIndex(
            model_name="Charge",
            index=Index(fields=["merchant_id", "billing_status", "created_at"]),
        ),
        ops.AddField(
            model_name="Merchant",
            name="require_totp",
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.AddField(
            model_name="MerchantUser",
            name="failed_attempts",
            field=fields.SmallIntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name="MerchantUser",
            name="last_sign_in_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name="MerchantUser",
            name="locked_until",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name="MerchantUser",
            name="totp_enabled",
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.AddField(
            model_name="MerchantUser",
            name="totp_secret",
            field=fields.CharField(null=True, max_length=64),
        ),
    ]
