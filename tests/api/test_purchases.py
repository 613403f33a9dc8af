"""A purchase end to end (product.md §3, §4): the merchant creates a charge, the subscriber
signs in on the confirmation page, the auth worker decides, the merchant gets a signed return."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from billing.signing import verify_return
from conftest import OpsClient, row_counts
from models.accounts import SubscriberAccount
from models.charges import Charge, ConfirmationAttempt
from models.clock import clock
from settings import Settings
from tests_support import CSRF, Shop, answer, open_shop, settle
from workers.scheduler import run_due_jobs

pytestmark = pytest.mark.usefixtures("worker")
RETURN_URL = "https://shop.example/return?order=7"


@pytest.fixture
async def shop(ops: OpsClient) -> Shop:
    """A line with a session for 127.0.0.1 (where the test client connects from), an ID, a merchant."""
    return await open_shop(ops)


async def create_charge(client: Any, shop: Shop, amount: int = 3000, **extra: Any) -> dict[str, Any]:
    """POST /v1/charges as the shop; the created charge."""
    response = await client.post(
        "/v1/charges",
        headers=shop.auth,
        json={"amount": amount, "description": "映画レンタル 48時間", "return_url": RETURN_URL, **extra},
    )
    assert response.status == 201, await response.text()
    return await response.json()


async def decided(settings: Settings, charge_id: str) -> Charge:
    """Wait until the worker has decided the charge; the charge."""

    async def final() -> bool:
        return (await Charge.get(id=charge_id)).status not in ("requires_confirmation", "processing")

    await settle(settings, final)
    return await Charge.get(id=charge_id)


async def test_a_confirmed_purchase_succeeds_with_a_signed_return(client, shop: Shop, settings: Settings) -> None:
    """Right ID and password from the line's own address: succeeded, signed redirect, event."""
    charge = await create_charge(client, shop)
    assert charge["status"] == "requires_confirmation"
    assert charge["confirmation_url"].endswith(urlsplit(charge["confirmation_url"]).path)
    page = await client.get(urlsplit(charge["confirmation_url"]).path)
    text = await page.text()
    assert "3,000円" in text
    assert "映画レンタル" in text
    posted = await answer(client, charge["confirmation_url"], login_id=shop.login_id, password=shop.password)
    assert posted.status == 303
    assert posted.headers["Location"].endswith("/wait")
    stored = await decided(settings, charge["id"])
    assert stored.status == "succeeded"
    assert stored.client_address == "127.0.0.1"
    status = await (await client.get(urlsplit(charge["confirmation_url"]).path + "/status")).json()
    assert (status["status"], status["failure_code"]) == ("succeeded", None)
    query = dict(parse_qsl(urlsplit(status["redirect_url"]).query))
    assert query["order"] == "7"
    assert (query["charge"], query["status"]) == (charge["id"], "succeeded")
    assert verify_return({k: query[k] for k in ("charge", "status", "signature")}, shop.signing_secret)
    wait = await client.get(urlsplit(charge["confirmation_url"]).path + "/wait", allow_redirects=False)
    assert wait.status == 303
    assert wait.headers["Location"] == status["redirect_url"]
    events = await (await client.get("/v1/events", headers=shop.auth)).json()
    assert [e["type"] for e in events["data"]] == ["charge.succeeded"]
    assert events["data"][0]["data"]["object"]["id"] == charge["id"]
    fetched = await (await client.get(f"/v1/charges/{charge['id']}", headers=shop.auth)).json()
    assert (fetched["status"], fetched["billing_status"]) == ("succeeded", "unbilled")
    attempt = await ConfirmationAttempt.get(charge_id=charge["id"])
    assert attempt.sealed_password == ""
    assert shop.password not in (attempt.sealed_password or "")


async def answered(settings: Settings, charge_id: str) -> Charge:
    """Wait until every sign-in on the charge is decided (it may stay open after a typo); the charge."""

    async def done() -> bool:
        pending = await ConfirmationAttempt.filter(charge_id=charge_id, decided_at=None).exists()
        return not pending and (await Charge.get(id=charge_id)).status != "processing"

    await settle(settings, done)
    return await Charge.get(id=charge_id)


async def test_a_wrong_password_keeps_the_purchase_open_for_another_try(client, shop: Shop, settings: Settings) -> None:
    """A typo: the charge is back in requires_confirmation naming invalid_credentials, the page says so,
    no event is sent; the right password then buys."""
    charge = await create_charge(client, shop)
    path = urlsplit(charge["confirmation_url"]).path
    await answer(client, charge["confirmation_url"], login_id=shop.login_id, password="wrong-password")
    stored = await answered(settings, charge["id"])
    assert (stored.status, stored.failure_code) == ("requires_confirmation", "invalid_credentials")
    assert (await SubscriberAccount.get(login_id=shop.login_id)).failed_attempts == 1
    status = await (await client.get(path + "/status")).json()
    assert (status["status"], status["failure_code"], status["redirect_url"]) == (
        "requires_confirmation",
        "invalid_credentials",
        None,
    )
    page = await client.get(path)
    assert "パスワードが違います" in await page.text()
    assert (await (await client.get("/v1/events", headers=shop.auth)).json())["data"] == []
    await answer(client, charge["confirmation_url"], login_id=shop.login_id, password=shop.password)
    stored = await decided(settings, charge["id"])
    assert (stored.status, stored.failure_code) == ("succeeded", None)
    assert (await SubscriberAccount.get(login_id=shop.login_id)).failed_attempts == 0
    events = await (await client.get("/v1/events", headers=shop.auth)).json()
    assert [e["type"] for e in events["data"]] == ["charge.succeeded"]


async def test_a_mistyped_subscription_is_retried_on_the_same_first_month(
    client, shop: Shop, settings: Settings
) -> None:
    """A subscription's first month survives a typo: the retry decides the same charge, and it activates."""
    response = await client.post(
        "/v1/subscriptions",
        headers=shop.auth,
        json={"amount": 980, "description": "動画見放題", "return_url": RETURN_URL},
    )
    subscription = await response.json()
    await answer(client, subscription["confirmation_url"], login_id=shop.login_id, password="typo-typo")

    async def back() -> bool:
        first = await Charge.filter(subscription_id=subscription["id"]).first()
        return first is not None and first.status == "requires_confirmation"

    await settle(settings, back)
    status = await (await client.get(urlsplit(subscription["confirmation_url"]).path + "/status")).json()
    assert (status["status"], status["failure_code"]) == ("requires_confirmation", "invalid_credentials")
    await answer(client, subscription["confirmation_url"], login_id=shop.login_id, password=shop.password)

    async def active() -> bool:
        response = await client.get(f"/v1/subscriptions/{subscription['id']}", headers=shop.auth)
        return (await response.json())["status"] == "active"

    await settle(settings, active)
    assert await Charge.filter(subscription_id=subscription["id"]).count() == 1


async def test_five_wrong_passwords_on_one_purchase_end_it_locked(client, shop: Shop, settings: Settings) -> None:
    """Five typos on one purchase also lock the ID: the purchase fails with account_locked."""
    charge = await create_charge(client, shop)
    for _ in range(4):
        await answer(client, charge["confirmation_url"], login_id=shop.login_id, password="nope")
        assert (await answered(settings, charge["id"])).status == "requires_confirmation"
    await answer(client, charge["confirmation_url"], login_id=shop.login_id, password="nope")
    stored = await decided(settings, charge["id"])
    assert (stored.status, stored.failure_code) == ("failed", "account_locked")


async def test_five_unknown_ids_on_one_purchase_end_it_invalid_credentials(
    client, shop: Shop, settings: Settings
) -> None:
    """Five different unknown login ids lock nothing, but the purchase ends with invalid_credentials."""
    charge = await create_charge(client, shop)
    for attempt in range(5):
        await answer(client, charge["confirmation_url"], login_id=f"nobody-{attempt}", password=shop.password)
        await answered(settings, charge["id"])
    stored = await Charge.get(id=charge["id"])
    assert (stored.status, stored.failure_code) == ("failed", "invalid_credentials")
    assert (await SubscriberAccount.get(login_id=shop.login_id)).failed_attempts == 0


async def test_five_failures_over_purchases_lock_the_id(client, shop: Shop, settings: Settings) -> None:
    """Wrong passwords spread over purchases count on the ID: the fifth locks it (account_locked),
    the right password is refused while locked, and works 30 minutes later."""
    for _ in range(4):
        charge = await create_charge(client, shop)
        await answer(client, charge["confirmation_url"], login_id=shop.login_id, password="nope")
        assert (await answered(settings, charge["id"])).failure_code == "invalid_credentials"
    charge = await create_charge(client, shop)
    await answer(client, charge["confirmation_url"], login_id=shop.login_id, password="nope")
    assert (await decided(settings, charge["id"])).failure_code == "account_locked"
    charge = await create_charge(client, shop)
    await answer(client, charge["confirmation_url"], login_id=shop.login_id, password=shop.password)
    assert (await decided(settings, charge["id"])).failure_code == "account_locked"
    await clock.move_to(await clock.now() + timedelta(minutes=31))
    charge = await create_charge(client, shop)
    await answer(client, charge["confirmation_url"], login_id=shop.login_id, password=shop.password)
    assert (await decided(settings, charge["id"])).status == "succeeded"


async def test_request_from_another_address_is_line_mismatch(
    client, ops: OpsClient, shop: Shop, settings: Settings
) -> None:
    """With the line's 127.0.0.1 session ended, the same credentials fail with line_mismatch."""
    _, sessions = await ops.get(f"/ops/v1/lines/{shop.line_id}/sessions")
    for session in sessions["data"]:
        await ops.post(f"/ops/v1/lines/{shop.line_id}/sessions/{session['id']}/end")
    await ops.post(f"/ops/v1/lines/{shop.line_id}/sessions", json={"address": "198.51.100.7"})
    charge = await create_charge(client, shop)
    await answer(client, charge["confirmation_url"], login_id=shop.login_id, password=shop.password)
    assert (await decided(settings, charge["id"])).failure_code == "line_mismatch"


async def test_suspended_line_is_line_inactive(client, ops: OpsClient, shop: Shop, settings: Settings) -> None:
    """A suspended line buys nothing: line_inactive."""
    await ops.patch(f"/ops/v1/lines/{shop.line_id}", json={"status": "suspended"})
    charge = await create_charge(client, shop)
    await answer(client, charge["confirmation_url"], login_id=shop.login_id, password=shop.password)
    assert (await decided(settings, charge["id"])).failure_code == "line_inactive"


async def test_adsl_without_flets_dot_net_is_line_ineligible(client, ops: OpsClient, settings: Settings) -> None:
    """An ADSL line without Flets.net may hold IDs but never purchase: line_ineligible."""
    await ops.post(
        "/ops/v1/lines",
        json={"line_id": "COP0000001002", "line_type": "adsl", "holder_name": "x", "base_monthly_fee": 2000},
    )
    shop = await open_shop(ops, line_id="COP0000001003", login_id="other")
    await ops.post("/ops/v1/lines/COP0000001002/sessions", json={"address": "127.0.0.1"})
    _, account = await ops.post("/ops/v1/lines/COP0000001002/accounts", json={"login_id": "adsl-user"})
    charge = await create_charge(client, shop)
    await answer(client, charge["confirmation_url"], login_id="adsl-user", password=account["initial_password"])
    assert (await decided(settings, charge["id"])).failure_code == "line_ineligible"


async def test_suspended_merchant_is_merchant_inactive(client, ops: OpsClient, shop: Shop, settings: Settings) -> None:
    """A merchant suspended after creating the charge gets merchant_inactive."""
    charge = await create_charge(client, shop)
    await ops.patch(f"/ops/v1/merchants/{shop.merchant_id}", json={"status": "suspended"})
    await answer(client, charge["confirmation_url"], login_id=shop.login_id, password=shop.password)
    assert (await decided(settings, charge["id"])).failure_code == "merchant_inactive"


async def test_over_the_id_limit_is_limit_exceeded(client, ops: OpsClient, settings: Settings) -> None:
    """An ID with a 5,000-yen limit can buy 3,000 once; the second 3,000 is limit_exceeded."""
    shop = await open_shop(ops, monthly_limit=5000)
    first = await create_charge(client, shop)
    await answer(client, first["confirmation_url"], login_id=shop.login_id, password=shop.password)
    assert (await decided(settings, first["id"])).status == "succeeded"
    second = await create_charge(client, shop)
    await answer(client, second["confirmation_url"], login_id=shop.login_id, password=shop.password)
    assert (await decided(settings, second["id"])).failure_code == "limit_exceeded"


async def test_over_the_line_limit_is_limit_exceeded(client, ops: OpsClient, shop: Shop, settings: Settings) -> None:
    """The line's own limit holds across its IDs."""
    await ops.patch(f"/ops/v1/lines/{shop.line_id}", json={"monthly_limit": 4000})
    charge = await create_charge(client, shop)
    await answer(client, charge["confirmation_url"], login_id=shop.login_id, password=shop.password)
    assert (await decided(settings, charge["id"])).status == "succeeded"
    _, other = await ops.post(f"/ops/v1/lines/{shop.line_id}/accounts", json={"login_id": "hanako"})
    charge = await create_charge(client, shop)
    await answer(client, charge["confirmation_url"], login_id="hanako", password=other["initial_password"])
    assert (await decided(settings, charge["id"])).failure_code == "limit_exceeded"


async def test_unconfirmed_charge_expires_after_thirty_minutes(client, shop: Shop, settings: Settings) -> None:
    """Thirty minutes without an answer: the scheduler fails the charge with expired; the page says so."""
    charge = await create_charge(client, shop)
    await clock.move_to(await clock.now() + timedelta(minutes=31))
    await run_due_jobs()
    stored = await Charge.get(id=charge["id"])
    assert (stored.status, stored.failure_code) == ("failed", "expired")
    page = await client.get(urlsplit(charge["confirmation_url"]).path, allow_redirects=False)
    assert page.status == 303
    assert "status=failed" in page.headers["Location"]


async def test_decline_cancels_and_returns(client, shop: Shop) -> None:
    """Declining goes straight back to the merchant with status=canceled, signed."""
    charge = await create_charge(client, shop)
    posted = await answer(client, charge["confirmation_url"], action="decline")
    assert posted.status == 303
    query = dict(parse_qsl(urlsplit(posted.headers["Location"]).query))
    assert query["status"] == "canceled"
    assert verify_return({k: query[k] for k in ("charge", "status", "signature")}, shop.signing_secret)
    assert (await Charge.get(id=charge["id"])).status == "canceled"


@pytest.mark.parametrize("csrf", ["", "forged-token"])
async def test_missing_or_wrong_csrf_token_changes_nothing(client, shop: Shop, csrf: str) -> None:
    """Without the page's own token the form comes back (403) naming the problem; the charge waits on."""
    charge = await create_charge(client, shop)
    before = await row_counts()
    posted = await answer(client, charge["confirmation_url"], login_id=shop.login_id, password=shop.password, csrf=csrf)
    assert posted.status == 403
    assert "不正な送信" in await posted.text()
    assert await row_counts() == before
    assert (await Charge.get(id=charge["id"])).status == "requires_confirmation"


async def test_empty_credentials_show_the_form_again(client, shop: Shop) -> None:
    """Confirming without an ID or password re-renders the form with the problem named (400)."""
    charge = await create_charge(client, shop)
    posted = await answer(client, charge["confirmation_url"], login_id=shop.login_id, password="")
    assert posted.status == 400
    assert "パスワードを入力" in await posted.text()
    assert (await Charge.get(id=charge["id"])).status == "requires_confirmation"


async def test_a_second_answer_changes_nothing(client, shop: Shop, settings: Settings) -> None:
    """Posting the form twice (a double click) decides once."""
    charge = await create_charge(client, shop)
    path = urlsplit(charge["confirmation_url"]).path
    token = CSRF.search(await (await client.get(path)).text())
    assert token is not None
    form = {"login_id": shop.login_id, "password": shop.password, "csrf_token": token.group(1), "action": "confirm"}
    first = await client.post(path, data=form, allow_redirects=False)
    again = await client.post(path, data=form, allow_redirects=False)
    assert (first.status, again.status) == (303, 303)
    assert (await decided(settings, charge["id"])).status == "succeeded"
    assert await ConfirmationAttempt.filter(charge_id=charge["id"]).count() == 1


async def test_status_with_wait_answers_once_the_decision_is_in(client, shop: Shop, settings: Settings) -> None:
    """/status?wait=N sent while the purchase is processing answers the final status (the
    request waited for the auth worker's decision), and the wait page then sends the subscriber
    back at once."""
    charge = await create_charge(client, shop)
    path = urlsplit(charge["confirmation_url"]).path
    posted = await answer(client, charge["confirmation_url"], login_id=shop.login_id, password=shop.password)
    assert posted.status == 303
    assert (await Charge.get(id=charge["id"])).status == "processing"  # the outbox is not relayed yet

    async def waiting_status() -> dict[str, Any]:
        return dict(await (await client.get(path + "/status?wait=10")).json())

    status, _ = await asyncio.gather(waiting_status(), decided(settings, charge["id"]))
    assert status["status"] == "succeeded"
    wait = await client.get(path + "/wait", allow_redirects=False)
    assert (wait.status, wait.headers["Location"]) == (303, status["redirect_url"])


@pytest.mark.parametrize("wait", ["-1", "11", "abc", "1e3", "0x10", " 1"])
async def test_a_malformed_status_wait_is_refused(client, shop: Shop, wait: str) -> None:
    """?wait= takes 0 to 10 seconds; anything else is a 400 naming the parameter."""
    charge = await create_charge(client, shop)
    response = await client.get(urlsplit(charge["confirmation_url"]).path + "/status", params={"wait": wait})
    assert response.status == 400
    assert (await response.json())["error"]["param"] == "wait"
