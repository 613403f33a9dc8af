from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("models", "0010_refunds_by_charge")]

    initial = False

    operations = [
        ops.AddField(
            model_name="BillingBatch",
            name="error",
            field=fields.CharField(null=True, max_length=500),
        ),
        ops.AddField(
            model_name="BillingBatch",
            name="failed_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
