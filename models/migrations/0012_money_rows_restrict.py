"""Foreign keys of money rows that defaulted to CASCADE become RESTRICT: deleting a billing run
or a merchant must never delete invoices, invoice items or ledger postings with it.

On SQLite each ``AlterField`` rebuilds its table (``models.schema_editor`` keeps the indexes and
triggers). ``invoices`` and ``invoice_items`` are referred to by other tables, so the rebuilds
run with foreign key enforcement off, which SQLite allows only outside a transaction: hence
``atomic = False`` (each rebuild is still one transaction, checked with ``foreign_key_check``).
On PostgreSQL ``AlterField`` leaves a foreign key's ON DELETE rule as it is, so ``RunPython``
replaces the constraints there, each in one statement.
"""

from tortoise import fields, migrations
from tortoise.fields.base import OnDelete
from tortoise.migrations import operations as ops

# (table, column, referenced table, referenced column)
FOREIGN_KEYS = (
    ("invoices", "billing_run_id", "billing_runs", "id"),
    ("invoice_items", "merchant_id", "merchants", "id"),
    ("postings", "merchant_id", "merchants", "id"),
)


async def _set_rule_on_postgres(schema_editor, rule: str) -> None:
    if schema_editor.DIALECT == "sqlite":
        return  # the rebuilds above wrote the new rule
    for table, column, parent, key in FOREIGN_KEYS:
        names = await schema_editor.client.execute_query_dict(
            "SELECT c.conname FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid "
            "JOIN pg_namespace n ON n.oid = t.relnamespace "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = c.conkey[1] "
            "WHERE c.contype = 'f' AND n.nspname = current_schema() AND t.relname = $1 AND a.attname = $2",
            [table, column],
        )
        for row in names:
            name = row["conname"]
            await schema_editor.client.execute_script(
                f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}", ADD CONSTRAINT "{name}" '
                f'FOREIGN KEY ("{column}") REFERENCES "{parent}" ("{key}") ON DELETE {rule}'
            )


async def restrict(apps, schema_editor) -> None:
    await _set_rule_on_postgres(schema_editor, "RESTRICT")


async def cascade(apps, schema_editor) -> None:
    await _set_rule_on_postgres(schema_editor, "CASCADE")


class Migration(migrations.Migration):
    dependencies = [("models", "0011_failed_batches")]

    initial = False
    atomic = False

    operations = [
        ops.AlterField(
            model_name="Invoice",
            name="billing_run",
            field=fields.ForeignKeyField(
                "models.BillingRun",
                source_field="billing_run_id",
                null=True,
                db_constraint=True,
                to_field="id",
                related_name="invoice_set",
                on_delete=OnDelete.RESTRICT,
            ),
        ),
        ops.AlterField(
            model_name="InvoiceItem",
            name="merchant",
            field=fields.ForeignKeyField(
                "models.Merchant",
                source_field="merchant_id",
                null=True,
                db_constraint=True,
                to_field="id",
                related_name="invoice_items",
                on_delete=OnDelete.RESTRICT,
            ),
        ),
        ops.AlterField(
            model_name="Posting",
            name="merchant",
            field=fields.ForeignKeyField(
                "models.Merchant",
                source_field="merchant_id",
                null=True,
                db_constraint=True,
                to_field="id",
                related_name="postings",
                on_delete=OnDelete.RESTRICT,
            ),
        ),
        ops.RunPython(restrict, cascade),
    ]
