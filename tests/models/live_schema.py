"""Read a database's rules (keys, indexes, foreign keys, checks, triggers) in one form for both backends.

Each rule becomes one line of text, the same line on SQLite and PostgreSQL for the same rule:

- ``primary key <table> (<columns>)``
- ``unique <table> (<columns>)`` and ``index <table> (<columns>)``, columns in index order;
  names are left out (SQLite names a table constraint's index ``sqlite_autoindex_...``, and a
  rebuilt table's unique constraints come back as named unique indexes: the same rule);
- ``foreign key <table> (<columns>) -> <table> (<columns>) on delete <RULE>``;
- ``check <table> <name>: <condition>``. PostgreSQL has CHECK constraints; our SQLite schema
  has, for each rule, a pair of triggers ``<name>_insert`` and ``<name>_update`` that abort the
  same writes (migration 0002). A pair counts as the check only when both triggers are there
  and test the same condition; a lone trigger is reported as a trigger of its own. Conditions
  are parsed and written back one way (``NEW.`` dropped, ``BETWEEN`` spelled out, PostgreSQL's
  extra parentheses gone), so ``slot IS NULL OR (slot BETWEEN 1 AND 5)`` and PostgreSQL's
  ``((slot IS NULL) OR ((slot >= 1) AND (slot <= 5)))`` read alike;
- ``trigger <table> <name>`` for any other trigger.
"""

from __future__ import annotations

import re
import sqlite3
import tempfile
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from conftest import BACKEND, DATABASE_URL, TABLES

ON_DELETE_PG = {"a": "NO ACTION", "r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}
CHECK_TRIGGER = re.compile(
    r'^CREATE TRIGGER "(?P<trigger>\w+)" BEFORE (?P<when>INSERT|UPDATE) ON "(?P<table>\w+)" '
    r"WHEN NOT \((?P<condition>.*)\) BEGIN SELECT RAISE\(ABORT, 'CHECK constraint failed: (?P<name>\w+)'\); END$",
    re.DOTALL,
)
TOKEN = re.compile(r"\s*(>=|<=|<>|!=|=|<|>|\(|\)|'[^']*'|[A-Za-z_][A-Za-z_0-9.]*|\d+(?:\.\d+)?)")
KEYWORDS = {"and", "or", "not", "is", "null", "between"}


class _Parser:
    """A recursive descent parser for the boolean conditions our checks use."""

    def __init__(self, text: str) -> None:
        self.tokens: list[str] = []
        position = 0
        while position < len(text.rstrip()):
            match = TOKEN.match(text, position)
            if match is None:
                raise ValueError(text)
            self.tokens.append(match.group(1))
            position = match.end()
        self.position = 0

    def _peek(self) -> str | None:
        return self.tokens[self.position].lower() if self.position < len(self.tokens) else None

    def _take(self, expected: str | None = None) -> str:
        token = self.tokens[self.position]
        if expected is not None and token.lower() != expected:
            raise ValueError(f"expected {expected}, got {token}")
        self.position += 1
        return token

    def parse(self) -> tuple[Any, ...]:
        tree = self._or()
        if self.position != len(self.tokens):
            raise ValueError("trailing tokens")
        return tree

    def _or(self) -> tuple[Any, ...]:
        parts = [self._and()]
        while self._peek() == "or":
            self._take()
            parts.append(self._and())
        return parts[0] if len(parts) == 1 else ("or", *parts)

    def _and(self) -> tuple[Any, ...]:
        parts = [self._not()]
        while self._peek() == "and":
            self._take()
            parts.append(self._not())
        return parts[0] if len(parts) == 1 else ("and", *parts)

    def _not(self) -> tuple[Any, ...]:
        if self._peek() == "not":
            self._take()
            return ("not", self._not())
        return self._atom()

    def _operand(self) -> str:
        token = self._take()
        if token.lower() in KEYWORDS or token in "()":
            raise ValueError(f"operand expected, got {token}")
        return token.lower().removeprefix("new.") if not token.startswith("'") else token

    def _atom(self) -> tuple[Any, ...]:
        if self._peek() == "(":
            self._take()
            inner = self._or()
            self._take(")")
            return inner
        left = self._operand()
        token = self._peek()
        if token == "is":
            self._take()
            negated = self._peek() == "not"
            if negated:
                self._take()
            self._take("null")
            return ("cmp", left, "IS NOT" if negated else "IS", "NULL")
        if token == "between":
            self._take()
            low = self._operand()
            self._take("and")
            high = self._operand()
            return ("and", ("cmp", left, ">=", low), ("cmp", left, "<=", high))
        operator = self._take()
        return ("cmp", left, "<>" if operator == "!=" else operator, self._operand())


def _render(tree: tuple[Any, ...], parent: str | None = None) -> str:
    kind = tree[0]
    if kind == "cmp":
        return f"{tree[1]} {tree[2]} {tree[3]}"
    if kind == "not":
        return f"NOT ({_render(tree[1])})"
    parts: list[str] = []
    for child in tree[1:]:  # flatten a AND (b AND c) into one AND
        if child[0] == kind:
            parts.extend(_render(grandchild, kind) for grandchild in child[1:])
        else:
            parts.append(_render(child, kind))
    text = f" {kind.upper()} ".join(parts)
    return f"({text})" if parent is not None and parent != kind else text


def canonical_condition(text: str) -> str:
    """A check's condition written one way for both backends (the text itself if unparsable)."""
    try:
        return _render(_Parser(text).parse())
    except (ValueError, IndexError):
        return "unparsed: " + " ".join(text.split())


def _columns(names: list[str] | tuple[str, ...]) -> str:
    return "(" + ", ".join(names) + ")"


def _table_check_constraints(create_sql: str) -> list[tuple[str, str]]:
    """``CONSTRAINT "name" CHECK (...)`` clauses of a SQLite ``CREATE TABLE``, parentheses balanced."""
    found = []
    for match in re.finditer(r'CONSTRAINT\s+"?(\w+)"?\s+CHECK\s*\(', create_sql, flags=re.IGNORECASE):
        depth, position = 1, match.end()
        while depth and position < len(create_sql):
            depth += {"(": 1, ")": -1}.get(create_sql[position], 0)
            position += 1
        found.append((match.group(1), create_sql[match.end() : position - 1]))
    return found


def _sqlite_keys(connection: sqlite3.Connection, table: str) -> set[str]:
    rules = set()
    primary = sorted((row["pk"], row["name"]) for row in connection.execute(f'PRAGMA table_info("{table}")'))
    if any(pk for pk, _ in primary):
        rules.add(f"primary key {table} {_columns([name for pk, name in primary if pk])}")
    for index in connection.execute(f'PRAGMA index_list("{table}")').fetchall():
        if index["origin"] == "pk":
            continue
        info = connection.execute(f'PRAGMA index_info("{index["name"]}")').fetchall()
        columns = [row["name"] or "<expression>" for row in sorted(info, key=lambda row: row["seqno"])]
        kind = "unique" if index["unique"] else "index"
        partial = " where <partial>" if index["partial"] else ""
        rules.add(f"{kind} {table} {_columns(columns)}{partial}")
    return rules


def _sqlite_foreign_keys(connection: sqlite3.Connection, table: str) -> set[str]:
    keys: dict[int, list[sqlite3.Row]] = defaultdict(list)
    for row in connection.execute(f'PRAGMA foreign_key_list("{table}")'):
        keys[row["id"]].append(row)
    rules = set()
    for rows in keys.values():
        rows.sort(key=lambda row: row["seq"])
        rules.add(
            f"foreign key {table} {_columns([row['from'] for row in rows])} -> {rows[0]['table']} "
            f"{_columns([row['to'] for row in rows])} on delete {rows[0]['on_delete']}"
        )
    return rules


def _sqlite_checks_and_triggers(connection: sqlite3.Connection, table: str) -> set[str]:
    (create_sql,) = connection.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", [table]
    ).fetchone()
    rules = {
        f"check {table} {name}: {canonical_condition(condition)}"
        for name, condition in _table_check_constraints(create_sql)
    }
    halves: dict[tuple[str, str], dict[str, str]] = defaultdict(dict)
    for trigger, sql in connection.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?", [table]
    ):
        match = CHECK_TRIGGER.match(sql)
        if match is None or match["trigger"] != f"{match['name']}_{match['when'].lower()}":
            rules.add(f"trigger {table} {trigger}")
            continue
        halves[match["name"], canonical_condition(match["condition"])][match["when"]] = trigger
    for (name, condition), whens in halves.items():
        if set(whens) == {"INSERT", "UPDATE"}:
            rules.add(f"check {table} {name}: {condition}")
        else:
            rules.update(f"trigger {table} {trigger}" for trigger in whens.values())
    return rules


def read_sqlite_schema(path: str, tables: list[str] = TABLES) -> set[str]:
    """The rules of the SQLite database at ``path``, one line each, for ``tables``."""
    rules: set[str] = set()
    with sqlite3.connect(path) as connection:
        connection.row_factory = sqlite3.Row
        for table in tables:
            rules |= _sqlite_keys(connection, table)
            rules |= _sqlite_foreign_keys(connection, table)
            rules |= _sqlite_checks_and_triggers(connection, table)
    return rules


PG_INDEXES = """
SELECT t.relname AS table_name, i.indisunique AS is_unique, i.indisprimary AS is_primary,
       i.indpred IS NOT NULL AS is_partial,
       ARRAY(SELECT COALESCE(a.attname, '<expression>') FROM unnest(i.indkey) WITH ORDINALITY AS k(attnum, n)
             LEFT JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum ORDER BY k.n) AS columns
FROM pg_index i JOIN pg_class t ON t.oid = i.indrelid JOIN pg_namespace s ON s.oid = t.relnamespace
WHERE s.nspname = current_schema() AND t.relname = ANY($1::text[])
"""
PG_CONSTRAINTS = """
SELECT t.relname AS table_name, c.conname AS name, c.contype::text AS kind, c.confdeltype::text AS on_delete,
       pg_get_constraintdef(c.oid) AS definition, p.relname AS parent,
       ARRAY(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum ORDER BY k.n) AS columns,
       ARRAY(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY AS k(attnum, n)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum ORDER BY k.n) AS parent_columns
FROM pg_constraint c JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace s ON s.oid = t.relnamespace
LEFT JOIN pg_class p ON p.oid = c.confrelid
WHERE s.nspname = current_schema() AND t.relname = ANY($1::text[]) AND c.contype IN ('f', 'c')
"""
PG_TRIGGERS = """
SELECT t.relname AS table_name, g.tgname AS name
FROM pg_trigger g JOIN pg_class t ON t.oid = g.tgrelid JOIN pg_namespace s ON s.oid = t.relnamespace
WHERE s.nspname = current_schema() AND t.relname = ANY($1::text[]) AND NOT g.tgisinternal
"""


async def read_postgres_schema(url: str, tables: list[str] = TABLES) -> set[str]:
    """The rules of the PostgreSQL database at ``url``, one line each, for ``tables``."""
    import asyncpg

    rules: set[str] = set()
    connection = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        for row in await connection.fetch(PG_INDEXES, tables):
            kind = "primary key" if row["is_primary"] else "unique" if row["is_unique"] else "index"
            partial = " where <partial>" if row["is_partial"] else ""
            rules.add(f"{kind} {row['table_name']} {_columns(row['columns'])}{partial}")
        for row in await connection.fetch(PG_CONSTRAINTS, tables):
            if row["kind"] == "f":
                rules.add(
                    f"foreign key {row['table_name']} {_columns(row['columns'])} -> {row['parent']} "
                    f"{_columns(row['parent_columns'])} on delete {ON_DELETE_PG[row['on_delete']]}"
                )
            else:
                condition = row["definition"].removeprefix("CHECK ").removesuffix(" NOT VALID")
                rules.add(f"check {row['table_name']} {row['name']}: {canonical_condition(condition)}")
        for row in await connection.fetch(PG_TRIGGERS, tables):
            rules.add(f"trigger {row['table_name']} {row['name']}")
    finally:
        await connection.close()
    return rules


async def read_schema(url: str, tables: list[str] = TABLES) -> set[str]:
    """The rules of the database at ``url`` (SQLite or PostgreSQL), one line each."""
    if url.startswith("sqlite://"):
        return read_sqlite_schema(url.removeprefix("sqlite://"), tables)
    return await read_postgres_schema(url, tables)


def schema_differences(expected: set[str], live: set[str]) -> list[str]:
    """What the database lacks and what it has besides the expected rules, one line each."""
    return [f"missing: {rule}" for rule in sorted(expected - live)] + [
        f"extra:   {rule}" for rule in sorted(live - expected)
    ]


@asynccontextmanager
async def scratch_database() -> AsyncIterator[str]:
    """An empty database of this run's backend, dropped after the block (PostgreSQL)."""
    if BACKEND != "services":
        yield f"sqlite://{Path(tempfile.mkdtemp(prefix='matomete-schema-')) / 'db.sqlite3'}"
        return
    import asyncpg

    name = f"matomete_scratch_{uuid.uuid4().hex[:12]}"
    base = DATABASE_URL.rsplit("/", 1)[0]
    admin_url = (base + "/postgres").replace("postgres://", "postgresql://", 1)
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
