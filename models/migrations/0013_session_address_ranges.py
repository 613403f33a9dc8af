"""Each line session's first and last address as text keys that sort like the addresses, and an
index on ``(ended_at, first_address)``: the open sessions overlapping a new address are found by
index range scans instead of reading every open session of the network.

The columns are added nullable, filled for the existing rows, then made NOT NULL (on SQLite
that rebuilds ``line_sessions``, keeping its indexes: ``models.schema_editor``).
"""

import ipaddress

from tortoise import fields, migrations
from tortoise.indexes import Index
from tortoise.migrations import operations as ops

BATCH = 5000


def _address_range(network: str) -> tuple[str, str]:
    """As ``models.lines.address_range`` was written with this migration: the family digit, then
    the first (last) address of the network as 32 hex digits."""
    parsed = ipaddress.ip_network(network)
    first, last = int(parsed.network_address), int(parsed.broadcast_address)
    return f"{parsed.version}{first:032x}", f"{parsed.version}{last:032x}"


async def fill_ranges(apps, schema_editor) -> None:
    client = schema_editor.client
    sqlite = schema_editor.DIALECT == "sqlite"
    select = (
        "SELECT id, network FROM line_sessions WHERE id > ? ORDER BY id LIMIT ?"
        if sqlite
        else "SELECT id, network FROM line_sessions WHERE id > $1 ORDER BY id LIMIT $2"
    )
    update = (
        "UPDATE line_sessions SET first_address = ?, last_address = ? WHERE id = ?"
        if sqlite
        else "UPDATE line_sessions SET first_address = $1, last_address = $2 WHERE id = $3"
    )
    after = ""
    while True:
        rows = await client.execute_query_dict(select, [after, BATCH])
        if not rows:
            return
        await client.execute_many(update, [[*_address_range(row["network"]), row["id"]] for row in rows])
        after = rows[-1]["id"]


async def nothing(apps, schema_editor) -> None:
    return


class Migration(migrations.Migration):
    dependencies = [("models", "0012_money_rows_restrict")]

    initial = False

    operations = [
        ops.AddField(
            model_name="LineSession",
            name="first_address",
            field=fields.CharField(null=True, max_length=33),
        ),
        ops.AddField(
            model_name="LineSession",
            name="last_address",
            field=fields.CharField(null=True, max_length=33),
        ),
        ops.RunPython(fill_ranges, nothing),
        ops.AlterField(
            model_name="LineSession",
            name="first_address",
            field=fields.CharField(max_length=33),
        ),
        ops.AlterField(
            model_name="LineSession",
            name="last_address",
            field=fields.CharField(max_length=33),
        ),
        ops.AddIndex(
            model_name="LineSession",
            index=Index(fields=["ended_at", "first_address"]),
        ),
    ]
