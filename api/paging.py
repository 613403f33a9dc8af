"""Keyset paging, newest first, for the API's lists and the sites' tables: a page is read by
index from the row after (or before) a cursor row, never by OFFSET and never with a COUNT, so
page 500 costs what page 1 costs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from tortoise.expressions import Q
from tortoise.models import Model
from tortoise.queryset import QuerySet

from billing.errors import InvalidRequest, MatometeError
from models.base import fits_id_column

__all__ = ["KeysetPage", "keyset_page", "keyset_walk"]

M = TypeVar("M", bound=Model)


@dataclass(frozen=True)
class KeysetPage(Generic[M]):
    """Up to ``limit`` rows, newest first, and whether more lie beyond in the direction read."""

    rows: list[M]
    has_more: bool
    newest_first: bool
    after_cursor: bool = False  # read older than a cursor row (so newer rows exist)

    @property
    def has_older(self) -> bool:
        """True when a page of older rows follows."""
        return self.has_more if self.newest_first else True

    @property
    def has_newer(self) -> bool:
        """True when a page of newer rows comes before this one."""
        return self.after_cursor or (not self.newest_first and self.has_more)


async def keyset_page(
    base: QuerySet[M],
    *,
    after: str | None = None,
    before: str | None = None,
    limit: int,
    unknown: type[MatometeError] = InvalidRequest,
) -> KeysetPage[M]:
    """The rows of ``base`` just older than ``after`` (or just newer than ``before``), newest
    first; a cursor that is not a row of ``base`` is an ``unknown`` error (400 unless the caller
    says, as the API does: 404) naming it."""
    if after and before:
        raise InvalidRequest("Give starting_after or ending_before, not both.", param="ending_before")
    newest_first = True
    if after or before:
        cursor_id = after or before or ""
        param = "starting_after" if after else "ending_before"
        cursor = await base.filter(id=cursor_id).first() if fits_id_column(cursor_id) else None
        if cursor is None:
            raise unknown(f"No object {cursor_id[:40]} in this list.", param=param)
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
    return KeysetPage(rows, has_more, newest_first, after_cursor=bool(after))


async def keyset_walk(base: QuerySet[M], *, fields: Sequence[str], chunk: int) -> AsyncIterator[list[dict[str, Any]]]:
    """Every row of ``base``, newest first, as dicts of ``fields`` in lists of at most ``chunk``:
    each list is one indexed query continuing from the last row of the one before, so an export
    of any size holds one chunk in memory at a time."""
    wanted = list(dict.fromkeys([*fields, "created_at", "id"]))
    query = base
    while True:
        rows = await query.order_by("-created_at", "-id").limit(chunk).values(*wanted)
        if rows:
            yield rows
        if len(rows) < chunk:
            return
        at, last_id = rows[-1]["created_at"], rows[-1]["id"]
        query = base.filter(Q(created_at__lt=at) | Q(created_at=at, id__lt=last_id))
