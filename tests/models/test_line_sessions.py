"""Line sessions carry sortable address bounds, and the open sessions overlapping an address are
found by index range scans (``open_sessions_overlapping``)."""

from __future__ import annotations

import ipaddress

from tortoise import connections
from tortoise.transactions import in_transaction

from models.clock import clock
from models.lines import (
    Line,
    LineSession,
    LineType,
    address_range,
    open_sessions_overlapping,
    open_sessions_starting_within,
    open_sessions_walking_back,
)
from settings import Settings


async def _line(line_id: str) -> Line:
    now = await clock.now()
    return await Line.create(
        line_id=line_id, line_type=LineType.B_FLETS, holder_name="x", base_monthly_fee=0, created_at=now, updated_at=now
    )


async def _open(line: Line, network: str) -> LineSession:
    parsed = ipaddress.ip_network(network)
    return await LineSession.create(
        line=line,
        address=str(parsed.network_address) if parsed.num_addresses == 1 else network,
        network=str(parsed),
        family=parsed.version,
        started_at=await clock.now(),
    )


async def _overlapping(network: str, line: Line) -> list[str]:
    return [session.network for session in await open_sessions_overlapping(network, exclude_line_id=line.line_id)]


def test_address_keys_have_one_width_and_sort_like_the_addresses() -> None:
    """Keys are 33 characters for both families, IPv4 before IPv6, each in address order."""
    networks = ["10.0.0.1/32", "10.0.0.2/32", "192.168.1.1/32", "2001:db8::/48", "2001:db8:1::/48", "2400::/56"]
    keys = [address_range(network) for network in networks]
    assert {len(key) for pair in keys for key in pair} == {33}
    assert [first for first, _ in keys] == sorted(first for first, _ in keys)
    assert address_range("10.0.0.1/32") == ("4" + f"{0x0A000001:032x}", "4" + f"{0x0A000001:032x}")
    first, last = address_range("2001:db8::/48")
    assert first == "6" + "20010db8" + "0" * 24
    assert last == "6" + "20010db80000" + "f" * 20


async def test_creating_a_session_writes_its_bounds(db: Settings) -> None:
    """``LineSession.create`` with a network only stores the bounds; a changed network moves them."""
    line = await _line("CAF0000000001")
    session = await _open(line, "2001:db8:12::/56")

    stored = await LineSession.get(id=session.id)
    assert (stored.first_address, stored.last_address) == address_range("2001:db8:12::/56")
    stored.network = "2001:db8:34::/56"
    await stored.save(update_fields=["network"])
    assert (await LineSession.get(id=session.id)).first_address == address_range("2001:db8:34::/56")[0]


async def test_an_ipv4_address_held_by_another_line_overlaps(db: Settings) -> None:
    """A /32 overlaps the same /32 of another line; not a neighbour, not the line's own, not an ended one."""
    mine, other, third = await _line("CAF0000000001"), await _line("CAF0000000002"), await _line("CAF0000000003")
    await _open(other, "10.0.0.7/32")
    await _open(mine, "10.0.0.9/32")
    ended = await _open(third, "10.0.0.9/32")
    ended.ended_at = await clock.now()
    await ended.save(update_fields=["ended_at"])
    await _open(third, "10.0.0.8/32")

    assert await _overlapping("10.0.0.7/32", mine) == ["10.0.0.7/32"]
    assert await _overlapping("10.0.0.9/32", mine) == []
    assert await _overlapping("10.0.0.6/32", mine) == []
    assert await _overlapping("10.0.0.7/32", other) == []


async def test_ipv6_prefixes_containing_and_contained_overlap(db: Settings) -> None:
    """A held /48 containing the new /56 overlaps, as do held /64s inside a new /48; prefixes
    beside it, and IPv4 addresses, do not."""
    mine, wide, narrow = await _line("CAF0000000001"), await _line("CAF0000000002"), await _line("CAF0000000003")
    await _open(wide, "2001:db8:100::/48")
    await _open(narrow, "2001:db8:200:1::/64")
    await _open(narrow, "2001:db8:200:ff::/64")
    await _open(narrow, "2001:db8:201::/64")
    await _open(narrow, "32.1.13.184/32")  # 0x20010db8: the IPv4 twin of 2001:db8::

    assert await _overlapping("2001:db8:100:ab00::/56", mine) == ["2001:db8:100::/48"]
    assert await _overlapping("2001:db8:100::/56", mine) == ["2001:db8:100::/48"]
    assert await _overlapping("2001:db8:200::/48", mine) == ["2001:db8:200:1::/64", "2001:db8:200:ff::/64"]
    assert await _overlapping("2001:db8:300::/48", mine) == []
    assert await _overlapping("2001:db8::/32", mine) == [
        "2001:db8:100::/48",
        "2001:db8:200:1::/64",
        "2001:db8:200:ff::/64",
        "2001:db8:201::/64",
    ]


async def test_a_prefix_is_found_past_many_sessions_of_its_own_line_inside_it(db: Settings) -> None:
    """A line's own open sessions may nest; the walk back from the new address passes all of
    them (more than one page) to the prefix that contains it, and stops at another line."""
    mine, holder, before = await _line("CAF0000000001"), await _line("CAF0000000002"), await _line("CAF0000000003")
    await _open(before, "2001:db8:ff::/48")
    await _open(holder, "2001:db8:100::/48")
    for subnet in range(40):
        await _open(holder, f"2001:db8:100:{subnet:x}::/64")

    assert await _overlapping("2001:db8:100:ff00::/56", mine) == ["2001:db8:100::/48"]
    assert await _overlapping("2001:db8:100:5::/64", mine) == ["2001:db8:100::/48", "2001:db8:100:5::/64"]


async def test_the_nearest_session_being_the_line_s_own_ends_the_walk(db: Settings) -> None:
    """Inside the line's own open prefix no other line's session can overlap; none is returned."""
    mine, other = await _line("CAF0000000001"), await _line("CAF0000000002")
    await _open(other, "2001:db8:100::/48")
    await LineSession.filter(line_id=other.line_id).update(ended_at=await clock.now())
    await _open(mine, "2001:db8:100::/48")

    assert await _overlapping("2001:db8:100:1::/64", mine) == []


async def test_the_overlap_queries_are_index_range_scans(db: Settings) -> None:
    """Both queries, and a later page of the walk, can be served by the (ended_at, first_address)
    index alone (PostgreSQL is told to avoid sequential scans, which it prefers on tiny tables)."""
    line = await _line("CAF0000000001")
    sessions = [await _open(line, f"10.0.0.{host}/32") for host in range(1, 4)]
    first, last = address_range("10.0.0.7/32")
    connection = connections.get("default")
    for query in (
        open_sessions_starting_within(first, last),
        open_sessions_walking_back(first),
        open_sessions_walking_back(first, after=sessions[1]),
    ):
        sql = query.sql(params_inline=True)
        if db.is_sqlite:
            rows = await connection.execute_query_dict(f"EXPLAIN QUERY PLAN {sql}")
            plan = " ".join(row["detail"] for row in rows)
            assert "USING INDEX idx_line_sessio_ended_a_e800d3 (ended_at=? AND first_address" in plan, plan
            assert "SCAN" not in plan, plan
        else:
            async with in_transaction() as transaction:
                await transaction.execute_script("SET LOCAL enable_seqscan = off")
                rows = await transaction.execute_query_dict(f"EXPLAIN {sql}")
            plan = " ".join(row["QUERY PLAN"] for row in rows)
            assert "idx_line_sessio_ended_a_e800d3" in plan, plan
            assert "Seq Scan" not in plan, plan
