"""The month close's statements: their rendered SQL for each backend is held in golden files (an
accidental change shows in a diff), and the backend of this pass plans every one of them
(types, placeholders and names are right) without running it.

Regenerate the golden files after a deliberate change: ``make golden``
(``MATOMETE_UPDATE_GOLDEN=1`` on this module).
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from tortoise import connections

from models import close_sql
from models.sql import POSTGRES, SQLITE, Dialect
from settings import Settings

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("MATOMETE_UPDATE_GOLDEN", "") in ("1", "true", "yes")
MOMENT = datetime(2030, 12, 1, tzinfo=UTC)


def rendered(dialect: Dialect) -> str:
    """Every statement of the close as the driver of ``dialect`` receives it, by name."""
    parts = []
    for statement in close_sql.STATEMENTS:
        template = statement.build(dialect)
        text = "-- not used on this backend" if template is None else dialect.text(template) + ";"
        parts.append(f"-- {statement.name}\n{text}\n")
    return "\n".join(parts)


def sample(dialect: Dialect) -> dict[str, Any]:
    """A value for every placeholder the statements name, of the type the close passes."""
    values: dict[str, Any] = {
        "period": "2030-11",
        "first": "CAF0000000001",
        "last": "CAF0000000009",
        "run": "run_x",
        "now": MOMENT,
        "due": date(2030, 12, 31),
        "start": MOMENT,
        "end": MOMENT,
        "rate": Decimal("0.1"),
        "stamp": "0123456789a",
        "no": False,
        "yes": True,
        "size": 2000,
        "charges": ["ch_x"],
        "done": ["re_x"],
        "earlier": ["inv_x"],
    }
    values |= dialect.row_values("v", close_sql.INVOICE_COLUMNS, [("inv_x", 100, "open")])
    if dialect.postgres:  # the two row sets share their alias; on SQLite one JSON text serves both
        values |= dialect.row_values("v", close_sql.TAX_COLUMNS, [("inv_x", Decimal("0.1"), 100, 9)])
    return values


@pytest.mark.parametrize("dialect", [POSTGRES, SQLITE], ids=lambda dialect: dialect.name)
def test_the_rendered_statements_match_the_golden_files(dialect: Dialect) -> None:
    """Each statement renders to exactly the SQL held in ``golden/close.<backend>.sql``."""
    path = GOLDEN / f"close.{dialect.name}.sql"
    text = rendered(dialect)
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8"), f"{path.name} differs: regenerate it if the change is meant"


async def test_every_statement_is_planned_by_this_backend(db: Settings) -> None:
    """EXPLAIN of each statement, with values of the types the close passes, succeeds on the
    backend of this pass (nothing is written)."""
    connection = connections.get("default")
    dialect = Dialect.for_connection(connection)
    explain = "EXPLAIN " if dialect.postgres else "EXPLAIN QUERY PLAN "
    planned, expected = [], [s.name for s in close_sql.STATEMENTS if s.build(dialect) is not None]
    for statement in close_sql.STATEMENTS:
        template = statement.build(dialect)
        if template is None:
            continue
        sql, values = dialect.render(template, sample(dialect))
        plan = await connection.execute_query_dict(explain + sql, values)
        assert plan, statement.name
        planned.append(statement.name)
    assert planned == expected
