"""Fixed statements for the hot paths (``POST /v1/charges`` runs them hundreds of times a second).

Tortoise builds each query anew on every call and runs a new row through the model's field
validation and ``save()``; on the charge API that costs more CPU than the database work itself
(issue 14's profile). Here each statement is a fixed text per dialect, which asyncpg prepares
once per connection and reuses: a SELECT written out by hand runs through ``models.sql.execute``
(its template rendered once) and comes back as models by ``from_row``; ``insert(...)`` runs the
model's own INSERT (the one Tortoise's executor builds once per model) with the values
converted by the fields themselves. Callers pass values their own validation already checked (a
pydantic body, a value they made); the column constraints are the backstop. Both run on the
connection of the transaction in progress, like any Tortoise query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.models import Model

__all__ = ["from_row", "insert"]

M = TypeVar("M", bound=Model)


def _connection(model: type[Model]) -> BaseDBAsyncClient:
    """The connection ``model``'s queries would use now (the transaction's, inside one)."""
    return model._meta.db


def from_row(model: type[M], row: dict[str, Any], prefix: str = "") -> M:
    """The ``model`` instance a Tortoise SELECT would make of ``row``'s columns (named
    ``prefix`` + column)."""
    return model._init_from_db(**{column: row[prefix + column] for column in model._meta.db_fields})


@dataclass(frozen=True)
class _InsertPlan:
    """What ``insert`` needs of a model on one connection, worked out once."""

    statement: str
    parameters: list[tuple[str, Any]]  # (column, field) in the statement's order
    defaults: list[tuple[str, Any]]  # (column, field) with a default or generated
    columns: frozenset[str]
    generated: str | None


_PLANS: dict[tuple[type[Model], str], _InsertPlan] = {}


def _plan(model: type[Model], connection: BaseDBAsyncClient) -> _InsertPlan:
    key = (model, connection.capabilities.dialect)  # the INSERT differs by backend only
    plan = _PLANS.get(key)
    if plan is None:
        meta = model._meta
        executor = connection.executor_class(model=model, db=connection)  # builds the model's INSERT once
        by_column = {column: meta.fields_map[meta.fields_db_projection_reverse[column]] for column in meta.db_fields}
        generated = meta.generated_db_fields
        plan = _PLANS[key] = _InsertPlan(
            statement=executor.insert_query,
            parameters=[(meta.fields_db_projection[name], meta.fields_map[name]) for name in executor.regular_columns],
            defaults=list(by_column.items()),
            columns=frozenset(by_column),
            generated=generated[0] if generated else None,
        )
    return plan


async def insert(model: type[M], **given: Any) -> M:
    """A new ``model`` row of ``given`` (foreign keys as ``<name>_id``) and the fields' defaults
    for the rest, inserted by the model's fixed INSERT; the instance as a SELECT would return it."""
    connection = _connection(model)
    plan = _plan(model, connection)
    if not plan.columns.issuperset(given):
        raise TypeError(f"{model.__name__} has no columns {sorted(set(given) - plan.columns)}")
    values = dict(given)
    for column, field in plan.defaults:
        if column not in values:
            default = field.default
            values[column] = None if field.generated else default() if callable(default) else default
    result = await connection.execute_insert(
        plan.statement, [field.to_db_value(values[column], None) for column, field in plan.parameters]
    )
    if plan.generated is not None:
        values[plan.generated] = result if isinstance(result, int) else result[plan.generated]
    return from_row(model, values)
