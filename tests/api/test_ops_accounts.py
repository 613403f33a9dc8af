"""The ops API for subscriber IDs: five per line, a generated password shown once (product.md §2)."""

from __future__ import annotations

import asyncio

import pytest
from argon2 import PasswordHasher

from conftest import OpsClient, row_counts
from models.accounts import SubscriberAccount

LINE_ID = "COP0000000201"


@pytest.fixture
async def line(ops: OpsClient) -> str:
    """A provisioned line to add IDs to."""
    status, _ = await ops.post(
        "/ops/v1/lines",
        json={"line_id": LINE_ID, "line_type": "b_flets", "holder_name": "佐藤 一郎", "base_monthly_fee": 4800},
    )
    assert status == 201
    return LINE_ID


async def test_create_account_returns_the_initial_password_once(ops: OpsClient, line: str) -> None:
    """The answer carries a password that verifies against the stored argon2id hash; reads never do."""
    status, body = await ops.post(f"/ops/v1/lines/{line}/accounts", json={"login_id": "ichiro"})
    assert status == 201
    assert (body["login_id"], body["line_id"], body["is_minor"], body["monthly_limit"], body["status"]) == (
        "ichiro",
        line,
        False,
        50_000,
        "active",
    )
    password = body["initial_password"]
    assert len(password) >= 12
    stored = await SubscriberAccount.get(login_id="ichiro")
    assert stored.password_hash.startswith("$argon2id$")
    assert password not in stored.password_hash
    assert PasswordHasher().verify(stored.password_hash, password)
    status, read = await ops.get("/ops/v1/accounts/ichiro")
    assert status == 200
    assert "initial_password" not in read


async def test_minor_gets_the_minor_limit(ops: OpsClient, line: str) -> None:
    """A minor's ID defaults to 10,000 yen a month, and may not be given more (422: the amount
    is well-formed, the rule for minors refuses it)."""
    status, body = await ops.post(f"/ops/v1/lines/{line}/accounts", json={"login_id": "jiro", "is_minor": True})
    assert status == 201
    assert body["monthly_limit"] == 10_000
    status, answer = await ops.post(
        f"/ops/v1/lines/{line}/accounts", json={"login_id": "saburo", "is_minor": True, "monthly_limit": 20_000}
    )
    assert status == 422
    assert answer["error"]["param"] == "monthly_limit"
    assert not await SubscriberAccount.exists(login_id="saburo")


async def test_a_sixth_id_on_a_line_is_refused(ops: OpsClient, line: str) -> None:
    """Five IDs fit on a line; the sixth answers 409 and is not stored."""
    for n in range(5):
        status, _ = await ops.post(f"/ops/v1/lines/{line}/accounts", json={"login_id": f"member{n}"})
        assert status == 201
    before = await row_counts()
    status, answer = await ops.post(f"/ops/v1/lines/{line}/accounts", json={"login_id": "member5"})
    assert status == 409
    assert answer["error"]["code"] == "line_accounts_full"
    assert answer["error"]["param"] == "line_id"
    assert await row_counts() == before


async def test_concurrent_creations_never_make_a_sixth_id(ops: OpsClient, line: str) -> None:
    """Eight IDs asked for at once on one line: exactly five exist afterwards."""
    results = await asyncio.gather(
        *(ops.post(f"/ops/v1/lines/{line}/accounts", json={"login_id": f"rush{n}"}) for n in range(8))
    )
    assert sorted(status for status, _ in results) == [201] * 5 + [409] * 3
    assert await SubscriberAccount.filter(line_id=line).count() == 5


async def test_duplicate_login_id_is_a_409(ops: OpsClient, line: str) -> None:
    """A login_id is unique across all lines."""
    await ops.post(f"/ops/v1/lines/{line}/accounts", json={"login_id": "taken"})
    await ops.post(
        "/ops/v1/lines",
        json={"line_id": "COP0000000202", "line_type": "hikari_light", "holder_name": "x", "base_monthly_fee": 0},
    )
    before = await row_counts()
    status, answer = await ops.post("/ops/v1/lines/COP0000000202/accounts", json={"login_id": "taken"})
    assert status == 409
    assert answer["error"]["param"] == "login_id"
    assert await row_counts() == before


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"login_id": "a"}, "login_id"),
        ({"login_id": "has space"}, "login_id"),
        ({"login_id": 42}, "login_id"),
        ({"login_id": "okname", "is_minor": "no"}, "is_minor"),
        ({"login_id": "okname", "monthly_limit": -5}, "monthly_limit"),
        ({"login_id": "okname", "password": "chosen"}, "password"),
        ({}, "login_id"),
    ],
)
async def test_bad_account_input_is_refused(ops: OpsClient, line: str, body: dict[str, object], param: str) -> None:
    """Bad fields answer 400 naming the field, and no ID is created."""
    before = await row_counts()
    status, answer = await ops.post(f"/ops/v1/lines/{line}/accounts", json=body)
    assert status == 400
    assert answer["error"]["param"] == param
    assert await row_counts() == before


async def test_account_on_unknown_or_terminated_line(ops: OpsClient, line: str) -> None:
    """No ID on a line that does not exist (404) or is terminated (409)."""
    status, _ = await ops.post("/ops/v1/lines/COP0000009999/accounts", json={"login_id": "nobody"})
    assert status == 404
    await ops.patch(f"/ops/v1/lines/{line}", json={"status": "terminated"})
    status, answer = await ops.post(f"/ops/v1/lines/{line}/accounts", json={"login_id": "late"})
    assert status == 409
    assert answer["error"]["code"] == "line_terminated"


async def test_unlock_lifts_the_lock_and_is_audited(ops: OpsClient, line: str) -> None:
    """A locked ID is unlocked by support with a reason; the audit log names who and why."""
    from datetime import timedelta

    from models.audit_log import AuditEntry
    from models.clock import clock

    await ops.post(f"/ops/v1/lines/{line}/accounts", json={"login_id": "locked-one"})
    await SubscriberAccount.filter(login_id="locked-one").update(
        failed_attempts=4, locked_until=await clock.now() + timedelta(minutes=30)
    )
    status, body = await ops.post("/ops/v1/accounts/locked-one/unlock", json={"reason": "本人確認済み"})
    assert status == 200, body
    assert body["locked_until"] is None
    stored = await SubscriberAccount.get(login_id="locked-one")
    assert (stored.failed_attempts, stored.locked_until) == (0, None)
    entry = await AuditEntry.get(action="account.unlock", target_id="locked-one")
    assert (entry.actor, entry.details) == ("ops_token", {"reason": "本人確認済み"})


async def test_reset_password_answers_a_new_password_once(ops: OpsClient, line: str) -> None:
    """The new password verifies, the old one no longer does, and a read never shows it."""
    _, created = await ops.post(f"/ops/v1/lines/{line}/accounts", json={"login_id": "forgetful"})
    status, body = await ops.post("/ops/v1/accounts/forgetful/reset_password", json={})
    assert status == 200, body
    new = body["initial_password"]
    assert new != created["initial_password"]
    stored = await SubscriberAccount.get(login_id="forgetful")
    assert PasswordHasher().verify(stored.password_hash, new)
    with pytest.raises(Exception, match="does not match"):
        PasswordHasher().verify(stored.password_hash, created["initial_password"])
    _, read = await ops.get("/ops/v1/accounts/forgetful")
    assert "initial_password" not in read


async def test_unlocking_an_unknown_id_changes_nothing(ops: OpsClient, line: str) -> None:
    """404 naming login_id, and no audit entry."""
    before = await row_counts()
    status, body = await ops.post("/ops/v1/accounts/nobody-here/unlock", json={})
    assert status == 404
    assert body["error"]["param"] == "login_id"
    assert await row_counts() == before
