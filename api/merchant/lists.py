"""List endpoints: ``limit``, ``starting_after``, ``ending_before`` and ``created`` filters,
newest first, as ``{"object": "list", "data": [...], "has_more": bool}`` (product.md §9)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from tortoise.models import Model
from tortoise.queryset import QuerySet

from api.paging import keyset_page
from billing.errors import InvalidRequest

__all__ = ["page"]

M = TypeVar("M", bound=Model)
PAGING = frozenset(
    {"limit", "starting_after", "ending_before", "created[gt]", "created[gte]", "created[lt]", "created[lte]"}
)
MAX_LIMIT = 100


def _integer(query: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    raw = query.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or not low <= int(raw) <= high:
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
        bound = _integer(query, name, 0, 10**11)
        if bound is not None:
            base = base.filter(**{f"created_at__{lookup}": datetime.fromtimestamp(bound, UTC)})
    found = await keyset_page(base, after=query.get("starting_after"), before=query.get("ending_before"), limit=limit)
    return {"object": "list", "data": [view(row) for row in found.rows], "has_more": found.has_more}
