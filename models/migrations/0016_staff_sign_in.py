"""The operator console: staff sign-in under the lockout rule (failed attempts, lock, last sign-in),
the roles product.md §10 names (``finance`` was never one), and what the scheduler last did."""

from enum import StrEnum

from tortoise import fields, migrations
from tortoise.migrations import operations as ops

StaffRole = StrEnum("StaffRole", {"SUPPORT": "support", "BILLING": "billing", "ADMIN": "admin"})


class Migration(migrations.Migration):
    dependencies = [("models", "0015_site_page_indexes")]

    initial = False

    operations = [
        ops.CreateModel(
            name="SchedulerJob",
            fields=[
                ("name", fields.CharField(primary_key=True, unique=True, db_index=True, max_length=64)),
                ("last_run_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ("last_done", fields.IntField(default=0)),
                ("last_error", fields.TextField(null=True, unique=False)),
                ("last_ok_at", fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ("failures", fields.IntField(default=0)),
            ],
            options={
                "table": "scheduler_jobs",
                "app": "models",
                "pk_attr": "name",
                "table_description": "The last run of one scheduler job (system time: this is plumbing, not money).",
            },
            bases=["Model"],
        ),
        ops.AlterField(
            model_name="StaffUser",
            name="role",
            field=fields.CharEnumField(
                description="SUPPORT: support\nBILLING: billing\nADMIN: admin", enum_type=StaffRole, max_length=16
            ),
        ),
        ops.AddField(
            model_name="StaffUser",
            name="failed_attempts",
            field=fields.SmallIntField(default=0, db_default=0),
        ),
        ops.AddField(
            model_name="StaffUser",
            name="last_sign_in_at",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name="StaffUser",
            name="locked_until",
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
