"""The merchant site's API keys: issuing one (shown once), revoking one, and when each was last
used by /v1 (noted at most once a minute); developers and admins only."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

import pytest
from sites_support import signed_in

from api.site.formatting import jst
from conftest import OpsClient, row_counts
from models.audit_log import AuditEntry
from models.clock import clock
from models.merchants import ApiKey
from models.operations.merchants import hash_api_key, note_key_used
from tests_support import MERCHANT_BODY, Shop, open_shop

NEW_KEY = re.compile(r'<code id="new-api-key">(sk_live_[^<]+)</code>')


@pytest.fixture
async def shop(ops: OpsClient) -> Shop:
    """A merchant with its first key."""
    return await open_shop(ops)


async def v1_status(client: Any, key: str) -> int:
    """The status /v1 answers a request signed with ``key``."""
    response = await client.get("/v1/charges", headers={"Authorization": f"Bearer {key}"})
    return response.status


async def move_clock(ops: OpsClient, by: timedelta) -> None:
    """Move the test clock forward."""
    status, _ = await ops.post("/ops/v1/clock", json={"now": (await clock.now() + by).isoformat()})
    assert status == 200


@pytest.mark.parametrize("role", ["developer", "admin"])
async def test_a_new_key_is_shown_once_and_works(client: Any, ops: OpsClient, shop: Shop, role: str) -> None:
    """Issue answers the key under #new-api-key (only its digest is stored); /v1 accepts it; a later
    GET of the page does not show it."""
    browser = await signed_in(ops, client, shop.merchant_id, role=role)
    _, page = await browser.get("/merchant/api-keys")
    assert 'id="create-api-key"' in page
    response = await browser.post("/merchant/api-keys")
    assert response.status == 201
    shown = NEW_KEY.search(response.body_text)
    assert shown is not None
    key = shown.group(1)
    record = await ApiKey.get(key_hash=hash_api_key(key))
    assert record.merchant_id == shop.merchant_id  # type: ignore[attr-defined]
    assert key not in record.key_hash
    issued = await AuditEntry.filter(action="api_key.issue", target_id=shop.merchant_id)
    assert [entry.details["key_id"] for entry in issued] == [record.id]
    assert issued[0].actor.startswith("muser:")
    assert await v1_status(client, key) == 200
    assert await v1_status(client, shop.api_key) == 200  # the other keys keep working
    _, later = await browser.get("/merchant/api-keys")
    assert key not in later
    assert 'id="new-api-key"' not in later
    assert record.prefix in later


async def test_a_revoked_key_is_refused_by_v1(client: Any, ops: OpsClient, shop: Shop) -> None:
    """Revoke stops the key at once (401 on /v1) and the list shows it revoked, without a button."""
    browser = await signed_in(ops, client, shop.merchant_id, role="developer")
    record = await ApiKey.get(key_hash=hash_api_key(shop.api_key))
    _, page = await browser.get("/merchant/api-keys")
    assert f'id="revoke-{record.id}"' in page
    response = await browser.post(f"/merchant/api-keys/{record.id}/revoke")
    assert response.status == 303
    assert await v1_status(client, shop.api_key) == 401
    assert (await ApiKey.get(id=record.id)).revoked_at is not None
    assert await AuditEntry.filter(action="api_key.revoke").count() == 1
    _, after = await browser.get(response.headers["Location"])
    assert 'id="key-revoked"' in after
    assert f'id="revoke-{record.id}"' not in after


async def test_a_viewer_can_neither_list_issue_nor_revoke(client: Any, ops: OpsClient, shop: Shop) -> None:
    """A viewer gets 403 on the page, on issue and on revoke; no key is added or revoked."""
    record = await ApiKey.get(key_hash=hash_api_key(shop.api_key))
    browser = await signed_in(ops, client, shop.merchant_id, role="viewer")
    status, _ = await browser.get("/merchant/api-keys")
    assert status == 403
    before = await row_counts()
    assert (await browser.post("/merchant/api-keys")).status == 403
    assert (await browser.post(f"/merchant/api-keys/{record.id}/revoke")).status == 403
    assert await row_counts() == before
    assert await v1_status(client, shop.api_key) == 200


async def test_another_merchants_key_is_not_found(client: Any, ops: OpsClient, shop: Shop) -> None:
    """Revoking another merchant's key answers 404 and the key keeps working; it is not listed."""
    record = await ApiKey.get(key_hash=hash_api_key(shop.api_key))
    status, other = await ops.post("/ops/v1/merchants", json={**MERCHANT_BODY, "name": "別の店"})
    assert status == 201
    browser = await signed_in(ops, client, other["id"], role="admin")
    _, page = await browser.get("/merchant/api-keys")
    assert record.id not in page
    before = await row_counts()
    assert (await browser.post(f"/merchant/api-keys/{record.id}/revoke")).status == 404
    assert await row_counts() == before
    assert await v1_status(client, shop.api_key) == 200


async def test_a_key_used_through_v1_shows_when(client: Any, ops: OpsClient, shop: Shop) -> None:
    """Before any use the key reads Never; after a /v1 request, the time of that use (JST)."""
    record = await ApiKey.get(key_hash=hash_api_key(shop.api_key))
    browser = await signed_in(ops, client, shop.merchant_id, role="developer")
    _, page = await browser.get("/merchant/api-keys?lang=en")
    assert '<td class="last-used">Never</td>' in page
    assert await v1_status(client, shop.api_key) == 200
    used = (await ApiKey.get(id=record.id)).last_used_at
    assert used is not None
    _, page = await browser.get("/merchant/api-keys?lang=en")
    assert f'<td class="last-used">{jst(used)}</td>' in page


async def test_uses_within_a_minute_are_noted_once(client: Any, ops: OpsClient, shop: Shop) -> None:
    """A second /v1 request 30 s after the first leaves the noted time; one 61 s after it moves it."""
    assert await v1_status(client, shop.api_key) == 200
    record = await ApiKey.get(key_hash=hash_api_key(shop.api_key))
    first = record.last_used_at
    assert first is not None
    await move_clock(ops, timedelta(seconds=30))
    assert await v1_status(client, shop.api_key) == 200
    assert (await ApiKey.get(id=record.id)).last_used_at == first
    await move_clock(ops, timedelta(seconds=31))
    assert await v1_status(client, shop.api_key) == 200
    later = (await ApiKey.get(id=record.id)).last_used_at
    assert later is not None
    assert later - first >= timedelta(seconds=60)


async def test_two_requests_that_read_the_key_together_write_once(client: Any, shop: Shop) -> None:
    """Two requests that both read the key unused before either noted it: the conditional UPDATE
    lets only the first write."""
    together = [await ApiKey.get(key_hash=hash_api_key(shop.api_key)) for _ in range(2)]
    assert [record.last_used_at for record in together] == [None, None]
    assert [await note_key_used(record) for record in together] == [True, False]
    assert (await ApiKey.get(id=together[0].id)).last_used_at is not None
