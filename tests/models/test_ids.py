"""Ids: one time-ordered format for every prefix, the one the month close writes in SQL."""

from __future__ import annotations

import re
import time
from pathlib import Path

import models.base
from models.base import ID_PREFIXES, new_id
from models.sql import stamp

ID_FORMAT = re.compile(r"^(?P<prefix>[a-z]+)_(?P<stamp>[0-9a-f]{11})(?P<random>[0-9a-f]{13})$")


def test_every_prefix_makes_a_prefix_and_24_hex_digits_within_32_characters() -> None:
    """Each published ``new_<prefix>_id`` makes ``<prefix>_`` then 24 hex digits, 32 chars at most."""
    for prefix in ID_PREFIXES:
        made = getattr(models.base, f"new_{prefix}_id")()
        match = ID_FORMAT.match(made)
        assert match is not None, made
        assert match["prefix"] == prefix
        assert len(made) <= 32


def test_every_prefix_a_model_uses_is_published() -> None:
    """Every ``id_factory("...")`` in the models names a prefix of ``ID_PREFIXES`` (migrations import them)."""
    used = {
        prefix
        for module in Path(models.base.__file__).parent.glob("*.py")
        for prefix in re.findall(r'id_factory\("(\w+)"\)', module.read_text(encoding="utf-8"))
    }
    assert used
    assert used <= set(ID_PREFIXES)


def test_the_head_is_the_close_s_millisecond_stamp() -> None:
    """The first 11 digits are the system clock's milliseconds, as the close's ``stamp`` writes them."""
    before = stamp()
    made = new_id("inv")
    after = stamp()
    assert before <= made[4:15] <= after


def test_ids_of_a_later_millisecond_sort_later() -> None:
    """Ids sort by the millisecond they were made in, whatever their random tails."""
    for milliseconds in (0, 0xFFF, 1_764_547_200_000, 0xFFFFFFFFFFE):
        earlier = [new_id("ch", milliseconds=milliseconds) for _ in range(50)]
        later = [new_id("ch", milliseconds=milliseconds + 1) for _ in range(50)]
        assert max(earlier) < min(later)


def test_ids_made_one_after_another_on_the_clock_sort_in_order() -> None:
    """An id made once the clock has moved to the next millisecond sorts after one made before."""
    first = new_id("evt")
    start = time.time_ns() // 1_000_000
    while time.time_ns() // 1_000_000 == start:
        pass
    assert new_id("evt") > first


def test_many_ids_in_one_millisecond_are_distinct() -> None:
    """A hundred thousand ids sharing one millisecond do not clash (52 random bits each)."""
    made = [new_id("inv", milliseconds=1_764_547_200_000) for _ in range(100_000)]
    assert len(set(made)) == len(made)
