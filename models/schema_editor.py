"""SQLite table rebuilds that keep the table's indexes and triggers, and every other table's rows.

SQLite cannot alter a column or a constraint in place, so Tortoise 1.1 rebuilds the table
(``AlterField``, ``RemoveField``, ``AddConstraint``, ``RemoveConstraint``): create ``new__t``, copy
the rows, drop ``t``, rename ``new__t`` to ``t``. Its rebuild writes only the columns, so it loses
what ``t`` had besides them: the ``unique_together`` constraints, the indexes, and the triggers
that stand in for CHECK rules on SQLite (migration 0002). After one ``AlterField`` on
``invoices`` the database accepted two invoices for one line and period and a negative
``amount_paid``. And with foreign keys enforced, ``DROP TABLE t`` first deletes every row of
``t``, which deletes (``CASCADE``) or refuses (``RESTRICT``) the rows of the tables that refer
to ``t``.

``RebuildKeepingSqliteSchemaEditor`` follows one rule on every rebuild:

- before it, read the table's indexes and triggers from the database itself (so those written
  by hand in ``RunPython`` are kept too, not only those the model declares);
- run the rebuild with foreign key enforcement off, in a transaction of its own, so the drop
  touches no other table; then ``PRAGMA foreign_key_check`` the table and the tables that refer
  to it, and roll back if a row lost its parent. Inside a transaction SQLite cannot turn
  enforcement off, so a rebuild of a table that others refer to is refused there: such a
  migration sets ``atomic = False`` (each rebuild is still one transaction);
- after it, create every index and trigger again: an index on a removed column goes with the
  column (as on PostgreSQL), an index on a renamed column follows the new name, and a trigger
  that names a removed or renamed column stops the migration instead of being lost.

``use_rebuild_keeping_editor()`` makes Tortoise's migration executor (``tortoise migrate`` and
``models.migrate.apply_migrations`` alike) build this editor for SQLite connections;
``settings.database.tortoise_config`` calls it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from tortoise.backends.base.client import TransactionalDBClient
from tortoise.fields.base import Field
from tortoise.migrations.exceptions import TortoiseMigrationError
from tortoise.migrations.schema_editor import SqliteSchemaEditor
from tortoise.models import Model

__all__ = [
    "RebuildKeepingSqliteSchemaEditor",
    "RebuildRefusedError",
    "TableExtras",
    "read_table_extras",
    "use_rebuild_keeping_editor",
]


class RebuildRefusedError(TortoiseMigrationError):
    """A SQLite table rebuild would lose or break data or a rule, so the migration stops."""


@dataclass(frozen=True)
class KeptIndex:
    """One index of a table as SQLite reports it; ``sql`` is None for a constraint's own index."""

    name: str
    unique: bool
    columns: tuple[str | None, ...]  # None for an expression
    origin: str  # "c": CREATE INDEX, "u": a UNIQUE constraint, "pk": the primary key
    partial: bool
    sql: str | None


@dataclass(frozen=True)
class KeptTrigger:
    """One trigger of a table and the statement that created it."""

    name: str
    sql: str


@dataclass(frozen=True)
class TableExtras:
    """What a table has besides its columns, read from the live database."""

    indexes: tuple[KeptIndex, ...]
    triggers: tuple[KeptTrigger, ...]


async def _rows(client: Any, sql: str, values: Sequence[object] = ()) -> list[dict[str, Any]]:
    return list(await client.execute_query_dict(sql, list(values)))


async def read_table_extras(client: Any, table: str) -> TableExtras:
    """The indexes and triggers of ``table`` as they are in the database behind ``client``."""
    sql_by_name = {
        row["name"]: row["sql"]
        for row in await _rows(
            client, "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?", [table]
        )
    }
    indexes = []
    for row in await _rows(client, f'PRAGMA index_list("{table}")'):
        info = await _rows(client, f'PRAGMA index_info("{row["name"]}")')
        indexes.append(
            KeptIndex(
                name=row["name"],
                unique=bool(row["unique"]),
                columns=tuple(column["name"] for column in sorted(info, key=lambda column: column["seqno"])),
                origin=row["origin"],
                partial=bool(row["partial"]),
                sql=sql_by_name.get(row["name"]),
            )
        )
    triggers = tuple(
        KeptTrigger(name=row["name"], sql=row["sql"])
        for row in await _rows(
            client,
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ? ORDER BY name",
            [table],
        )
    )
    return TableExtras(indexes=tuple(sorted(indexes, key=lambda index: index.name)), triggers=triggers)


def _column(field: Field[Any]) -> str:
    return field.source_field or field.model_field_name


def _mentions(sql: str, column: str) -> bool:
    return re.search(rf"(?<![\w$]){re.escape(column)}(?![\w$])", sql, flags=re.IGNORECASE) is not None


class RebuildKeepingSqliteSchemaEditor(SqliteSchemaEditor):
    """Tortoise's SQLite schema editor, whose table rebuilds keep indexes, triggers and rows."""

    async def _remake_table(
        self,
        model: type[Model],
        create_field: Field[Any] | None = None,
        delete_field: Field[Any] | None = None,
        alter_fields: list[tuple[Field[Any], Field[Any]]] | None = None,
    ) -> None:
        table = model._meta.db_table
        renamed = {_column(old): _column(new) for old, new in alter_fields or () if _column(old) != _column(new)}
        # A unique index of one altered column is the new definition's to make (or not).
        redefined = {_column(new) for _old, new in alter_fields or ()}
        dropped = {_column(delete_field)} if delete_field is not None else set()
        extras = await read_table_extras(self.client, table)
        for trigger in extras.triggers:
            for column in (*dropped, *renamed):
                if _mentions(trigger.sql, column):
                    raise RebuildRefusedError(
                        f"rebuilding {table!r} would break trigger {trigger.name!r}, which names column "
                        f"{column!r}: drop or rewrite the trigger in the migration before this operation"
                    )
        async with self._enforcement_off(table):
            await super()._remake_table(
                model, create_field=create_field, delete_field=delete_field, alter_fields=alter_fields
            )
            await self._restore(model, extras, renamed=renamed, redefined=redefined, dropped=dropped)
            await self._check_foreign_keys(table)

    async def _restore(
        self,
        model: type[Model],
        extras: TableExtras,
        *,
        renamed: dict[str, str],
        redefined: set[str],
        dropped: set[str],
    ) -> None:
        """Create again, on the rebuilt table, what the old one had besides its columns."""
        table = model._meta.db_table
        rebuilt = (
            TableExtras(indexes=(), triggers=()) if self.collect_sql else await read_table_extras(self.client, table)
        )
        present = {index.columns for index in rebuilt.indexes if index.unique}
        for index in extras.indexes:
            if index.origin == "pk" or dropped.intersection(index.columns):
                continue
            if index.origin == "u" and len(index.columns) == 1 and index.columns[0] in redefined:
                continue
            columns = tuple(renamed.get(column, column) if column else column for column in index.columns)
            if index.unique and columns in present:
                continue  # the rebuilt table's own definition made it again
            moved = any(column in renamed for column in index.columns)
            if index.sql is not None and not moved:
                await self._execute(index.sql)
                continue
            if index.partial or None in columns:
                raise RebuildRefusedError(
                    f"cannot keep index {index.name!r} of {table!r} over renamed columns: "
                    "drop it before this operation and create it again after"
                )
            named = [column for column in columns if column is not None]
            name = index.name if index.sql is not None else self._get_unique_constraint_name(model, named)
            unique = "UNIQUE " if index.unique else ""
            quoted = ", ".join(f'"{column}"' for column in named)
            await self._execute(f'CREATE {unique}INDEX "{name}" ON "{table}" ({quoted})')
        for trigger in extras.triggers:
            await self._execute(trigger.sql)

    async def _execute(self, sql: str) -> None:
        """Run one statement whole (a trigger's body has semicolons ``_run_sql`` would split on)."""
        if self.collect_sql:
            self.collected_sql.append(sql)
        else:
            await self.client.execute_query(sql)

    async def _referring_tables(self, table: str) -> list[str]:
        names = [
            row["name"]
            for row in await _rows(self.client, "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        ]
        referring = []
        for name in names:
            keys = await _rows(self.client, f'PRAGMA foreign_key_list("{name}")')
            if any(key["table"] == table for key in keys):
                referring.append(name)
        return referring

    async def _foreign_keys_enforced(self) -> bool:
        return bool((await _rows(self.client, "PRAGMA foreign_keys"))[0]["foreign_keys"])

    @asynccontextmanager
    async def _enforcement_off(self, table: str) -> AsyncIterator[None]:
        """The block runs in one transaction with foreign key enforcement off, or not at all."""
        if self.collect_sql:
            yield
            return
        if isinstance(self.client, TransactionalDBClient):
            # SQLite ignores ``PRAGMA foreign_keys`` inside a transaction.
            referring = await self._referring_tables(table) if await self._foreign_keys_enforced() else []
            if referring:
                raise RebuildRefusedError(
                    f"rebuilding {table!r} inside a transaction would delete or refuse the rows of "
                    f"{', '.join(referring)} that refer to it (SQLite drops the old table with foreign "
                    "keys enforced): set atomic = False on the migration, so that each rebuild runs in a "
                    "transaction of its own with enforcement off"
                )
            yield
            return
        outer_client, outer_atomic = self.client, self.atomic_migration
        enforced = await self._foreign_keys_enforced()
        if enforced:
            await outer_client.execute_query("PRAGMA foreign_keys = OFF")
        try:
            async with outer_client._in_transaction() as transaction:
                # statements one by one on the transaction: executescript would commit it
                self.client, self.atomic_migration = transaction, True
                yield
        finally:
            self.client, self.atomic_migration = outer_client, outer_atomic
            if enforced:
                await outer_client.execute_query("PRAGMA foreign_keys = ON")

    async def _check_foreign_keys(self, table: str) -> None:
        if self.collect_sql:
            return
        for name in {table, *await self._referring_tables(table)}:
            broken = await _rows(self.client, f'PRAGMA foreign_key_check("{name}")')
            if broken:
                raise RebuildRefusedError(
                    f"after rebuilding {table!r}, {len(broken)} row(s) of {name!r} refer to no parent "
                    f"(first: {dict(broken[0])})"
                )


def use_rebuild_keeping_editor() -> None:
    """Make Tortoise's migration executor use ``RebuildKeepingSqliteSchemaEditor`` for SQLite.

    The executor picks its editor class by the connection's module from names it imported, with
    no setting to change it, so the name is replaced there. Calling again changes nothing.
    """
    from tortoise.migrations import executor

    executor.SqliteSchemaEditor = RebuildKeepingSqliteSchemaEditor  # type: ignore[attr-defined]
