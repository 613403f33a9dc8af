from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [("models", "0007_item_billing_run")]

    initial = False

    operations = [
        ops.AddIndex(
            model_name="Charge",
            index=Index(fields=["line_id", "period"]),
        ),
    ]
