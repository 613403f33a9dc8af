"""The ops API for merchants: contract, bank account, fee plan, API keys (product.md §7, §9, §11)."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from conftest import OpsClient, row_counts
from models.merchants import ApiKey, BankAccount, FeePlan, Merchant
from tests_support import MERCHANT_BODY

MERCHANT: dict[str, Any] = MERCHANT_BODY


async def test_create_merchant_shows_its_secrets_once(ops: OpsClient) -> None:
    """The API key and return-signing secret appear in the creation answer only; the key is stored hashed."""
    status, body = await ops.post("/ops/v1/merchants", json=MERCHANT)
    assert status == 201
    assert body["id"].startswith("mer_")
    assert body["status"] == "active"
    assert body["api_key"].startswith("sk_live_")
    assert len(body["return_signing_secret"]) == 64
    assert body["bank_account"]["holder_kana"] == "ｽﾄﾘ-ﾑﾄﾞｳｶﾞ(ｶ"
    assert body["fee_plans"] == [
        {"effective_from": "2000-01", "rate": "0.0500", "threshold": "600", "per_line_amount": "31.50"}
    ]
    key = await ApiKey.get(merchant_id=body["id"])
    assert key.key_hash == hashlib.sha256(body["api_key"].encode()).hexdigest()
    status, read = await ops.get(f"/ops/v1/merchants/{body['id']}")
    assert status == 200
    assert "api_key" not in read
    assert "return_signing_secret" not in read


async def test_fee_plan_setup_fee_and_maximum_are_kept(ops: OpsClient) -> None:
    """A merchant's own fee plan, setup fee and per-charge maximum are stored as given."""
    status, body = await ops.post(
        "/ops/v1/merchants",
        json={
            **MERCHANT,
            "fee_plan": {"rate": "0.07", "threshold": 800, "per_line_amount": "40", "effective_from": "2026-12"},
            "setup_fee": 30_000,
            "max_charge_amount": 20_000,
        },
    )
    assert status == 201
    assert (body["setup_fee"], body["max_charge_amount"]) == (30_000, 20_000)
    plan = await FeePlan.get(merchant_id=body["id"])
    assert (str(plan.rate), plan.threshold, str(plan.per_line_amount), plan.effective_from) == (
        "0.0700",
        800,
        "40.00",
        "2026-12",
    )


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"bank_account": {**MERCHANT["bank_account"], "bank_code": "1"}}, "bank_account.bank_code"),
        ({"bank_account": {**MERCHANT["bank_account"], "account_type": "savings"}}, "bank_account.account_type"),
        ({"bank_account": {**MERCHANT["bank_account"], "account_number": "12345678"}}, "bank_account.account_number"),
        ({"bank_account": {**MERCHANT["bank_account"], "holder_kana": "漢字の名前"}}, "bank_account.holder_kana"),
        ({"bank_account": {**MERCHANT["bank_account"], "swift": "X"}}, "bank_account.swift"),
        ({"name_kana": "株式会社"}, "name_kana"),
        ({"name": ""}, "name"),
        ({"setup_fee": -1}, "setup_fee"),
        ({"max_charge_amount": 0}, "max_charge_amount"),
        ({"fee_plan": {"rate": "1.5"}}, "fee_plan.rate"),
        ({"fee_plan": {"effective_from": "2026-13"}}, "fee_plan.effective_from"),
        ({"website": "https://example.com"}, "website"),
    ],
)
async def test_bad_merchant_input_is_refused(ops: OpsClient, change: dict[str, Any], param: str) -> None:
    """Each bad field answers 400 naming it, and no merchant, account or key is stored."""
    before = await row_counts()
    status, answer = await ops.post("/ops/v1/merchants", json={**MERCHANT, **change})
    assert status == 400, answer
    assert answer["error"]["param"] == param
    assert await row_counts() == before


async def test_more_keys_can_be_issued_and_revoked(ops: OpsClient) -> None:
    """Several keys live at once; a revoked one is marked and others stay live."""
    _, merchant = await ops.post("/ops/v1/merchants", json=MERCHANT)
    base = f"/ops/v1/merchants/{merchant['id']}/api_keys"
    status, second = await ops.post(base)
    assert status == 201
    assert second["api_key"] != merchant["api_key"]
    status, listing = await ops.get(base)
    assert len(listing["data"]) == 2
    assert all("api_key" not in key for key in listing["data"])
    status, revoked = await ops.post(f"{base}/{second['id']}/revoke")
    assert status == 200
    assert revoked["revoked_at"] is not None
    assert await ApiKey.filter(merchant_id=merchant["id"], revoked_at=None).count() == 1
    status, _ = await ops.post(f"{base}/key_doesnotexist/revoke")
    assert status == 404


async def test_suspend_a_merchant(ops: OpsClient) -> None:
    """PATCH suspends a merchant; a bad status is refused."""
    _, merchant = await ops.post("/ops/v1/merchants", json=MERCHANT)
    status, body = await ops.patch(f"/ops/v1/merchants/{merchant['id']}", json={"status": "suspended"})
    assert status == 200
    assert body["status"] == "suspended"
    status, _ = await ops.patch(f"/ops/v1/merchants/{merchant['id']}", json={"status": "closed"})
    assert status == 400
    assert (await Merchant.get(id=merchant["id"])).status == "suspended"
    assert await BankAccount.filter(merchant_id=merchant["id"]).count() == 1
