from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [("models", "0004_subscription_expiry")]

    initial = False

    operations = [
        ops.CreateModel(
            name="BillingBatch",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "run",
                    fields.ForeignKeyField(
                        "models.BillingRun",
                        source_field="run_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="batches",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("first_line_id", fields.CharField(max_length=13)),
                ("last_line_id", fields.CharField(max_length=13)),
                ("done_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "billing_batches",
                "app": "models",
                "unique_together": (("run_id", "first_line_id"),),
                "pk_attr": "id",
                "table_description": "One batch of a close: the lines ``first_line_id`` to ``last_line_id``. Marked done in the",
            },
            bases=["Model"],
        ),
        ops.AddIndex(
            model_name="BillingRun",
            index=Index(fields=["period", "status"]),
        ),
    ]
