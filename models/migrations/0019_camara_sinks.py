"""CAMARA sinks on the webhook engine: an endpoint's ``kind`` (a merchant's own, or a CAMARA
payment's or refund's sink, found by its URL), and the refund a sink's delivery reports."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [("models", "0018_oauth")]

    initial = False
    atomic = False  # a foreign key added on SQLite rebuilds the table with enforcement off (models/schema_editor.py)

    operations = [
        ops.AddField(
            model_name="WebhookEndpoint",
            name="kind",
            field=fields.CharField(default="standard", db_default="standard", max_length=16),
        ),
        ops.AddIndex(
            model_name="WebhookEndpoint",
            index=Index(fields=["merchant_id", "kind", "url"]),
        ),
        ops.AddField(
            model_name="WebhookDelivery",
            name="refund",
            field=fields.ForeignKeyField(
                "models.Refund",
                source_field="refund_id",
                null=True,
                db_constraint=True,
                to_field="id",
                related_name="sink_deliveries",
                on_delete=OnDelete.RESTRICT,
            ),
        ),
    ]
