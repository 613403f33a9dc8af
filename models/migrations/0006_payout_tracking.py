"""Payout tracking: how much of each invoice item has been paid out, and statement lines that
may name one item in several payouts (an item collected in instalments is paid out in each).

Tortoise 1.1 cannot drop a table-level UNIQUE constraint on SQLite, and ``payout_lines`` has
held no rows yet (nothing wrote payouts before this), so the table is made again.
"""

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops


class Migration(migrations.Migration):
    dependencies = [("models", "0005_billing_batches")]

    initial = False

    operations = [
        ops.AddField(
            model_name="InvoiceItem",
            name="paid_out_amount",
            field=fields.BigIntField(default=0),
        ),
        ops.DeleteModel(name="PayoutLine"),
        ops.CreateModel(
            name="PayoutLine",
            fields=[
                ("id", fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                (
                    "payout",
                    fields.ForeignKeyField(
                        "models.Payout",
                        source_field="payout_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="statement",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("kind", fields.CharField(max_length=24)),
                (
                    "item",
                    fields.ForeignKeyField(
                        "models.InvoiceItem",
                        source_field="item_id",
                        null=True,
                        db_constraint=True,
                        to_field="id",
                        related_name="payout_lines",
                        on_delete=OnDelete.RESTRICT,
                    ),
                ),
                ("description", fields.CharField(max_length=500)),
                ("amount", fields.BigIntField()),
            ],
            options={
                "table": "payout_lines",
                "app": "models",
                "unique_together": (("payout_id", "item_id", "kind"),),
                "pk_attr": "id",
                "table_description": "One statement line: a collected item, a refund adjustment, the fee.",
            },
            bases=["Model"],
        ),
    ]
