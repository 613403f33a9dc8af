"""Indexes for the merchant site's pages: subscriptions by status, an endpoint's delivery log, and a
delivery's attempts, each read a page at a time."""

from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.indexes import Index


class Migration(migrations.Migration):
    dependencies = [("models", "0014_site_sign_in")]

    initial = False

    operations = [
        ops.AddIndex(
            model_name="DeliveryAttempt",
            index=Index(fields=["delivery_id"]),
        ),
        ops.AddIndex(
            model_name="Subscription",
            index=Index(fields=["merchant_id", "status", "created_at"]),
        ),
        ops.AddIndex(
            model_name="WebhookDelivery",
            index=Index(fields=["endpoint_id", "created_at"]),
        ),
    ]
