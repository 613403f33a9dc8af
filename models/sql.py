"""Hand-written SQL for the two backends: one placeholder syntax, one ``Dialect`` per backend.

Templates name their values ``%(name)s``, or ``%(name:type)s`` where PostgreSQL needs the type
(``%(ids:varchar[])s``). ``Dialect.render`` turns a template and its values into the driver's
form: ``$1::type``, ``$2``, ... on PostgreSQL (one number per occurrence, so each is typed by its
own context) and ``?`` on SQLite, where a list goes as JSON text and a ``Decimal`` as text.

Everything else that differs between SQLite and PostgreSQL in the SQL the month close, the
audit and the sites' figures write is a method of ``Dialect``, so a statement reads the same on
both backends and its differences are named, not scattered: list membership, a derived table
of rows from Python, the close's time-ordered ids, epoch seconds, Japan-time days, JSON
objects, and whether the rows an ``UPDATE`` returns can feed an ``INSERT`` in the same statement.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from typing import Any

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from models.base import RANDOM_DIGITS, STAMP_DIGITS

__all__ = ["POSTGRES", "SQLITE", "Dialect", "execute", "literal", "stamp"]

PLACEHOLDER = re.compile(r"%\((\w+)(?::([\w\[\]]+))?\)s")


def literal(value: str) -> str:
    """``value`` as a quoted SQL string literal (for a state name taken from its enum, so the
    statement's text is fixed and a plan is not left guessing at a parameter)."""
    text = value.value if isinstance(value, StrEnum) else value
    return "'" + text.replace("'", "''") + "'"


def stamp() -> str:
    """The system clock's milliseconds in hex, as ``models.base.new_id`` starts every id: the
    time-ordered head of the ids one batch writes (``Dialect.new_id``), given as ``stamp``."""
    return f"{time.time_ns() // 1_000_000:0{STAMP_DIGITS}x}"


@lru_cache(maxsize=1024)
def _rendered(postgres: bool, template: str) -> tuple[str, tuple[str, ...]]:
    """A template's SQL for one backend and its placeholders' names in order (each template is
    rendered once: the charge API runs the same few hundreds of times a second)."""
    names: list[str] = []

    def placeholder(match: re.Match[str]) -> str:
        names.append(match.group(1))
        if not postgres:
            return "?"
        sql_type = match.group(2)
        return f"${len(names)}::{sql_type}" if sql_type else f"${len(names)}"

    return PLACEHOLDER.sub(placeholder, template), tuple(names)


@dataclass(frozen=True)
class Dialect:
    """The SQL of one backend (``postgres`` or ``sqlite``, Tortoise's dialect names)."""

    name: str

    @classmethod
    def for_connection(cls, connection: BaseDBAsyncClient | None = None) -> Dialect:
        """The dialect of ``connection`` (the default connection when not given)."""
        client = connection if connection is not None else connections.get("default")
        return POSTGRES if client.capabilities.dialect == "postgres" else SQLITE

    @property
    def postgres(self) -> bool:
        """True on PostgreSQL."""
        return self.name == "postgres"

    def text(self, template: str) -> str:
        """The template's SQL with its placeholders in the driver's form (no values needed)."""
        return self._render(template)[0]

    def render(self, template: str, params: Mapping[str, Any]) -> tuple[str, list[Any]]:
        """``(sql, values)`` for the driver: each placeholder's value, in order of appearance."""
        sql, names = self._render(template)
        return sql, [self._value(params[name]) for name in names]

    def _render(self, template: str) -> tuple[str, list[str]]:
        sql, names = _rendered(self.postgres, template)
        return sql, list(names)

    def _value(self, value: Any) -> Any:
        if self.postgres:
            return value
        if isinstance(value, list | tuple):
            return json.dumps([str(item) if isinstance(item, Decimal) else item for item in value])
        return str(value) if isinstance(value, Decimal) else value

    def one_of(self, column: str, name: str) -> str:
        """``column`` is one of the ids in the list value ``name``: an index lookup per id,
        whatever the planner thinks of tables that grew within the close."""
        if self.postgres:
            return f"{column} = ANY(%({name}:varchar[])s)"
        return f"{column} IN (SELECT value FROM json_each(%({name})s))"

    def rows(self, alias: str, columns: Sequence[tuple[str, str]]) -> str:
        """A derived table ``alias`` of rows given from Python (``row_values`` makes its
        values), its ``columns`` as (name, PostgreSQL type): one array per column through
        ``unnest`` on PostgreSQL, one JSON text through ``json_each`` on SQLite."""
        names = ", ".join(name for name, _ in columns)
        if self.postgres:
            arrays = ", ".join(f"%({alias}_{name}:{sql_type}[])s" for name, sql_type in columns)
            return f"(SELECT * FROM unnest({arrays}) AS u({names})) AS {alias}"
        picks = ", ".join(f"json_extract(value, '$[{n}]') AS {name}" for n, (name, _) in enumerate(columns))
        return f"(SELECT {picks} FROM json_each(%({alias}_rows)s)) AS {alias}"

    def row_values(
        self, alias: str, columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]]
    ) -> dict[str, Any]:
        """The values of ``rows(alias, columns)`` for ``rows`` (tuples in column order)."""
        if self.postgres:
            return {f"{alias}_{name}": [row[n] for row in rows] for n, (name, _) in enumerate(columns)}
        return {f"{alias}_rows": [[str(v) if isinstance(v, Decimal) else v for v in row] for row in rows]}

    def new_id(self, prefix: str) -> str:
        """A fresh ``prefix_`` id in ``models.base.new_id``'s format: the ``stamp`` value (11 hex
        digits, see ``stamp``) then 13 random ones (52 bits: ten thousand ids sharing a stamp
        clash once in ~10^8 batches). Ids a batch writes sort together and after the batches
        before, so its index entries go to a few pages at the end of each index."""
        if self.postgres:
            return f"'{prefix}_' || %(stamp:varchar)s || substr(md5(gen_random_uuid()::text), 1, {RANDOM_DIGITS})"
        return f"'{prefix}_' || %(stamp:varchar)s || substr(lower(hex(randomblob(7))), 1, {RANDOM_DIGITS})"

    def epoch_seconds(self, column: str) -> str:
        """Whole seconds since 1970 of a timestamp column (``int(datetime.timestamp())``)."""
        if self.postgres:
            return f"FLOOR(date_part('epoch', {column}))::bigint"
        return f"CAST(strftime('%s', {column}) AS INTEGER)"

    def jst_day(self, column: str) -> str:
        """The Japan-time calendar day of a timestamp column, as ``YYYY-MM-DD`` text (to group
        by). Japan keeps no summer time, so SQLite's fixed nine hours is exact."""
        if self.postgres:
            return f"to_char({column} AT TIME ZONE 'Asia/Tokyo', 'YYYY-MM-DD')"
        return f"date({column}, '+9 hours')"

    def json_column(self, column: str) -> str:
        """A JSON column as a JSON value inside ``json_object`` (SQLite keeps JSON as text)."""
        return column if self.postgres else f"json({column})"

    def json_object(self, pairs: Sequence[tuple[str, str]]) -> str:
        """A JSON object of ``(key, SQL expression)`` pairs."""
        body = ", ".join(f"{literal(key)}, {expression}" for key, expression in pairs)
        return f"jsonb_build_object({body})" if self.postgres else f"json_object({body})"

    @property
    def update_feeds_insert(self) -> bool:
        """True when the rows an ``UPDATE ... RETURNING`` changes can feed an ``INSERT`` in the
        same statement (``WITH c AS (UPDATE ... RETURNING *) INSERT ... FROM c``): PostgreSQL
        only; SQLite takes a second statement."""
        return self.postgres


POSTGRES = Dialect("postgres")
SQLITE = Dialect("sqlite")


async def execute(
    template: str, params: Mapping[str, Any] | None = None, *, connection: BaseDBAsyncClient | None = None
) -> list[dict[str, Any]]:
    """Run one templated statement on ``connection`` (the default one, which is the current
    transaction's inside ``in_transaction``); its rows as dicts."""
    client = connection if connection is not None else connections.get("default")
    sql, values = Dialect.for_connection(client).render(template, params or {})
    rows: list[dict[str, Any]] = await client.execute_query_dict(sql, values)
    return rows
