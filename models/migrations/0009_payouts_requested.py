from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("models", "0008_charges_by_line")]

    initial = False

    operations = [
        ops.AddField(
            model_name="BillingRun",
            name="payouts_requested_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
