"""Purchases under load and over months: atomic limits, monthly renewals, past-due, refunds."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

from conftest import OpsClient
from models.charges import AccountUsage, Charge
from models.clock import clock
from models.events import Event
from models.subscriptions import Subscription
from settings import Settings
from tests_support import Shop, answer, open_shop, settle
from workers.scheduler import run_due_jobs

pytestmark = pytest.mark.usefixtures("worker")
RETURN_URL = "https://shop.example/return"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The money rules under a burst: one ID confirms 20 purchases at once here, more than the
    guessing limit of a login id allows in a minute (tests/api/test_rate_limits.py tests that)."""
    return settings.replace(rate_limit_sign_in_login="1000/minute")


@pytest.fixture
async def shop(ops: OpsClient) -> Shop:
    """A line with a session for 127.0.0.1, an ID (50,000-yen limit) and a merchant."""
    return await open_shop(ops)


async def api(client: Any, shop: Shop, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    """Call /v1 as the shop."""
    response = await client.request(method, path, json=body, headers=shop.auth)
    return response.status, await response.json()


async def test_twenty_concurrent_confirmations_never_pass_the_limit(client, shop: Shop, settings: Settings) -> None:
    """20 confirmations of 3,000 yen at once by one ID with a 50,000-yen limit: exactly 16 succeed."""
    charges = [
        (
            await api(
                client,
                shop,
                "POST",
                "/v1/charges",
                {"amount": 3000, "description": f"item {n}", "return_url": RETURN_URL},
            )
        )[1]
        for n in range(20)
    ]
    await asyncio.gather(
        *(answer(client, c["confirmation_url"], login_id=shop.login_id, password=shop.password) for c in charges)
    )

    async def all_decided() -> bool:
        return not await Charge.filter(status__in=["requires_confirmation", "processing"]).exists()

    await settle(settings, all_decided, deadline=60)
    outcomes = [c.failure_code or c.status for c in await Charge.all()]
    assert outcomes.count("succeeded") == 16
    assert outcomes.count("limit_exceeded") == 4
    assert (await AccountUsage.get()).amount == 48_000


async def _moved(to: str) -> None:
    await clock.move_to(datetime.fromisoformat(to))
    await run_due_jobs()


async def _renewal_decided(settings: Settings, subscription_id: str, period: str) -> Charge:
    async def decided() -> bool:
        charge = await Charge.get_or_none(subscription_id=subscription_id, renewal_period=period)
        return charge is not None and charge.status not in ("requires_confirmation", "processing")

    await settle(settings, decided)
    return await Charge.get(subscription_id=subscription_id, renewal_period=period)


async def test_a_subscription_renews_monthly_until_canceled(client, shop: Shop, settings: Settings) -> None:
    """Confirmed in January: charged then, again on 1 February and 1 March (JST); canceled, not in April."""
    await clock.move_to(datetime.fromisoformat("2030-01-10T10:00:00+09:00"))
    status, subscription = await api(
        client,
        shop,
        "POST",
        "/v1/subscriptions",
        {"amount": 980, "description": "音楽聴き放題", "return_url": RETURN_URL},
    )
    assert (status, subscription["status"]) == (201, "requires_confirmation")
    await answer(client, subscription["confirmation_url"], login_id=shop.login_id, password=shop.password)

    async def active() -> bool:
        return (await Subscription.get(id=subscription["id"])).status == "active"

    await settle(settings, active)
    assert (await Subscription.get(id=subscription["id"])).current_period == "2030-01"
    await _moved("2030-01-31T23:59:00+09:00")
    assert await Charge.filter(subscription_id=subscription["id"]).count() == 1  # not yet the 1st in Tokyo
    await _moved("2030-02-01T00:10:00+09:00")
    assert (await _renewal_decided(settings, subscription["id"], "2030-02")).status == "succeeded"
    await run_due_jobs()  # a second pass in the same month renews nothing more
    await _moved("2030-03-01T00:10:00+09:00")
    assert (await _renewal_decided(settings, subscription["id"], "2030-03")).status == "succeeded"
    status, canceled = await api(client, shop, "POST", f"/v1/subscriptions/{subscription['id']}/cancel")
    assert (status, canceled["status"]) == (200, "canceled")
    await _moved("2030-04-01T00:10:00+09:00")
    charges = await Charge.filter(subscription_id=subscription["id"]).order_by("created_at")
    assert [(c.renewal_period, c.status, c.amount) for c in charges] == [
        ("2030-01", "succeeded", 980),
        ("2030-02", "succeeded", 980),
        ("2030-03", "succeeded", 980),
    ]
    types = await Event.filter(object_id=subscription["id"]).order_by("created_at").values_list("type", flat=True)
    assert types == ["subscription.activated", "subscription.renewed", "subscription.renewed", "subscription.canceled"]


async def test_a_renewal_over_the_limit_goes_past_due_then_canceled(
    client, ops: OpsClient, shop: Shop, settings: Settings
) -> None:
    """A renewal that breaks the line's limit fails; the subscription is past_due, canceled when the month ends."""
    await clock.move_to(datetime.fromisoformat("2030-05-10T10:00:00+09:00"))
    _, subscription = await api(
        client,
        shop,
        "POST",
        "/v1/subscriptions",
        {"amount": 1500, "description": "動画見放題", "return_url": RETURN_URL},
    )
    await answer(client, subscription["confirmation_url"], login_id=shop.login_id, password=shop.password)

    async def active() -> bool:
        return (await Subscription.get(id=subscription["id"])).status == "active"

    await settle(settings, active)
    await ops.patch(f"/ops/v1/lines/{shop.line_id}", json={"monthly_limit": 1000})
    await _moved("2030-06-01T00:10:00+09:00")
    renewal = await _renewal_decided(settings, subscription["id"], "2030-06")
    assert (renewal.status, renewal.failure_code) == ("failed", "limit_exceeded")
    assert (await Subscription.get(id=subscription["id"])).status == "past_due"
    await _moved("2030-06-30T23:00:00+09:00")
    assert (await Subscription.get(id=subscription["id"])).status == "past_due"
    await _moved("2030-07-01T00:10:00+09:00")
    assert (await Subscription.get(id=subscription["id"])).status == "canceled"
    assert await Charge.filter(subscription_id=subscription["id"]).count() == 2
    types = set(await Event.filter(object_id=subscription["id"]).values_list("type", flat=True))
    assert {"subscription.past_due", "subscription.canceled"} <= types


async def test_refunds_full_partial_and_too_much(client, shop: Shop, settings: Settings) -> None:
    """Partial then the rest; above what remains is a 400; a refunded-in-full charge is a 409."""
    _, charge = await api(
        client, shop, "POST", "/v1/charges", {"amount": 1000, "description": "有料記事", "return_url": RETURN_URL}
    )
    await answer(client, charge["confirmation_url"], login_id=shop.login_id, password=shop.password)

    async def succeeded() -> bool:
        return (await Charge.get(id=charge["id"])).status == "succeeded"

    await settle(settings, succeeded)
    status, refund = await api(
        client, shop, "POST", "/v1/refunds", {"charge": charge["id"], "amount": 300, "reason": "一部返金"}
    )
    assert (status, refund["amount"], refund["object"]) == (201, 300, "refund")
    status, body = await api(client, shop, "POST", "/v1/refunds", {"charge": charge["id"], "amount": 701})
    assert (status, body["error"]["param"], body["error"]["code"]) == (400, "amount", "amount_too_large")
    status, rest = await api(client, shop, "POST", "/v1/refunds", {"charge": charge["id"]})
    assert (status, rest["amount"]) == (201, 700)
    status, body = await api(client, shop, "POST", "/v1/refunds", {"charge": charge["id"], "amount": 1})
    assert (status, body["error"]["code"]) == (409, "charge_already_refunded")
    assert (await Charge.get(id=charge["id"])).refunded_amount == 1000
    _, listing = await api(client, shop, "GET", f"/v1/refunds?charge={charge['id']}")
    assert [r["amount"] for r in listing["data"]] == [700, 300]
    assert await Event.filter(type="charge.refunded", object_id=charge["id"]).count() == 2


async def test_refund_of_an_unconfirmed_charge_is_refused(client, shop: Shop) -> None:
    """Only a succeeded charge has anything to refund."""
    _, charge = await api(
        client, shop, "POST", "/v1/charges", {"amount": 1000, "description": "有料記事", "return_url": RETURN_URL}
    )
    status, body = await api(client, shop, "POST", "/v1/refunds", {"charge": charge["id"]})
    assert (status, body["error"]["code"]) == (409, "charge_not_refundable")


async def test_a_redelivered_decision_changes_nothing(client, shop: Shop, settings: Settings) -> None:
    """verify_purchase run again for the same sign-in (a redelivery) decides nothing twice."""
    from models.charges import ConfirmationAttempt
    from workers.auth import verify_purchase

    _, charge = await api(
        client, shop, "POST", "/v1/charges", {"amount": 700, "description": "スタンプ", "return_url": RETURN_URL}
    )
    await answer(client, charge["confirmation_url"], login_id=shop.login_id, password=shop.password)

    async def succeeded() -> bool:
        return (await Charge.get(id=charge["id"])).status == "succeeded"

    await settle(settings, succeeded)
    attempt = await ConfirmationAttempt.get(charge_id=charge["id"])
    await verify_purchase.fn.__wrapped__(attempt.id)  # the actor's coroutine, as a second delivery runs it
    assert (await AccountUsage.get()).amount == 700
    assert await Event.filter(type="charge.succeeded", object_id=charge["id"]).count() == 1
