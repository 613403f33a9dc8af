"""List endpoints: ``limit``, ``starting_after``, ``ending_before`` and ``created`` filters,
newest first, as ``{"object": "list", "data": [...], "has_more": bool}`` (product.md §9)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

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
    after, before = query.get("starting_after"), query.get("ending_before")
    if after and before:
        raise InvalidRequest("Give starting_after or ending_before, not both.", param="ending_before")
    newest_first = True
    if after or before:
        cursor_id = after or before
        cursor = await base.filter(id=cursor_id).first()
        if cursor is None:
            raise InvalidRequest(
                f"No object {cursor_id} in this list.", param="starting_after" if after else "ending_before"
            )
        at = cursor.created_at  # type: ignore[attr-defined]
        if after:
            base = base.filter(Q(created_at__lt=at) | Q(created_at=at, id__lt=cursor_id))
        else:
            base = base.filter(Q(created_at__gt=at) | Q(created_at=at, id__gt=cursor_id))
            newest_first = False
    ordering = ("-created_at", "-id") if newest_first else ("created_at", "id")
    rows = await base.order_by(*ordering).limit(limit + 1)
    has_more = len(rows) > limit
    rows = rows[:limit]
    if not newest_first:
        rows.reverse()
    return {"object": "list", "data": [view(row) for row in rows], "has_more": has_more}
