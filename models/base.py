"""What every model shares: prefixed time-ordered ids and the enum base for states."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from enum import StrEnum

__all__ = ["ID_COLUMN_LENGTH", "ID_PREFIXES", "State", "fits_id_column", "id_factory", "new_id"]

STAMP_DIGITS = 11
RANDOM_DIGITS = 13
ID_LENGTH = STAMP_DIGITS + RANDOM_DIGITS
ID_COLUMN_LENGTH = 32  # every prefixed id column (``CharField(max_length=32)``)


def fits_id_column(value: str) -> bool:
    """Whether ``value`` could be an id at all: a longer one is no object's (and would make the
    database refuse the lookup instead of answering "none")."""
    return len(value) <= ID_COLUMN_LENGTH


def new_id(prefix: str, *, milliseconds: int | None = None) -> str:
    """An unguessable id such as ``ch_018c2a3b4d5e9f0a1b2c3d4e``: the prefix says what it is, then
    24 hex digits, the same format the month close writes in SQL (``models.sql.Dialect.new_id``).

    The first 11 digits are the system clock's milliseconds (``milliseconds`` when given), so ids
    made later sort later and a table's index takes new ids at its end, not on every page; the
    last 13 are random (52 bits from ``secrets``), so ids made in one millisecond do not clash.
    """
    stamp = time.time_ns() // 1_000_000 if milliseconds is None else milliseconds
    return f"{prefix}_{stamp:0{STAMP_DIGITS}x}{secrets.randbits(4 * RANDOM_DIGITS):0{RANDOM_DIGITS}x}"


def id_factory(prefix: str) -> Callable[[], str]:
    """A default for a primary key field, e.g. ``default=id_factory("ch")``.

    The function is published in this module as ``new_ch_id`` and so on, because migration
    files refer to a field's default by its import path.
    """
    name = f"new_{prefix}_id"
    existing = globals().get(name)
    if existing is not None:
        return existing  # type: ignore[no-any-return]

    def make() -> str:
        return new_id(prefix)

    make.__name__ = make.__qualname__ = name
    globals()[name] = make
    return make


class State(StrEnum):
    """States are stored as their lower-case names, exactly as the API shows them."""


# Every prefix in use, published at import so migration files can import e.g. ``new_ch_id``
# without importing the model that uses it (tests/models/test_ids.py checks the list is whole).
ID_PREFIXES = (
    "acct",
    "att",
    "ch",
    "col",
    "evt",
    "inv",
    "je",
    "key",
    "ls",
    "mer",
    "msg",
    "muser",
    "oac",
    "oak",
    "po",
    "re",
    "run",
    "staff",
    "sub",
    "we",
)
for _prefix in ID_PREFIXES:
    id_factory(_prefix)
