from tortoise import migrations
from tortoise.migrations import operations as ops
from enum import StrEnum
from models.base import new_att_id
from tortoise.fields.base import OnDelete
from tortoise import fields


# Enum types frozen as they were when this migration was written, from the descriptions below:
# a migration must not change when a model's enum does. CharEnumField needs an enum type (the
# column itself is a plain VARCHAR); the model's own field type is kept so that the autodetector
# sees no change.
FailureCode = StrEnum(
    "FailureCode",
    {
        "INVALID_CREDENTIALS": "invalid_credentials",
        "ACCOUNT_LOCKED": "account_locked",
        "LINE_MISMATCH": "line_mismatch",
        "LINE_INACTIVE": "line_inactive",
        "LINE_INELIGIBLE": "line_ineligible",
        "LIMIT_EXCEEDED": "limit_exceeded",
        "MERCHANT_INACTIVE": "merchant_inactive",
        "EXPIRED": "expired",
    },
)


class Migration(migrations.Migration):
    dependencies = [("models", "0002_check_constraints")]

    initial = False

    operations = [
        ops.CreateModel(
            name="ConfirmationAttempt",
            fields=[
                (
                    "id",
                    fields.CharField(primary_key=True, default=new_att_id, unique=True, db_index=True, max_length=32),
                ),
                (
                    "charge",
                    fields.ForeignKeyField(
                        "models.Charge",
                        source_field="charge_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="attempts",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("login_id", fields.CharField(max_length=64)),
                ("sealed_password", fields.TextField(null=True, unique=False)),
                ("client_address", fields.CharField(max_length=64)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("decided_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                (
                    "failure_code",
                    fields.CharEnumField(
                        null=True,
                        description="INVALID_CREDENTIALS: invalid_credentials\nACCOUNT_LOCKED: account_locked\nLINE_MISMATCH: line_mismatch\nLINE_INACTIVE: line_inactive\nLINE_INELIGIBLE: line_ineligible\nLIMIT_EXCEEDED: limit_exceeded\nMERCHANT_INACTIVE: merchant_inactive\nEXPIRED: expired",
                        enum_type=FailureCode,
                        max_length=24,
                    ),
                ),
            ],
            options={
                "table": "confirmation_attempts",
                "app": "models",
                "pk_attr": "id",
                "table_description": "One sign-in on a confirmation page, waiting for the auth worker.",
            },
            bases=["Model"],
        ),
    ]
