"""The my page's own pages: each ID sees only its own purchases, by merchant and against its limit;
past months with the ID's own items on its line's bill; subscriptions cancelled after a
confirmation step (the merchant hears of it); the password change. Bad input is named and
changes nothing."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from my_support import (  # noqa: F401 - the fixtures client and browsers
    AWAY,
    add_id,
    another_merchant,
    buy,
    open_browsers,
    other_line,
    proxied_client,
)

from conftest import OpsClient
from models.accounts import SubscriberAccount
from models.audit_log import AuditEntry
from models.charges import Charge
from models.clock import clock
from models.invoices import Invoice, InvoiceItem
from models.subscriptions import Subscription
from settings import Settings
from tests_support import Shop, at, open_shop

pytestmark = pytest.mark.usefixtures("worker")


@pytest.fixture
async def shop(ops: OpsClient) -> Shop:
    """A line holding 127.0.0.1 with the ID ``taro``, and a merchant."""
    return await open_shop(ops)


def figure(page: str, element_id: str) -> str:
    """The text of the element with ``element_id`` (a figure, a total)."""
    found = re.search(rf'id="{re.escape(element_id)}">([^<]*)<', page)
    assert found, f"no #{element_id} on the page"
    return found.group(1)


async def signed_in(browsers: Any, login_id: str, password: str, *, address: str | None = None) -> Any:
    """A browser signed in to the my page as ``login_id``."""
    browser = browsers(address=address)
    response = await browser.sign_in(login_id, password)
    assert response.status == 303, response.body_text
    return browser


async def test_each_id_sees_only_its_own_purchases_by_merchant_and_its_limit(
    client: Any, ops: OpsClient, shop: Shop, settings: Settings, browsers: Any
) -> None:
    """Two IDs on one line (one a minor) and one on another line: each page lists and totals only its own."""
    music_id, music = await another_merchant(ops, "音楽配信株式会社")
    hanako_password = await add_id(ops, shop.line_id, "hanako", is_minor=True)
    jiro_password = await other_line(ops, login_id="jiro")
    taro = shop.login_id, shop.password
    mine = [
        await buy(client, settings, shop.auth, login_id=taro[0], password=taro[1], amount=1000),
        await buy(client, settings, shop.auth, login_id=taro[0], password=taro[1], amount=200),
        await buy(client, settings, music, login_id=taro[0], password=taro[1], amount=500),
    ]
    hanakos = await buy(client, settings, shop.auth, login_id="hanako", password=hanako_password, amount=300)
    jiros = await buy(client, settings, shop.auth, login_id="jiro", password=jiro_password, amount=700, address=AWAY)

    _, page = await (await signed_in(browsers, *taro)).get("/my")
    assert all(f'id="charge-{charge}"' in page for charge in mine)
    assert f"charge-{hanakos}" not in page
    assert f"charge-{jiros}" not in page
    assert figure(page, f"merchant-{shop.merchant_id}-total") == "1,200円"
    assert figure(page, f"merchant-{music_id}-total") == "500円"
    assert (figure(page, "month-total"), figure(page, "limit-left")) == ("1,700円", "48,300円")

    _, page = await (await signed_in(browsers, "hanako", hanako_password)).get("/my")
    assert f'id="charge-{hanakos}"' in page
    assert not any(charge in page for charge in [*mine, jiros])
    assert (figure(page, "month-total"), figure(page, "limit-left")) == ("300円", "9,700円")

    _, page = await (await signed_in(browsers, "jiro", jiro_password, address=AWAY)).get("/my?lang=en")
    assert f'id="charge-{jiros}"' in page
    assert not any(charge in page for charge in [*mine, hanakos])
    assert (figure(page, "month-total"), figure(page, "limit-left")) == ("¥700", "¥49,300")


async def test_a_subscription_is_cancelled_after_the_confirmation_step(
    client: Any, shop: Shop, settings: Settings, browsers: Any
) -> None:
    """Cancel button, confirmation page, then the cancel: the merchant gets subscription.canceled; a
    CSRF-less post first changes nothing."""
    subscription_id = await buy(
        client, settings, shop.auth, login_id=shop.login_id, password=shop.password, amount=980, monthly=True
    )
    browser = await signed_in(browsers, shop.login_id, shop.password)
    _, page = await browser.get("/my")
    first_month = await Charge.get(subscription_id=subscription_id)
    assert f'id="charge-{first_month.id}"' in page  # the first month shows at once
    _, page = await browser.get("/my/subscriptions")
    assert f'id="cancel-{subscription_id}"' in page
    status, page = await browser.get(f"/my/subscriptions/{subscription_id}/cancel")
    assert status == 200
    assert 'id="confirm-cancel"' in page
    forged = await browser.post(f"/my/subscriptions/{subscription_id}/cancel", csrf="")
    assert forged.status == 403
    assert (await Subscription.get(id=subscription_id)).status == "active"
    done = await browser.post(f"/my/subscriptions/{subscription_id}/cancel")
    assert (done.status, done.headers["Location"]) == (303, f"/my/subscriptions?canceled={subscription_id}")
    stored = await Subscription.get(id=subscription_id)
    assert (stored.status, stored.cancel_reason) == ("canceled", "subscriber")
    events = await (await client.get("/v1/events", headers=shop.auth)).json()
    canceled = [e for e in events["data"] if e["type"] == "subscription.canceled"]
    assert [e["data"]["object"]["id"] for e in canceled] == [subscription_id]
    account = await SubscriberAccount.get(login_id=shop.login_id)
    assert await AuditEntry.exists(action="subscription.cancel", actor=f"subscriber:{account.id}")
    _, page = await browser.get(f"/my/subscriptions?canceled={subscription_id}")
    assert 'id="canceled-notice"' in page
    assert f'id="cancel-{subscription_id}"' not in page
    again = await browser.post(f"/my/subscriptions/{subscription_id}/cancel")
    assert again.status == 409


async def test_another_ids_subscription_cannot_be_seen_or_cancelled(
    client: Any, ops: OpsClient, shop: Shop, settings: Settings, browsers: Any
) -> None:
    """Another ID of the same line gets 404 for taro's subscription, and it stays active with no event."""
    subscription_id = await buy(
        client, settings, shop.auth, login_id=shop.login_id, password=shop.password, amount=480, monthly=True
    )
    hanako_password = await add_id(ops, shop.line_id, "hanako")
    browser = await signed_in(browsers, "hanako", hanako_password)
    _, page = await browser.get("/my/subscriptions")
    assert subscription_id not in page
    assert (await browser.get(f"/my/subscriptions/{subscription_id}/cancel"))[0] == 404
    for target in (subscription_id, "sub_missing", "x" * 80):
        assert (await browser.post(f"/my/subscriptions/{target}/cancel")).status == 404
    assert (await Subscription.get(id=subscription_id)).status == "active"
    events = await (await client.get("/v1/events", headers=shop.auth)).json()
    assert "subscription.canceled" not in [e["type"] for e in events["data"]]


async def test_a_closed_month_lists_the_ids_own_bill_items_and_a_renewal_shows_at_once(
    client: Any, ops: OpsClient, settings: Settings, browsers: Any
) -> None:
    """November closed: taro's history lists his items of the line's bill, as the invoice has them, and
    not hanako's nor the line's total; on 1 December his renewal is on /my already."""
    await clock.move_to(datetime.fromisoformat("2030-11-10T10:00:00+09:00"))
    shop = await open_shop(ops)
    hanako_password = await add_id(ops, shop.line_id, "hanako")
    taro = {"login_id": shop.login_id, "password": shop.password}
    bought = await buy(client, settings, shop.auth, **taro, amount=1000)
    subscription_id = await buy(client, settings, shop.auth, **taro, amount=480, monthly=True)
    hanakos = await buy(client, settings, shop.auth, login_id="hanako", password=hanako_password, amount=300)
    await at(settings, "2030-12-01T00:10:00+09:00")
    invoice = await Invoice.get(line_id=shop.line_id, period="2030-11")
    browser = await signed_in(browsers, shop.login_id, shop.password)

    _, page = await browser.get("/my")
    renewal = await Charge.get(subscription_id=subscription_id, renewal_period="2030-12")
    assert renewal.status == "succeeded"
    assert f'id="charge-{renewal.id}"' in page
    assert figure(page, "month-total") == "480円"

    status, page = await browser.get("/my/history?period=2030-11")
    assert status == 200
    items = await InvoiceItem.filter(invoice_id=invoice.id, charge__account__login_id="taro").order_by("position")
    assert sorted(item.amount for item in items) == [480, 1000]
    for item in items:
        assert f'id="bill-item-{item.id}"' in page
    hanakos_item = await InvoiceItem.get(charge_id=hanakos)
    assert f"bill-item-{hanakos_item.id}" not in page
    assert f"charge-{hanakos}" not in page
    assert f'id="charge-{bought}"' in page
    assert figure(page, "bill-total") == "1,480円"
    assert invoice.total == 5500 + 1000 + 480 + 300
    assert f"{invoice.total:,}" not in page


async def test_a_malformed_or_future_month_is_named(shop: Shop, browsers: Any) -> None:
    """/my/history with a period that is not YYYY-MM, or has not come, answers 400 naming it."""
    browser = await signed_in(browsers, shop.login_id, shop.password)
    for bad, code in (("2026-13", "invalid_period"), ("abc", "invalid_period"), ("2999-01", "period_in_future")):
        status, page = await browser.get(f"/my/history?period={bad}")
        assert status == 400, bad
        assert f'data-problem="{code}"' in page
    status, page = await browser.get("/my/history")
    assert status == 200
    assert 'id="bill-not-closed"' in page


async def test_a_bad_new_password_is_named_and_changes_nothing(ops: OpsClient, shop: Shop, browsers: Any) -> None:
    """Mismatched, short, equal to the ID, or with a wrong current password: 400 naming it, the hash unchanged."""
    login = "yamada-hanako"
    password = await add_id(ops, shop.line_id, login)
    browser = await signed_in(browsers, login, password)
    before = (await SubscriberAccount.get(login_id=login)).password_hash
    await browser.get("/my/password")
    long = "a-long-password-1"
    cases = (
        ((password, long, "other-one-22"), "new_password_confirmation", "passwords_differ"),
        ((password, "short", "short"), "new_password", "password_too_short"),
        ((password, login, login), "new_password", "password_is_login"),
        (("not-my-password", long, long), "current_password", "wrong_password"),
    )
    for (current, new, again), field, code in cases:
        form = {"current_password": current, "new_password": new, "new_password_confirmation": again}
        response = await browser.post("/my/password", form)
        assert response.status == 400, code
        assert f'id="{field}-error" data-problem="{code}"' in response.body_text
    account = await SubscriberAccount.get(login_id=login)
    assert account.password_hash == before
    assert account.failed_attempts == 1  # only the wrong current password counts towards the lock
    assert not await AuditEntry.exists(action="subscriber_account.password")


async def test_a_password_change_ends_the_ids_other_sessions(shop: Shop, browsers: Any) -> None:
    """The new password works, the old does not, the ID's other session ends and this one stays."""
    elsewhere = await signed_in(browsers, shop.login_id, shop.password)
    here = await signed_in(browsers, shop.login_id, shop.password)
    await here.get("/my/password")
    new = "new-password-2030"
    response = await here.post(
        "/my/password", {"current_password": shop.password, "new_password": new, "new_password_confirmation": new}
    )
    assert (response.status, response.headers["Location"]) == (303, "/my/password?saved=1")
    assert 'id="password-changed"' in (await here.get("/my/password?saved=1"))[1]
    assert (await here.get("/my"))[0] == 200
    assert (await elsewhere.get("/my"))[0] == 303
    account = await SubscriberAccount.get(login_id=shop.login_id)
    assert await AuditEntry.exists(action="subscriber_account.password", actor=f"subscriber:{account.id}")
    assert (await browsers().sign_in(shop.login_id, shop.password)).status == 401
    assert (await browsers().sign_in(shop.login_id, new)).status == 303


async def test_a_carrier_reset_or_a_suspended_line_ends_open_my_pages(
    ops: OpsClient, shop: Shop, browsers: Any
) -> None:
    """Whoever is signed in with the old password is signed out by a reset; a suspended line signs out its IDs."""
    before_reset = await signed_in(browsers, shop.login_id, shop.password)
    status, reset = await ops.post(f"/ops/v1/accounts/{shop.login_id}/reset_password", json={"reason": "stolen"})
    assert status == 200, reset
    assert (await before_reset.get("/my"))[0] == 303
    after_reset = await signed_in(browsers, shop.login_id, reset["initial_password"])
    assert (await after_reset.get("/my"))[0] == 200
    status, _ = await ops.patch(f"/ops/v1/lines/{shop.line_id}", json={"status": "suspended"})
    assert status == 200
    assert (await after_reset.get("/my"))[0] == 303
