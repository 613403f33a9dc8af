"""The console's merchant pages: the filtered list, one merchant's contract, keys, users and
payouts, and an admin's suspend, resume and key revocation with a reason (product.md §10)."""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from sites_support import merchant_user, ops_signed_in

from conftest import OpsClient, row_counts
from models.audit_log import AuditEntry
from models.clock import clock
from models.merchants import ApiKey, Merchant
from models.payouts import Payout
from tests_support import MERCHANT_BODY, open_shop

PAGER = re.compile(r'<a href="([^"]+)" rel="(prev|next)">')


async def _merchant(ops: OpsClient, name: str) -> dict[str, Any]:
    status, merchant = await ops.post("/ops/v1/merchants", json={**MERCHANT_BODY, "name": name})
    assert status == 201, merchant
    return merchant


async def test_the_merchant_list_finds_a_merchant_by_name_or_id(client: Any, ops: OpsClient) -> None:
    """Every role reads the list; ``q`` keeps the merchants whose name holds it or whose id it is."""
    video = await _merchant(ops, "ストリーム動画株式会社")
    games = await _merchant(ops, "ゲーム広場合同会社")
    browser = await ops_signed_in(client, role="support")
    status, page = await browser.get("/ops/merchants")
    assert status == 200
    assert f'id="merchant-{video["id"]}"' in page
    assert f'id="merchant-{games["id"]}"' in page
    status, page = await browser.get("/ops/merchants?q=動画")
    assert status == 200
    assert f'id="merchant-{video["id"]}"' in page
    assert f'id="merchant-{games["id"]}"' not in page
    status, page = await browser.get(f"/ops/merchants?q={games['id']}")
    assert f'id="merchant-{games["id"]}"' in page
    assert f'id="merchant-{video["id"]}"' not in page
    status, page = await browser.get("/ops/merchants?q=nothing-like-this")
    assert status == 200
    assert 'id="merchants-empty"' in page


async def test_the_merchant_list_is_paged(client: Any, ops: OpsClient) -> None:
    """Fifty merchants a page, newest first; the older link leads to the rest, each merchant once."""
    from api.ops_site.merchants import PAGE_SIZE

    made = [await _merchant(ops, f"商店{number:03d}") for number in range(PAGE_SIZE + 3)]
    browser = await ops_signed_in(client, role="support")
    _, first = await browser.get("/ops/merchants")
    assert first.count('<tr id="merchant-') == PAGE_SIZE
    assert f'id="merchant-{made[-1]["id"]}"' in first
    assert 'rel="next"' in first
    links = {rel: href.replace("&amp;", "&") for href, rel in PAGER.findall(first)}
    _, second = await browser.get(links["next"])
    assert second.count('<tr id="merchant-') == 3
    assert f'id="merchant-{made[0]["id"]}"' in second


async def test_a_merchant_page_shows_its_contract_keys_users_and_payouts_but_never_a_key(
    client: Any, ops: OpsClient
) -> None:
    """Status, fee plan, bank account, each key's prefix and id (not the key), users and payouts."""
    shop = await open_shop(ops)
    user = await merchant_user(ops, shop.merchant_id, role="developer")
    await Payout.create(
        merchant_id=shop.merchant_id,
        period="2030-11",
        billed=3500,
        lines=1,
        fee=175,
        fee_rule="percent",
        collected=3500,
        net=3325,
        scheduled_date=date(2031, 1, 31),
        created_at=await clock.now(),
    )
    key = await ApiKey.get(merchant_id=shop.merchant_id)
    browser = await ops_signed_in(client, role="support")
    status, page = await browser.get(f"/ops/merchants/{shop.merchant_id}")
    assert status == 200
    assert 'id="merchant-status"' in page
    assert "1234567" in page  # the bank account number
    assert 'id="fee-plans"' in page
    assert "5.00%" in page
    assert f'id="key-{key.id}"' in page
    assert key.prefix in page
    assert shop.api_key not in page
    assert f'id="user-{user["id"]}"' in page
    assert user["email"] in page
    assert "3,325円" in page
    assert 'id="suspend-merchant"' not in page  # support reads only
    assert f'id="revoke-{key.id}"' not in page


async def test_an_unknown_merchant_answers_404(client: Any, ops: OpsClient) -> None:
    """An id no merchant has: a 404 page, to read or to change."""
    browser = await ops_signed_in(client, role="admin")
    status, _ = await browser.get("/ops/merchants/mer_nobody")
    assert status == 404
    response = await browser.post("/ops/merchants/mer_nobody/status", {"status": "suspended", "reason": "test"})
    assert response.status == 404
    shop = await open_shop(ops)
    response = await browser.post(f"/ops/merchants/{shop.merchant_id}/keys/key_nobody/revoke", {"reason": "test"})
    assert response.status == 404


async def test_an_admin_suspends_and_resumes_a_merchant_with_a_reason(client: Any, ops: OpsClient) -> None:
    """Each change writes one audit row naming the staff member and the reason; the page says it."""
    shop = await open_shop(ops)
    admin = await ops_signed_in(client, role="admin")
    await admin.get(f"/ops/merchants/{shop.merchant_id}")
    response = await admin.post(
        f"/ops/merchants/{shop.merchant_id}/status", {"status": "suspended", "reason": "contract breach"}
    )
    assert response.status == 303
    assert response.headers["Location"] == f"/ops/merchants/{shop.merchant_id}?done=suspended"
    assert (await Merchant.get(id=shop.merchant_id)).status == "suspended"
    status, page = await admin.get(response.headers["Location"])
    assert status == 200
    assert 'id="done"' in page
    assert 'id="resume-merchant"' in page
    response = await admin.post(f"/ops/merchants/{shop.merchant_id}/status", {"status": "active", "reason": "mended"})
    assert response.status == 303
    assert (await Merchant.get(id=shop.merchant_id)).status == "active"
    entries = await AuditEntry.filter(target_type="merchant", target_id=shop.merchant_id, action="merchant.update")
    assert [(entry.details["status"], entry.details["reason"]) for entry in entries] == [
        ("suspended", "contract breach"),
        ("active", "mended"),
    ]
    assert all(entry.actor.startswith("staff:") for entry in entries)


async def test_a_change_without_a_reason_or_with_a_bad_status_is_named_and_changes_nothing(
    client: Any, ops: OpsClient
) -> None:
    """No reason, or a status that is not one: 400 pages naming the problem, no row written."""
    shop = await open_shop(ops)
    admin = await ops_signed_in(client, role="admin")
    await admin.get(f"/ops/merchants/{shop.merchant_id}")
    before = await row_counts()
    for form in ({"status": "suspended", "reason": ""}, {"status": "closed", "reason": "typo"}):
        response = await admin.post(f"/ops/merchants/{shop.merchant_id}/status", form)
        assert response.status == 400, form
        assert 'id="status-error"' in response.body_text
    key = await ApiKey.get(merchant_id=shop.merchant_id)
    response = await admin.post(f"/ops/merchants/{shop.merchant_id}/keys/{key.id}/revoke", {"reason": " "})
    assert response.status == 400
    assert await row_counts() == before
    assert (await Merchant.get(id=shop.merchant_id)).status == "active"


async def test_an_admin_revokes_a_key_and_it_stops_working(client: Any, ops: OpsClient) -> None:
    """The revoked key is refused by /v1 at once; one audit row names the key, the staff member and the reason."""
    shop = await open_shop(ops)
    key = await ApiKey.get(merchant_id=shop.merchant_id)
    assert (await client.get("/v1/charges", headers=shop.auth)).status == 200
    admin = await ops_signed_in(client, role="admin")
    await admin.get(f"/ops/merchants/{shop.merchant_id}")
    response = await admin.post(f"/ops/merchants/{shop.merchant_id}/keys/{key.id}/revoke", {"reason": "key leaked"})
    assert response.status == 303
    assert (await client.get("/v1/charges", headers=shop.auth)).status == 401
    (entry,) = await AuditEntry.filter(action="api_key.revoke", target_id=shop.merchant_id)
    assert entry.details == {"key_id": key.id, "reason": "key leaked"}
    assert entry.actor.startswith("staff:")
    _, page = await admin.get(f"/ops/merchants/{shop.merchant_id}")
    assert f'id="revoke-{key.id}"' not in page


async def test_support_and_billing_staff_cannot_change_a_merchant(client: Any, ops: OpsClient) -> None:
    """A forged suspend or revoke without the manage role answers 403 and changes nothing."""
    shop = await open_shop(ops)
    key = await ApiKey.get(merchant_id=shop.merchant_id)
    for role in ("support", "billing"):
        browser = await ops_signed_in(client, role=role)
        status, _ = await browser.get(f"/ops/merchants/{shop.merchant_id}")
        assert status == 200
        before = await row_counts()
        response = await browser.post(
            f"/ops/merchants/{shop.merchant_id}/status", {"status": "suspended", "reason": "x"}
        )
        assert response.status == 403
        response = await browser.post(f"/ops/merchants/{shop.merchant_id}/keys/{key.id}/revoke", {"reason": "x"})
        assert response.status == 403
        assert await row_counts() == before
    assert (await Merchant.get(id=shop.merchant_id)).status == "active"
    assert (await ApiKey.get(id=key.id)).revoked_at is None


async def test_a_forged_post_without_the_csrf_token_changes_nothing(client: Any, ops: OpsClient) -> None:
    """An admin's form without the session's token: 403, the merchant stays active."""
    shop = await open_shop(ops)
    admin = await ops_signed_in(client, role="admin")
    response = await admin.post(
        f"/ops/merchants/{shop.merchant_id}/status", {"status": "suspended", "reason": "x"}, csrf="forged"
    )
    assert response.status == 403
    assert (await Merchant.get(id=shop.merchant_id)).status == "active"
