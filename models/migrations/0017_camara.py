"""CAMARA Carrier Billing (product.md §13): a line's phone number, two-step purchases (the
``reserved`` status, the line a payment was prepared for) and the CAMARA side of payments and
refunds."""

from enum import StrEnum

from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

ChargeStatus = StrEnum(
    "ChargeStatus",
    {
        "REQUIRES_CONFIRMATION": "requires_confirmation",
        "PROCESSING": "processing",
        "RESERVED": "reserved",
        "SUCCEEDED": "succeeded",
        "FAILED": "failed",
        "CANCELED": "canceled",
    },
)


class Migration(migrations.Migration):
    dependencies = [("models", "0016_staff_sign_in")]

    initial = False
    atomic = False  # rebuilding charges on SQLite needs foreign key enforcement off (models/schema_editor.py)

    operations = [
        ops.CreateModel(
            name="CamaraPayment",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "charge",
                    fields.OneToOneField(
                        "models.Charge",
                        source_field="charge_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="camara",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("client_id", fields.CharField(max_length=32)),
                ("subject", fields.CharField(max_length=64)),
                ("client_correlator", fields.CharField(null=True, max_length=256)),
                ("request_hash", fields.CharField(max_length=64)),
                ("reference_code", fields.CharField(max_length=256)),
                ("phone_number", fields.CharField(null=True, max_length=16)),
                (
                    "charging_information",
                    fields.JSONField(encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
                ),
                (
                    "charging_metadata",
                    fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
                ),
                ("merchant_identifier", fields.CharField(null=True, max_length=256)),
                (
                    "payment_details",
                    fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
                ),
                ("sink", fields.CharField(null=True, max_length=2048)),
                ("sealed_sink_credential", fields.TextField(null=True, unique=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "camara_payments",
                "app": "models",
                "unique_together": (("client_id", "reference_code"), ("client_id", "client_correlator")),
                "indexes": [Index(fields=["client_id", "created_at"])],
                "pk_attr": "id",
                "table_description": "One CAMARA payment: the charge of the same id, as an aggregator client made it.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="CamaraRefund",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "refund",
                    fields.OneToOneField(
                        "models.Refund",
                        source_field="refund_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="camara",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("client_id", fields.CharField(max_length=32)),
                ("client_correlator", fields.CharField(null=True, max_length=256)),
                ("request_hash", fields.CharField(max_length=64)),
                ("reference_code", fields.CharField(max_length=256)),
                (
                    "refund_amount",
                    fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
                ),
                (
                    "refund_details",
                    fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
                ),
                ("merchant_identifier", fields.CharField(null=True, max_length=256)),
                (
                    "charging_metadata",
                    fields.JSONField(null=True, encoder=functools.partial(dumps, separators=(",", ":")), decoder=loads),
                ),
                ("sink", fields.CharField(null=True, max_length=2048)),
                ("sealed_sink_credential", fields.TextField(null=True, unique=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "camara_refunds",
                "app": "models",
                "unique_together": (("client_id", "reference_code"), ("client_id", "client_correlator")),
                "pk_attr": "id",
                "table_description": "One CAMARA refund: the refund of the same id, as an aggregator client asked for it.",
            },
            bases=["Model"],
        ),
        ops.AlterField(
            model_name="Charge",
            name="status",
            field=fields.CharEnumField(
                default=ChargeStatus.REQUIRES_CONFIRMATION,
                description="REQUIRES_CONFIRMATION: requires_confirmation\nPROCESSING: processing\nRESERVED: reserved\nSUCCEEDED: succeeded\nFAILED: failed\nCANCELED: canceled",
                enum_type=ChargeStatus,
                max_length=24,
            ),
        ),
        ops.AddField(
            model_name="Charge",
            name="expected_line",
            field=fields.ForeignKeyField(
                "models.Line",
                source_field="expected_line_id",
                null=True,
                db_constraint=True,
                to_field="line_id",
                related_name="expected_charges",
                on_delete=OnDelete.RESTRICT,
            ),
        ),
        ops.AddField(
            model_name="Charge",
            name="two_step",
            field=fields.BooleanField(default=False, db_default=False),
        ),
        ops.AddField(
            model_name="Line",
            name="phone_number",
            field=fields.CharField(null=True, unique=True, max_length=16),
        ),
    ]
