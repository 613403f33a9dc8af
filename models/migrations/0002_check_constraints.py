"""CHECK constraints that keep money and limits sane, written by hand.

Tortoise 1.1's ``CreateModel`` ignores ``Meta.constraints``, and its SQLite ``AddConstraint``
rebuilds the table and loses the unique indexes. So: ``ALTER TABLE ... ADD CONSTRAINT`` on
PostgreSQL, and on SQLite a pair of triggers per rule that abort the same writes.
"""

from tortoise import migrations
from tortoise.migrations import operations as ops

CHECKS = (
    ("lines", "lines_base_fee_not_negative", "base_monthly_fee >= 0"),
    ("lines", "lines_limit_not_negative", "monthly_limit >= 0"),
    ("subscriber_accounts", "accounts_slot_1_to_5", "slot IS NULL OR (slot BETWEEN 1 AND 5)"),
    ("subscriber_accounts", "accounts_limit_not_negative", "monthly_limit >= 0"),
    ("merchants", "merchants_max_charge_positive", "max_charge_amount >= 1"),
    ("merchants", "merchants_setup_fee_not_negative", "setup_fee >= 0"),
    ("charges", "charges_amount_positive", "amount >= 1"),
    ("charges", "charges_refund_within_amount", "refunded_amount >= 0 AND refunded_amount <= amount"),
    ("refunds", "refunds_amount_positive", "amount >= 1"),
    ("subscriptions", "subscriptions_amount_positive", "amount >= 1"),
    (
        "invoice_items",
        "invoice_items_collected_within_amount",
        "collected_amount >= 0 AND (amount < 0 OR collected_amount <= amount)",
    ),
    ("invoices", "invoices_paid_not_negative", "amount_paid >= 0"),
)


def _sqlite_triggers(table: str, name: str, check: str) -> list[str]:
    condition = " ".join(
        f"NEW.{word}"
        if word.islower() and word.isidentifier() and word not in ("null", "and", "or", "is", "between", "not")
        else word
        for word in check.replace("(", "( ").replace(")", " )").split()
    )
    return [
        f'CREATE TRIGGER "{name}_{when}" BEFORE {when.upper()} ON "{table}" '
        f"WHEN NOT ({condition}) BEGIN SELECT RAISE(ABORT, 'CHECK constraint failed: {name}'); END"
        for when in ("insert", "update")
    ]


async def add_checks(apps, schema_editor) -> None:
    for table, name, check in CHECKS:
        if schema_editor.DIALECT == "sqlite":
            statements = _sqlite_triggers(table, name, check)
        else:
            statements = [f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" CHECK ({check})']
        for statement in statements:
            await schema_editor.client.execute_script(statement)


async def drop_checks(apps, schema_editor) -> None:
    for table, name, _check in CHECKS:
        if schema_editor.DIALECT == "sqlite":
            statements = [f'DROP TRIGGER "{name}_insert"', f'DROP TRIGGER "{name}_update"']
        else:
            statements = [f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"']
        for statement in statements:
            await schema_editor.client.execute_script(statement)


class Migration(migrations.Migration):
    dependencies = [("models", "0001_initial")]

    initial = False

    operations = [ops.RunPython(add_checks, drop_checks)]
