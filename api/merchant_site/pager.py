"""The newer/older links of a keyset-paged table on the merchant site (``?after=`` / ``?before=``)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from api.paging import KeysetPage

__all__ = ["page_links"]


def page_links(request: web.Request, found: KeysetPage[Any], **keep: str) -> dict[str, str | None]:
    """``previous_url`` (newer rows) and ``next_url`` (older rows) of ``found``, a page read
    with the request's ``after``/``before``, keeping the filters in ``keep``; None where there
    is no such page."""
    kept = {name: value for name, value in keep.items() if value}

    def link(cursor: str, row_id: str) -> str:
        return f"{request.path}?{urlencode({**kept, cursor: row_id})}"

    rows = found.rows
    newer = found.has_newer
    return {
        "previous_url": link("before", rows[0].id) if rows and newer else None,
        "next_url": link("after", rows[-1].id) if rows and found.has_older else None,
    }
