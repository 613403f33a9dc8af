"""The ops API for lines and their sessions (product.md §2, §11)."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import OpsClient, row_counts
from models.audit_log import AuditEntry
from models.lines import Line, LineSession

LINE = {
    "line_id": "CAF0000000101",
    "line_type": "hikari_next",
    "flets_dot_net": False,
    "holder_name": "山田 太郎",
    "base_monthly_fee": 5500,
}


async def test_create_and_read_a_line(ops: OpsClient) -> None:
    """A created line is answered with the contract's fields and can be read back."""
    status, body = await ops.post("/ops/v1/lines", json=LINE)
    assert status == 201
    assert {k: body[k] for k in LINE} == LINE
    assert body["status"] == "active"
    assert body["monthly_limit"] == 100_000
    status, again = await ops.get(f"/ops/v1/lines/{LINE['line_id']}")
    assert status == 200
    assert again == body
    assert await AuditEntry.filter(action="line.create", target_id=LINE["line_id"]).count() == 1


async def test_adsl_line_without_flets_dot_net_is_stored_but_ineligible(ops: OpsClient) -> None:
    """An ADSL line without Flets.net exists, but is marked as unable to purchase."""
    status, body = await ops.post("/ops/v1/lines", json={**LINE, "line_type": "adsl"})
    assert status == 201
    assert body["eligible"] is False
    assert await Line.exists(line_id=LINE["line_id"])
    status, other = await ops.post(
        "/ops/v1/lines", json={**LINE, "line_id": "COP0000000102", "line_type": "adsl", "flets_dot_net": True}
    )
    assert status == 201
    assert other["eligible"] is True


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({**LINE, "line_id": "CAF123"}, "line_id", "parameter_invalid"),
        ({**LINE, "line_id": "XYZ0000000001"}, "line_id", "parameter_invalid"),
        ({**LINE, "line_id": 1234567890}, "line_id", "parameter_invalid"),
        ({**LINE, "line_type": "fiber"}, "line_type", "parameter_invalid"),
        ({**LINE, "base_monthly_fee": "5500"}, "base_monthly_fee", "parameter_invalid"),
        ({**LINE, "base_monthly_fee": 55.5}, "base_monthly_fee", "parameter_invalid"),
        ({**LINE, "base_monthly_fee": -1}, "base_monthly_fee", "parameter_invalid"),
        ({**LINE, "flets_dot_net": "yes"}, "flets_dot_net", "parameter_invalid"),
        ({**LINE, "colour": "blue"}, "colour", "parameter_unknown"),
        ({k: v for k, v in LINE.items() if k != "holder_name"}, "holder_name", "parameter_missing"),
    ],
)
async def test_bad_line_input_is_refused_naming_the_field(
    ops: OpsClient, body: dict[str, Any], param: str, code: str
) -> None:
    """Each malformed field answers 400 naming it, and no row is written anywhere."""
    before = await row_counts()
    status, answer = await ops.post("/ops/v1/lines", json=body)
    assert status == 400
    assert answer["error"]["param"] == param
    assert answer["error"]["code"] == code
    assert await row_counts() == before


async def test_malformed_json_is_a_400(ops: OpsClient) -> None:
    """A body that is not JSON, or not an object, answers invalid_json and writes nothing."""
    before = await row_counts()
    for raw in (b"{not json", b"[1, 2]", b'"text"'):
        status, answer = await ops.post("/ops/v1/lines", data=raw, headers={"Content-Type": "application/json"})
        assert status == 400, raw
        assert answer["error"]["code"] == "invalid_json"
    assert await row_counts() == before


async def test_duplicate_line_id_is_a_409(ops: OpsClient) -> None:
    """A second line with the same id is refused and the first is unchanged."""
    await ops.post("/ops/v1/lines", json=LINE)
    before = await row_counts()
    status, answer = await ops.post("/ops/v1/lines", json={**LINE, "holder_name": "別人"})
    assert status == 409
    assert answer["error"]["param"] == "line_id"
    assert await row_counts() == before
    assert (await Line.get(line_id=LINE["line_id"])).holder_name == LINE["holder_name"]


async def test_ops_api_needs_the_token(ops: OpsClient) -> None:
    """Without the ops token, or with a wrong one, nothing is answered but 401."""
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong-token-0123456789"}):
        status, answer = await ops.post("/ops/v1/lines", json=LINE, headers=headers)
        assert status == 401
        assert answer["error"]["type"] == "authentication_error"
    assert not await Line.exists(line_id=LINE["line_id"])


async def test_unknown_line_is_a_404(ops: OpsClient) -> None:
    """Reading a line that does not exist answers 404 with the error object."""
    status, answer = await ops.get("/ops/v1/lines/CAF9999999999")
    assert status == 404
    assert answer["error"]["code"] == "resource_missing"


async def test_update_line_status_limit_and_fee(ops: OpsClient) -> None:
    """PATCH changes only the given fields; a terminated line cannot be changed again."""
    await ops.post("/ops/v1/lines", json=LINE)
    path = f"/ops/v1/lines/{LINE['line_id']}"
    status, body = await ops.patch(path, json={"status": "suspended", "monthly_limit": 30_000})
    assert status == 200
    assert (body["status"], body["monthly_limit"], body["base_monthly_fee"]) == ("suspended", 30_000, 5500)
    status, body = await ops.patch(path, json={"status": "terminated"})
    assert status == 200
    assert body["status"] == "terminated"
    status, answer = await ops.patch(path, json={"status": "active"})
    assert status == 409
    assert answer["error"]["code"] == "line_terminated"
    status, answer = await ops.patch(path, json={"status": "gone"})
    assert status == 400
    assert answer["error"]["param"] == "status"


async def test_sessions_open_and_end_for_ipv4_and_ipv6(ops: OpsClient) -> None:
    """A line holds an IPv4 address and an IPv6 prefix at once; ending one leaves the other open."""
    await ops.post("/ops/v1/lines", json=LINE)
    base = f"/ops/v1/lines/{LINE['line_id']}/sessions"
    status, v4 = await ops.post(base, json={"address": "192.0.2.10"})
    assert status == 201
    assert (v4["line_id"], v4["address"], v4["ended_at"]) == (LINE["line_id"], "192.0.2.10", None)
    status, v6 = await ops.post(base, json={"address": "2001:db8:1200::/56"})
    assert status == 201
    assert v6["address"] == "2001:db8:1200::/56"
    stored = await LineSession.get(id=v6["id"])
    assert stored.contains("2001:db8:1200:ff::1")
    assert not stored.contains("2001:db8:1300::1")
    status, ended = await ops.post(f"{base}/{v4['id']}/end")
    assert status == 200
    assert ended["ended_at"] is not None
    status, listing = await ops.get(base)
    assert [s["id"] for s in listing["data"]] == [v6["id"]]


async def test_reporting_the_same_open_address_again_changes_nothing(ops: OpsClient) -> None:
    """The access network may repeat itself: the open session is answered, not duplicated."""
    await ops.post("/ops/v1/lines", json=LINE)
    base = f"/ops/v1/lines/{LINE['line_id']}/sessions"
    _, first = await ops.post(base, json={"address": "192.0.2.10"})
    status, second = await ops.post(base, json={"address": "192.0.2.10"})
    assert status == 200
    assert second["id"] == first["id"]
    assert await LineSession.filter(line_id=LINE["line_id"]).count() == 1


async def test_an_address_moves_to_the_line_that_reports_it(ops: OpsClient) -> None:
    """When another line is given an address, the old holder's open session ends."""
    await ops.post("/ops/v1/lines", json=LINE)
    await ops.post("/ops/v1/lines", json={**LINE, "line_id": "CAF0000000102"})
    _, old = await ops.post(f"/ops/v1/lines/{LINE['line_id']}/sessions", json={"address": "2001:db8:1200::/56"})
    _, new = await ops.post("/ops/v1/lines/CAF0000000102/sessions", json={"address": "2001:db8:1200:40::/64"})
    assert (await LineSession.get(id=old["id"])).ended_at is not None
    assert (await LineSession.get(id=new["id"])).ended_at is None


@pytest.mark.parametrize("address", ["not-an-ip", "192.0.2.0/24", "2001:db8::/16", "192.0.2.300", ""])
async def test_bad_session_address_is_a_400(ops: OpsClient, address: str) -> None:
    """Only an IPv4 address or an IPv6 address or prefix (/32 or longer) is a session."""
    await ops.post("/ops/v1/lines", json=LINE)
    before = await row_counts()
    status, answer = await ops.post(f"/ops/v1/lines/{LINE['line_id']}/sessions", json={"address": address})
    assert status == 400
    assert answer["error"]["param"] == "address"
    assert await row_counts() == before


async def test_termination_ends_sessions(ops: OpsClient) -> None:
    """A terminated line holds no address any more and cannot open a session."""
    await ops.post("/ops/v1/lines", json=LINE)
    base = f"/ops/v1/lines/{LINE['line_id']}/sessions"
    await ops.post(base, json={"address": "192.0.2.10"})
    await ops.patch(f"/ops/v1/lines/{LINE['line_id']}", json={"status": "terminated"})
    assert not await LineSession.exists(line_id=LINE["line_id"], ended_at=None)
    status, answer = await ops.post(base, json={"address": "192.0.2.11"})
    assert status == 409
    assert answer["error"]["code"] == "line_terminated"


async def test_a_line_gets_a_phone_number_that_no_other_line_may_take(ops: OpsClient) -> None:
    """PATCH sets the E.164 phone number (shown on the line); another line asking for it is 409 and
    keeps its own; null takes it away."""
    await ops.post("/ops/v1/lines", json=LINE)
    await ops.post("/ops/v1/lines", json={**LINE, "line_id": "CAF0000000102"})
    status, body = await ops.patch(f"/ops/v1/lines/{LINE['line_id']}", json={"phone_number": "+81312345678"})
    assert (status, body["phone_number"]) == (200, "+81312345678")
    status, body = await ops.patch("/ops/v1/lines/CAF0000000102", json={"phone_number": "+81312345678"})
    assert (status, body["error"]["code"], body["error"]["param"]) == (409, "phone_number_taken", "phone_number")
    assert (await Line.get(line_id="CAF0000000102")).phone_number is None
    status, body = await ops.patch(f"/ops/v1/lines/{LINE['line_id']}", json={"monthly_limit": 5000})
    assert (status, body["phone_number"]) == (200, "+81312345678")  # a PATCH without it leaves it
    status, body = await ops.patch(f"/ops/v1/lines/{LINE['line_id']}", json={"phone_number": None})
    assert (status, body["phone_number"]) == (200, None)
    status, body = await ops.patch("/ops/v1/lines/CAF0000000102", json={"phone_number": "+81312345678"})
    assert (status, body["phone_number"]) == (200, "+81312345678")


@pytest.mark.parametrize(
    "number", ["0312345678", "+0312345678", "+81-3-1234-5678", "+8131234567890123", "+81", 81312345678]
)
async def test_a_phone_number_not_in_e164_is_a_400_and_changes_nothing(ops: OpsClient, number: Any) -> None:
    """A number without +, with separators, too long or too short, or not a string, is refused naming the field."""
    await ops.post("/ops/v1/lines", json=LINE)
    status, body = await ops.patch(f"/ops/v1/lines/{LINE['line_id']}", json={"phone_number": number})
    assert (status, body["error"]["param"]) == (400, "phone_number")
    assert (await Line.get(line_id=LINE["line_id"])).phone_number is None
