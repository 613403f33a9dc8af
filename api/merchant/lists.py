"""List endpoints: ``limit``, ``starting_after``, ``ending_before`` and ``created`` filters,
newest first, as ``{"object": "list", "data": [...], "has_more": bool}`` (product.md §9)."""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, create_model
from tortoise.models import Model
from tortoise.queryset import QuerySet

from api.paging import keyset_page
from api.routes import ID_SHAPE
from billing.errors import InvalidRequest, NotFound, Unprocessable

__all__ = ["list_of", "list_query", "page"]

M = TypeVar("M", bound=Model)
PAGING = frozenset(
    {"limit", "starting_after", "ending_before", "created[gt]", "created[gte]", "created[lt]", "created[lte]"}
)
MAX_LIMIT = 100
MAX_CREATED = 10**11
CURSOR = re.compile(ID_SHAPE)
_CURSOR_SCHEMA = {"type": "string", "pattern": f"^{ID_SHAPE}$"}
_CREATED_SCHEMA = {"type": "integer", "minimum": 0, "maximum": MAX_CREATED, "description": "Unix seconds"}
PAGING_QUERY: dict[str, dict[str, Any]] = {
    "limit": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": 10},
    "starting_after": {**_CURSOR_SCHEMA, "description": "The id of an object of this list: the page after it"},
    "ending_before": {
        **_CURSOR_SCHEMA,
        "description": "The id of an object of this list: the page before it (not with starting_after: 422)",
    },
    **{f"created[{bound}]": _CREATED_SCHEMA for bound in ("gt", "gte", "lt", "lte")},
}


def list_query(**filters: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The query parameters of a list: paging, ``created`` bounds and its own ``filters``."""
    return {**PAGING_QUERY, **filters}


def list_of(model: type[BaseModel]) -> type[BaseModel]:
    """The list object of ``model`` (``{"object": "list", "data": [...], "has_more": bool}``)."""
    fields: dict[str, Any] = {"object": (Literal["list"], ...), "data": (list[model], ...), "has_more": (bool, ...)}  # type: ignore[valid-type]
    listed: type[BaseModel] = create_model(
        f"{model.__name__.removesuffix('Out')}List",
        __doc__=f"A page of {model.__name__.removesuffix('Out')} objects, newest first.",
        **fields,
    )
    return listed


def _integer(query: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise InvalidRequest(f"{name} must be an integer from {low} to {high}.", param=name)
    return int(raw)


async def page(
    query: Mapping[str, str],
    base: QuerySet[M],
    *,
    view: Callable[[M], Any],
    filters: Collection[str] = (),
) -> dict[str, Any]:
    """One page of ``base`` for the request's query string; unknown parameters are refused."""
    unknown = sorted(set(query) - PAGING - set(filters))
    if unknown:
        raise InvalidRequest(f"Unknown query parameter: {unknown[0]}.", param=unknown[0], code="parameter_unknown")
    limit = _integer(query, "limit", 1, MAX_LIMIT) or 10
    for name, lookup in (
        ("created[gt]", "gt"),
        ("created[gte]", "gte"),
        ("created[lt]", "lt"),
        ("created[lte]", "lte"),
    ):
        bound = _integer(query, name, 0, MAX_CREATED)
        if bound is not None:
            base = base.filter(**{f"created_at__{lookup}": datetime.fromtimestamp(bound, UTC)})
    if "starting_after" in query and "ending_before" in query:
        # Each is well-formed alone; the pair is refused by a rule the document states in words.
        raise Unprocessable("Give starting_after or ending_before, not both.", param="ending_before")
    for name in ("starting_after", "ending_before"):
        if name in query and not CURSOR.fullmatch(query[name]):
            raise InvalidRequest(f"{name} must be an object's id.", param=name)
    found = await keyset_page(
        base, after=query.get("starting_after"), before=query.get("ending_before"), limit=limit, unknown=NotFound
    )
    return {"object": "list", "data": [view(row) for row in found.rows], "has_more": found.has_more}
