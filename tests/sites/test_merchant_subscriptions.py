"""The merchant site's subscriptions: listing by status, one subscription with its charges, and
cancelling it (admins only, after a confirmation step) through the operation /v1 uses."""

from __future__ import annotations

from typing import Any

import pytest
from sites_support import signed_in

from conftest import OpsClient, row_counts
from models.audit_log import AuditEntry
from models.charges import Charge
from models.events import Event
from models.subscriptions import Subscription
from settings import Settings
from tests_support import MERCHANT_BODY, Shop, answer, open_shop, settle


@pytest.fixture
async def shop(ops: OpsClient) -> Shop:
    """A merchant (and a line with an ID to subscribe from)."""
    return await open_shop(ops)


async def subscribe(client: Any, shop: Shop, description: str = "動画見放題 月額") -> dict[str, Any]:
    """POST /v1/subscriptions as the shop; the subscription, waiting for confirmation."""
    response = await client.post(
        "/v1/subscriptions",
        headers=shop.auth,
        json={"amount": 980, "description": description, "return_url": "https://shop.example/back"},
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def other_merchant(ops: OpsClient) -> str:
    """A second merchant's id."""
    status, merchant = await ops.post("/ops/v1/merchants", json={**MERCHANT_BODY, "name": "別の店"})
    assert status == 201
    return merchant["id"]


async def test_the_list_shows_the_merchants_subscriptions_filtered_by_status(
    client: Any, ops: OpsClient, shop: Shop
) -> None:
    """/merchant/subscriptions lists this merchant's subscriptions; ?status= keeps only that status."""
    live = await subscribe(client, shop, "見放題プラン")
    ended = await subscribe(client, shop, "音楽プラン")
    await client.post(f"/v1/subscriptions/{ended['id']}/cancel", headers=shop.auth)
    browser = await signed_in(ops, client, shop.merchant_id, role="viewer")
    status, page = await browser.get("/merchant/subscriptions")
    assert status == 200
    assert live["id"] in page
    assert ended["id"] in page
    status, page = await browser.get("/merchant/subscriptions?status=canceled")
    assert status == 200
    assert ended["id"] in page
    assert live["id"] not in page


async def test_an_unknown_status_filter_is_a_400_naming_it(client: Any, ops: OpsClient, shop: Shop) -> None:
    """?status=bogus answers 400 with the status field's problem on the page, not a list."""
    await subscribe(client, shop)
    browser = await signed_in(ops, client, shop.merchant_id, role="viewer")
    status, page = await browser.get("/merchant/subscriptions?status=bogus&lang=en")
    assert status == 400
    assert 'id="status-error"' in page
    assert "This value is not one of the choices." in page
    assert 'id="subscriptions"' not in page


async def test_the_list_is_paged_by_cursor(client: Any, ops: OpsClient, shop: Shop) -> None:
    """Past 50 subscriptions an Older link leads to the rest, and a Newer link back."""
    made = [await subscribe(client, shop, f"プラン{n}") for n in range(52)]
    browser = await signed_in(ops, client, shop.merchant_id, role="viewer")
    _, first = await browser.get("/merchant/subscriptions")
    assert f'href="/merchant/subscriptions/{made[-1]["id"]}"' in first
    assert f'href="/merchant/subscriptions/{made[0]["id"]}"' not in first
    assert f'href="/merchant/subscriptions?after={made[2]["id"]}" rel="next"' in first
    status, second = await browser.get(f"/merchant/subscriptions?after={made[2]['id']}")
    assert status == 200
    assert f'href="/merchant/subscriptions/{made[0]["id"]}"' in second
    assert f'href="/merchant/subscriptions/{made[1]["id"]}"' in second
    assert f'href="/merchant/subscriptions/{made[2]["id"]}"' not in second
    assert 'rel="prev"' in second


@pytest.mark.usefixtures("worker")
async def test_the_detail_page_shows_the_fields_and_charges_linking_to_purchases(
    client: Any, ops: OpsClient, shop: Shop, settings: Settings
) -> None:
    """A confirmed subscription's page shows its amount and status and its first month's charge,
    linked to /merchant/purchases/{charge_id}."""
    subscription = await subscribe(client, shop)
    await answer(client, subscription["confirmation_url"], login_id=shop.login_id, password=shop.password)

    async def active() -> bool:
        return (await Subscription.get(id=subscription["id"])).status == "active"

    await settle(settings, active)
    charge = await Charge.get(subscription_id=subscription["id"])
    browser = await signed_in(ops, client, shop.merchant_id, role="viewer")
    status, page = await browser.get(f"/merchant/subscriptions/{subscription['id']}?lang=en")
    assert status == 200
    assert "¥980" in page
    assert "動画見放題 月額" in page
    assert '<span class="badge active">Active</span>' in page
    assert f'href="/merchant/purchases/{charge.id}"' in page


async def test_another_merchants_subscription_is_not_found(client: Any, ops: OpsClient, shop: Shop) -> None:
    """Another merchant's subscription answers 404 on its page, its confirm page and its cancel form."""
    subscription = await subscribe(client, shop)
    browser = await signed_in(ops, client, await other_merchant(ops), role="admin")
    for path in (
        f"/merchant/subscriptions/{subscription['id']}",
        f"/merchant/subscriptions/{subscription['id']}/cancel",
    ):
        status, _ = await browser.get(path)
        assert status == 404
    response = await browser.post(f"/merchant/subscriptions/{subscription['id']}/cancel")
    assert response.status == 404
    assert (await Subscription.get(id=subscription["id"])).status == "requires_confirmation"


async def test_an_admin_cancels_after_confirming_through_the_shared_operation(
    client: Any, ops: OpsClient, shop: Shop
) -> None:
    """Detail page → confirm page → POST: canceled by the merchant, the event sent, the admin audited."""
    subscription = await subscribe(client, shop)
    browser = await signed_in(ops, client, shop.merchant_id, role="admin")
    _, detail = await browser.get(f"/merchant/subscriptions/{subscription['id']}")
    assert 'id="cancel-subscription"' in detail
    assert f'action="/merchant/subscriptions/{subscription["id"]}/cancel"' in detail
    status, confirm = await browser.get(f"/merchant/subscriptions/{subscription['id']}/cancel")
    assert status == 200
    assert 'id="confirm-cancel"' in confirm
    assert (await Subscription.get(id=subscription["id"])).status == "requires_confirmation"  # GET changes nothing
    response = await browser.post(f"/merchant/subscriptions/{subscription['id']}/cancel")
    assert response.status == 303
    assert response.headers["Location"] == f"/merchant/subscriptions/{subscription['id']}?done=canceled"
    stored = await Subscription.get(id=subscription["id"])
    assert (stored.status, stored.cancel_reason) == ("canceled", "merchant")
    assert await Event.filter(object_id=subscription["id"], type="subscription.canceled").count() == 1
    entry = await AuditEntry.get(action="subscription.cancel", target_id=subscription["id"])
    assert entry.actor.startswith("muser:")
    _, after = await browser.get(response.headers["Location"])
    assert 'id="subscription-canceled"' in after
    assert 'id="cancel-subscription"' not in after


async def test_cancelling_twice_names_the_problem_and_changes_nothing(client: Any, ops: OpsClient, shop: Shop) -> None:
    """A second cancel answers 409 with the problem named; no second event is written."""
    subscription = await subscribe(client, shop)
    browser = await signed_in(ops, client, shop.merchant_id, role="admin")
    await browser.get(f"/merchant/subscriptions/{subscription['id']}")
    assert (await browser.post(f"/merchant/subscriptions/{subscription['id']}/cancel")).status == 303
    before = await row_counts()
    again = await browser.post(f"/merchant/subscriptions/{subscription['id']}/cancel?lang=en")
    assert again.status == 409
    assert "This subscription cannot be canceled." in again.body_text
    assert await row_counts() == before


@pytest.mark.parametrize("role", ["viewer", "developer"])
async def test_a_role_without_refund_cannot_cancel(client: Any, ops: OpsClient, shop: Shop, role: str) -> None:
    """Viewers and developers see no cancel button; their forged POST answers 403 and changes nothing."""
    subscription = await subscribe(client, shop)
    browser = await signed_in(ops, client, shop.merchant_id, role=role)
    status, detail = await browser.get(f"/merchant/subscriptions/{subscription['id']}")
    assert status == 200
    assert 'id="cancel-subscription"' not in detail
    status, _ = await browser.get(f"/merchant/subscriptions/{subscription['id']}/cancel")
    assert status == 403
    before = await row_counts()
    response = await browser.post(f"/merchant/subscriptions/{subscription['id']}/cancel")
    assert response.status == 403
    assert await row_counts() == before
    assert (await Subscription.get(id=subscription["id"])).status == "requires_confirmation"
