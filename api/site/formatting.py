"""How pages show money and times: yen with separators, times in Japan time (JST)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.numbers import format_decimal
from jinja2 import pass_context
from jinja2.runtime import Context

from api.site.i18n import language_of, translations

__all__ = ["FILTERS", "JST", "YEN_MESSAGE"]

JST = ZoneInfo("Asia/Tokyo")
YEN_MESSAGE = "¥%(amount)s"


@pass_context
def yen(context: Context, amount: int | None) -> str:
    """``1,200円`` on a Japanese page, ``¥1,200`` on an English one; blank for None."""
    if amount is None:
        return ""
    locale = language_of(context)
    figure = format_decimal(abs(amount), locale=locale)
    sign = "-" if amount < 0 else ""
    # The unit's place is the language's: "¥1,200" in English, "1,200円" from the Japanese catalogue.
    return sign + translations(locale).gettext(YEN_MESSAGE) % {"amount": figure}


def number(value: int | None) -> str:
    """``12,345``; blank for None."""
    return "" if value is None else f"{value:,}"


def jst(moment: datetime | None) -> str:
    """``2026-12-01 09:10`` in Japan time; blank for None."""
    return "" if moment is None else moment.astimezone(JST).strftime("%Y-%m-%d %H:%M")


def jst_date(moment: datetime | date | None) -> str:
    """``2026-12-01``: the day in Japan; blank for None."""
    if moment is None:
        return ""
    if isinstance(moment, datetime):
        return moment.astimezone(JST).date().isoformat()
    return moment.isoformat()


FILTERS: dict[str, Callable[..., Any]] = {"yen": yen, "number": number, "jst": jst, "jst_date": jst_date}
