"""What every model shares: prefixed random ids and the enum base for states."""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from enum import StrEnum

__all__ = ["State", "id_factory", "new_id"]

ALPHABET = string.ascii_letters + string.digits
ID_LENGTH = 24


def new_id(prefix: str) -> str:
    """An unguessable id such as ``ch_3kTq...``: the prefix says what it is, 24 base62 chars."""
    return f"{prefix}_" + "".join(secrets.choice(ALPHABET) for _ in range(ID_LENGTH))


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


# Every prefix in use, published at import so migration files can import e.g. ``new_ch_id``.
ID_PREFIXES = (
    "acct",
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
    "po",
    "re",
    "run",
    "staff",
    "sub",
    "we",
)
for _prefix in ID_PREFIXES:
    id_factory(_prefix)
