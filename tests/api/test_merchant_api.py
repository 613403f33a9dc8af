"""The merchant API's conventions (product.md §9): keys, validation, idempotency, lists, 404s."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from conftest import OpsClient, row_counts
from models.charges import Charge
from models.merchants import IdempotencyKey
from settings import Settings
from tests_support import MERCHANT_BODY, Shop, open_shop

GOOD = {"amount": 500, "description": "ゲーム内コイン 500枚", "return_url": "https://game.example/back"}


@pytest.fixture
async def shop(ops: OpsClient) -> Shop:
    """A merchant with a key (and a line, unused here)."""
    return await open_shop(ops)


async def post(client: Any, shop: Shop, path: str, body: Any = None, **headers: str) -> tuple[int, Any, Any]:
    """POST as the shop: (status, json, response)."""
    response = await client.post(path, json=body, headers={**shop.auth, **headers})
    return response.status, await response.json(), response


@pytest.mark.parametrize(
    ("change", "param"),
    [
        ({"amount": 0}, "amount"),
        ({"amount": -100}, "amount"),
        ({"amount": 12.5}, "amount"),
        ({"amount": "500"}, "amount"),
        ({"amount": True}, "amount"),
        ({"return_url": "ftp://game.example/back"}, "return_url"),
        ({"return_url": "javascript:alert(1)"}, "return_url"),
        ({"return_url": "/relative/path"}, "return_url"),
        ({"description": ""}, "description"),
        ({"metadata": {"k": 1}}, "metadata.k"),
        ({"currency": "usd"}, "currency"),
        ({"return_url": None}, "return_url"),
    ],
)
async def test_bad_charge_input_is_refused(client, shop: Shop, change: dict[str, Any], param: str) -> None:
    """Each bad field answers 400 naming it; nothing is written."""
    before = await row_counts()
    status, body, _ = await post(client, shop, "/v1/charges", {**GOOD, **change})
    assert status == 400, body
    assert body["error"]["param"] == param
    assert await row_counts() == before


async def test_missing_return_url_and_malformed_json(client, shop: Shop) -> None:
    """A missing required field and a body that is not JSON are both 400s that write nothing."""
    before = await row_counts()
    status, body, _ = await post(client, shop, "/v1/charges", {"amount": 500, "description": "x"})
    assert (status, body["error"]["code"], body["error"]["param"]) == (400, "parameter_missing", "return_url")
    response = await client.post("/v1/charges", data=b'{"amount": 5', headers=shop.auth)
    assert response.status == 400
    assert (await response.json())["error"]["code"] == "invalid_json"
    assert await row_counts() == before


async def test_amount_above_the_merchants_own_maximum(client, ops: OpsClient, shop: Shop) -> None:
    """A merchant's lowered maximum is enforced with amount_too_large."""
    await ops.patch(f"/ops/v1/merchants/{shop.merchant_id}", json={"max_charge_amount": 1000})
    status, body, _ = await post(client, shop, "/v1/charges", {**GOOD, "amount": 1001})
    assert (status, body["error"]["code"]) == (422, "amount_too_large")


async def test_wrong_or_revoked_key_is_a_401(client, ops: OpsClient, shop: Shop) -> None:
    """No key, a wrong key, or a revoked key: 401, and nothing is created."""
    for headers in ({}, {"Authorization": "Bearer sk_live_nope"}):
        response = await client.post("/v1/charges", json=GOOD, headers=headers)
        assert response.status == 401
    _, keys = await ops.get(f"/ops/v1/merchants/{shop.merchant_id}/api_keys")
    await ops.post(f"/ops/v1/merchants/{shop.merchant_id}/api_keys/{keys['data'][0]['id']}/revoke")
    status, body, _ = await post(client, shop, "/v1/charges", GOOD)
    assert (status, body["error"]["code"]) == (401, "invalid_api_key")
    assert await Charge.all().count() == 0


async def test_another_merchants_objects_are_404(client, ops: OpsClient, shop: Shop) -> None:
    """A merchant cannot see, cancel or refund another's charge: it answers as if missing."""
    _, charge, _ = await post(client, shop, "/v1/charges", GOOD)
    _, rival = await ops.post("/ops/v1/merchants", json=MERCHANT_BODY)
    rival_auth = {"Authorization": f"Bearer {rival['api_key']}"}
    assert (await client.get(f"/v1/charges/{charge['id']}", headers=rival_auth)).status == 404
    assert (await client.post(f"/v1/charges/{charge['id']}/cancel", headers=rival_auth)).status == 404
    refund = await client.post("/v1/refunds", json={"charge": charge["id"]}, headers=rival_auth)
    assert refund.status == 404
    assert (await refund.json())["error"]["param"] == "charge"
    assert (await (await client.get("/v1/charges", headers=rival_auth)).json())["data"] == []


async def test_cancel_only_while_waiting(client, shop: Shop) -> None:
    """An unconfirmed charge can be canceled once (event recorded); a second cancel is a 409."""
    _, charge, _ = await post(client, shop, "/v1/charges", GOOD)
    status, canceled, _ = await post(client, shop, f"/v1/charges/{charge['id']}/cancel")
    assert (status, canceled["status"]) == (200, "canceled")
    status, body, _ = await post(client, shop, f"/v1/charges/{charge['id']}/cancel")
    assert (status, body["error"]["code"]) == (409, "charge_not_cancelable")
    events = await (await client.get("/v1/events?type=charge.canceled", headers=shop.auth)).json()
    assert len(events["data"]) == 1


async def test_idempotency_key_replays_and_refuses_a_different_body(client, shop: Shop) -> None:
    """Same key and body: the same charge again, marked replayed; another body: 409; one charge."""
    key = {"Idempotency-Key": "order-7-attempt"}
    status, first, response = await post(client, shop, "/v1/charges", GOOD, **key)
    assert status == 201
    assert "Idempotent-Replayed" not in response.headers
    status, again, response = await post(client, shop, "/v1/charges", GOOD, **key)
    assert (status, again) == (201, first)
    assert response.headers["Idempotent-Replayed"] == "true"
    status, body, _ = await post(client, shop, "/v1/charges", {**GOOD, "amount": 501}, **key)
    assert (status, body["error"]["code"]) == (409, "idempotency_key_reused")
    assert await Charge.all().count() == 1


async def test_a_failed_request_keeps_its_key_usable(client, shop: Shop) -> None:
    """A 400 stores no response: the same key with a corrected body then succeeds."""
    key = {"Idempotency-Key": "fix-and-retry"}
    status, _, _ = await post(client, shop, "/v1/charges", {**GOOD, "amount": 0}, **key)
    assert status == 400
    status, body, _ = await post(client, shop, "/v1/charges", {**GOOD, "amount": 0}, **key)
    assert status == 400, body
    assert await IdempotencyKey.filter(completed_at__not_isnull=True).count() == 0


async def test_overlong_idempotency_key_is_a_400(client, shop: Shop) -> None:
    """Keys longer than 255 characters are refused, naming the header."""
    status, body, _ = await post(client, shop, "/v1/charges", GOOD, **{"Idempotency-Key": "k" * 256})
    assert (status, body["error"]["param"]) == (400, "Idempotency-Key")


async def test_fifty_concurrent_posts_with_one_key_make_one_charge(client, shop: Shop) -> None:
    """50 simultaneous POSTs with one key: one charge; every answer is that charge or a 409."""
    key = {"Idempotency-Key": "stampede"}
    results = await asyncio.gather(*(post(client, shop, "/v1/charges", GOOD, **key) for _ in range(50)))
    assert await Charge.all().count() == 1
    assert await IdempotencyKey.filter(completed_at__not_isnull=True).count() == 1
    charge_id = (await Charge.first()).id  # type: ignore[union-attr]
    for status, body, _ in results:
        assert (status == 201 and body["id"] == charge_id) or (
            status == 409 and body["error"]["code"] == "idempotency_key_in_use"
        ), (status, body)


@pytest.mark.services
async def test_a_key_claimed_elsewhere_is_in_flight(client, shop: Shop, settings: Settings) -> None:
    """While another transaction holds the key's claim (PostgreSQL's advisory lock), a POST with
    it answers 409 at once and writes nothing; once released, the same POST makes the charge."""
    import asyncpg

    from models.operations.merchants import idempotency_lock_id as lock_id

    key = {"Idempotency-Key": "held-elsewhere"}
    holder = await asyncpg.connect(settings.database_url.replace("postgres://", "postgresql://", 1))
    try:
        async with holder.transaction():
            assert await holder.fetchval(
                "SELECT pg_try_advisory_xact_lock($1)", lock_id(shop.merchant_id, "held-elsewhere")
            )
            status, body, _ = await post(client, shop, "/v1/charges", GOOD, **key)
            assert (status, body["error"]["code"]) == (409, "idempotency_key_in_use")
            assert await Charge.all().count() == 0
    finally:
        await holder.close()
    status, body, _ = await post(client, shop, "/v1/charges", GOOD, **key)
    assert status == 201, body
    assert await Charge.all().count() == 1


async def test_lists_paginate_newest_first(client, shop: Shop) -> None:
    """limit, starting_after and ending_before walk the list without gaps or repeats."""
    created = [(await post(client, shop, "/v1/charges", {**GOOD, "amount": 100 + n}))[1]["id"] for n in range(7)]
    newest_first = list(reversed(created))
    first = await (await client.get("/v1/charges?limit=3", headers=shop.auth)).json()
    assert [c["id"] for c in first["data"]] == newest_first[:3]
    assert first["has_more"] is True
    second = await (await client.get(f"/v1/charges?limit=3&starting_after={newest_first[2]}", headers=shop.auth)).json()
    assert [c["id"] for c in second["data"]] == newest_first[3:6]
    third = await (await client.get(f"/v1/charges?limit=3&starting_after={newest_first[5]}", headers=shop.auth)).json()
    assert [c["id"] for c in third["data"]] == newest_first[6:]
    assert third["has_more"] is False
    back = await (await client.get(f"/v1/charges?limit=2&ending_before={newest_first[3]}", headers=shop.auth)).json()
    assert [c["id"] for c in back["data"]] == newest_first[1:3]
    waiting = await (await client.get("/v1/charges?status=requires_confirmation&limit=100", headers=shop.auth)).json()
    assert len(waiting["data"]) == 7


@pytest.mark.parametrize(
    "query",
    [
        "limit=0",
        "limit=101",
        "limit=ten",
        "status=paid",
        "colour=red",
        "starting_after=ch_unk!nown",
        "created[gte]=yesterday",
    ],
)
async def test_bad_list_parameters_are_400s(client, shop: Shop, query: str) -> None:
    """Out-of-range limits, unknown statuses, unknown parameters and cursors answer 400."""
    response = await client.get(f"/v1/charges?{query}", headers=shop.auth)
    assert response.status == 400
    assert (await response.json())["error"]["param"]


async def test_openapi_and_docs_are_served(client) -> None:
    """/v1/openapi.json describes the charge body; /v1/docs is a readable page."""
    document = await (await client.get("/v1/openapi.json")).json()
    assert "/v1/charges" in document["paths"]
    assert document["components"]["schemas"]["ChargeCreate"]["additionalProperties"] is False
    page = await client.get("/v1/docs")
    assert page.status == 200
    assert "POST /v1/charges" in await page.text()
