from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [("models", "0009_payouts_requested")]

    initial = False

    operations = [
        ops.AddIndex(
            model_name="Refund",
            index=Index(fields=["charge_id"]),
        ),
        ops.AddIndex(
            model_name="Refund",
            index=Index(fields=["credited", "charge_id"]),
        ),
    ]
