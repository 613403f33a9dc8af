"""The console's line page (/ops/lines/{line_id}): everything about a line on one page, and the
actions by role — unlock, reset a password (shown once), refund, cancel a subscription,
suspend, resume, terminate — each with a reason in one audit row (product.md §10)."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest
from sites_support import SiteBrowser, ops_signed_in

from billing.periods import period_of
from conftest import OpsClient, row_counts
from models.accounts import StaffUser, SubscriberAccount
from models.audit_log import AuditEntry
from models.charges import AccountUsage, Charge, Refund
from models.clock import clock
from models.events import Event
from models.invoices import Collection, Invoice
from models.lines import Line, LineSession
from models.operations.subscribers import sign_in_subscriber
from models.subscriptions import Subscription
from settings import Settings
from tests_support import Shop, buy, line_body, open_shop, settle

OTHER_LINE = "CAF0000002002"
REASON = "subscriber called the support centre"


@pytest.fixture
async def shop(ops: OpsClient) -> Shop:
    """A line with a session for 127.0.0.1, the ID ``taro`` on it, and a merchant."""
    return await open_shop(ops)


async def a_charge(shop: Shop, amount: int = 1200, *, line_id: str | None = None, **values: Any) -> Charge:
    """A succeeded, unbilled charge of the shop's ID on its line (written straight to the table)."""
    now = await clock.now()
    account = await SubscriberAccount.get(login_id=values.pop("login_id", shop.login_id))
    fields = {
        "merchant_id": shop.merchant_id,
        "line_id": line_id or account.line_id,
        "account_id": account.id,
        "amount": amount,
        "description": f"動画 {amount}円",
        "status": "succeeded",
        "billing_status": "unbilled",
        "period": "2026-01",
        "created_at": now,
        "decided_at": now,
        **values,
    }
    return await Charge.create(**fields)


async def a_subscription(shop: Shop, *, login_id: str | None = None) -> Subscription:
    """An active subscription of the shop's ID (written straight to the table)."""
    account = await SubscriberAccount.get(login_id=login_id or shop.login_id)
    return await Subscription.create(
        merchant_id=shop.merchant_id,
        line_id=account.line_id,
        account_id=account.id,
        amount=980,
        description="月額プラン",
        status="active",
        current_period="2026-01",
        created_at=await clock.now(),
    )


async def other_line(ops: OpsClient, login_id: str = "jiro") -> str:
    """A second line with one ID; the ID's first password."""
    status, _ = await ops.post("/ops/v1/lines", json=line_body(OTHER_LINE))
    assert status == 201
    status, created = await ops.post(f"/ops/v1/lines/{OTHER_LINE}/accounts", json={"login_id": login_id})
    assert status == 201
    return str(created["initial_password"])


async def lock(login_id: str) -> None:
    """Five wrong passwords on the my page (the counter purchases share) lock the ID."""
    for attempt in range(5):
        await sign_in_subscriber(login_id, f"wrong-{attempt}", client_address="127.0.0.1", request_id=None)
    assert (await SubscriberAccount.get(login_id=login_id)).locked_until is not None


async def staff_id(browser: SiteBrowser) -> str:
    """The id of the staff member signed in on ``browser`` (the newest one)."""
    return (await StaffUser.all().order_by("-created_at").first()).id  # type: ignore[union-attr]


def section(page: str, name: str) -> str:
    """The HTML of the page's section ``name``."""
    return page.split(f'id="{name}"')[1].split("</section>", maxsplit=1)[0]


async def test_the_line_page_shows_the_line_its_ids_sessions_purchases_bills_and_trail(
    ops: OpsClient, client: Any, shop: Shop
) -> None:
    """Line fields, the locked ID with its failures and usage, open and past sessions, the purchase,
    the subscription, the bill with its payment, and the audit trail, newest first."""
    await lock(shop.login_id)
    status, _ = await ops.post(f"/ops/v1/lines/{shop.line_id}/accounts", json={"login_id": "hanako", "is_minor": True})
    assert status == 201
    for attempt in range(2):
        await sign_in_subscriber("hanako", f"wrong-{attempt}", client_address="127.0.0.1", request_id=None)
    account = await SubscriberAccount.get(login_id=shop.login_id)
    period = period_of(await clock.now())
    await AccountUsage.create(account=account, period=period, amount=1700)
    charge = await a_charge(shop, 1700)
    subscription = await a_subscription(shop)
    past = await LineSession.create(
        line_id=shop.line_id, address="192.0.2.9", network="192.0.2.9/32", family=4, started_at=await clock.now()
    )
    past.ended_at = await clock.now()
    await past.save()
    invoice = await Invoice.create(
        line_id=shop.line_id, period="2025-12", status="partially_paid", total=7200, amount_paid=5000,
        due_date=date(2026, 1, 26), created_at=await clock.now(),
    )  # fmt: skip
    await Collection.create(
        invoice=invoice, amount=5000, paid_at=await clock.now(), source="api", source_reference="r-1",
        created_at=await clock.now(),
    )  # fmt: skip
    support = await ops_signed_in(client, role="support")
    status, page = await support.get(f"/ops/lines/{shop.line_id}?lang=en")
    assert status == 200
    fields = section(page, "line-fields")
    for shown in (shop.line_id, "山田 太郎", "hikari_next", "5,500", "100,000"):
        assert shown in fields, shown
    ids = section(page, "line-ids")
    assert f'data-login="{shop.login_id}" data-locked="yes"' in ids
    assert 'data-login="hanako" data-locked="no"' in ids
    hanako = ids.split('data-login="hanako"')[1].split("</tr>")[0]
    assert '<td class="num">2</td>' in hanako  # failed attempts, not yet locked
    assert "Minor" in hanako
    assert "10,000" in hanako
    taro = ids.split(f'data-login="{shop.login_id}"')[1].split("</tr>")[0]
    assert "Locked" in taro
    assert "50,000" in taro
    assert "1,700" in taro
    sessions = section(page, "line-sessions")
    assert sessions.count('class="open-session"') == 1
    assert "127.0.0.1" in sessions
    assert sessions.count('class="past-session muted"') == 1
    assert "192.0.2.9" in sessions
    assert charge.id in section(page, "line-purchases")
    assert subscription.id in section(page, "line-subscriptions")
    bills = section(page, "line-invoices")
    assert invoice.id in bills
    assert 'data-status="partially_paid"' in bills
    assert "7,200" in bills
    assert "2026-01-26" in bills
    assert "payments-table" in bills
    trail = section(page, "line-audit")
    actions = re.findall(r'data-action="([a-z_.]+)"', trail)
    newest = ["my_sign_in.invalid_credentials"] * 2 + ["account.create", "my_sign_in.account_locked"]
    assert actions[:4] == newest  # hanako's two failures, hanako made, taro locked
    assert {"line.create", "session.open", "account.create"} <= set(actions)


@pytest.mark.parametrize("line_id", ["CAF9999999999", "caf0000001001", "CAF" + "1" * 40, "x"])
async def test_an_unknown_line_is_a_404_page(client: Any, shop: Shop, line_id: str) -> None:
    """No such line (or not a line id at all): the 404 page, never a 500."""
    support = await ops_signed_in(client, role="support")
    status, page = await support.get(f"/ops/lines/{line_id}")
    assert status == 404
    assert "<h1>" in page


ROLE_BUTTONS = {
    "support": {"unlock-", "reset-", "cancel-"},
    "billing": {"unlock-", "reset-", "cancel-", "refund-"},
    "admin": {"unlock-", "reset-", "cancel-", "refund-", "suspend-form", "terminate-form"},
}


@pytest.mark.parametrize("role", ["support", "billing", "admin"])
async def test_each_role_sees_only_the_buttons_it_may_use(client: Any, shop: Shop, role: str) -> None:
    """support: unlock, reset, cancel; billing: also refund; admin: also suspend and terminate."""
    await lock(shop.login_id)
    await a_charge(shop)
    await a_subscription(shop)
    browser = await ops_signed_in(client, role=role)
    status, page = await browser.get(f"/ops/lines/{shop.line_id}")
    assert status == 200
    forms = set(
        re.findall(r'<form method="post" action="/ops/lines/[^"]+" class="inline" id="([a-z]+-)(?:acct|ch|sub)_', page)
    )
    forms |= set(re.findall(r'id="((?:suspend|terminate|resume)-form)"', page))
    assert forms == ROLE_BUTTONS[role]


async def _targets(ops: OpsClient, shop: Shop) -> dict[str, tuple[str, dict[str, str]]]:
    """Each action's path and a good form, on fresh objects of the shop's line."""
    await lock(shop.login_id)
    account = await SubscriberAccount.get(login_id=shop.login_id)
    charge = await a_charge(shop)
    subscription = await a_subscription(shop)
    base = f"/ops/lines/{shop.line_id}"
    return {
        "unlock": (f"{base}/ids/{account.id}/unlock", {"reason": REASON}),
        "reset": (f"{base}/ids/{account.id}/reset_password", {"reason": REASON}),
        "cancel": (f"{base}/subscriptions/{subscription.id}/cancel", {"reason": REASON}),
        "refund": (f"{base}/charges/{charge.id}/refund", {"amount": "200", "reason": REASON}),
        "suspend": (f"{base}/suspend", {"reason": REASON}),
        "terminate": (f"{base}/terminate", {"reason": REASON}),
    }


ALLOWED = {
    "support": {"unlock", "reset", "cancel"},
    "billing": {"unlock", "reset", "cancel", "refund"},
    "admin": {"unlock", "reset", "cancel", "refund", "suspend", "terminate"},
}
# What each action writes in the audit log: (action, target kind).
AUDITED = {
    "unlock": ("account.unlock", "account"),
    "reset": ("account.reset_password", "account"),
    "cancel": ("subscription.cancel", "subscription"),
    "refund": ("charge.refund", "charge"),
    "suspend": ("line.update", "line"),
    "terminate": ("line.update", "line"),
}


@pytest.mark.parametrize("role", ["support", "billing", "admin"])
@pytest.mark.parametrize("action", list(AUDITED))
async def test_an_action_is_done_with_one_audit_row_or_refused_403_with_nothing_changed(
    ops: OpsClient, client: Any, shop: Shop, role: str, action: str
) -> None:
    """A role that may act: done, one audit row naming staff, action, object and reason. One that may
    not: 403 and not one row anywhere changes."""
    path, form = (await _targets(ops, shop))[action]
    browser = await ops_signed_in(client, role=role)
    me = await staff_id(browser)
    before = await row_counts()
    audit_before = await AuditEntry.all().order_by("-id").first()
    response = await browser.post(path, form)
    if action not in ALLOWED[role]:
        assert response.status == 403
        assert await row_counts() == before
        return
    assert response.status == (200 if action == "reset" else 303), response.body_text
    entries = await AuditEntry.filter(id__gt=audit_before.id if audit_before else 0, actor=f"staff:{me}")  # type: ignore[union-attr]
    assert len(entries) == 1
    (entry,) = entries
    assert (entry.action, entry.target_type) == AUDITED[action]
    assert entry.details["reason"] == REASON
    target = path.split("/")[-2] if action not in ("suspend", "terminate") else shop.line_id
    if action in ("unlock", "reset"):
        target = shop.login_id
    assert entry.target_id == target


async def test_an_unlock_lifts_the_lock_and_says_so(client: Any, shop: Shop) -> None:
    """The ID's failed attempts and lock are gone; the page after the redirect says it is unlocked."""
    await lock(shop.login_id)
    account = await SubscriberAccount.get(login_id=shop.login_id)
    support = await ops_signed_in(client, role="support")
    response = await support.post(f"/ops/lines/{shop.line_id}/ids/{account.id}/unlock", {"reason": REASON})
    assert response.status == 303
    account = await SubscriberAccount.get(login_id=shop.login_id)
    assert (account.failed_attempts, account.locked_until) == (0, None)
    _status, page = await support.get(response.headers["Location"])
    assert 'data-done="unlocked"' in page
    assert f'data-login="{shop.login_id}" data-locked="no"' in page


async def test_a_reset_password_is_shown_once_and_then_buys(
    ops: OpsClient, client: Any, settings: Settings, shop: Shop, worker: Any
) -> None:
    """The new password is on the answer only (not on the page reloaded); the old one no longer signs
    in, the new one confirms a purchase."""
    await lock(shop.login_id)
    account = await SubscriberAccount.get(login_id=shop.login_id)
    support = await ops_signed_in(client, role="support")
    response = await support.post(f"/ops/lines/{shop.line_id}/ids/{account.id}/reset_password", {"reason": REASON})
    assert response.status == 200
    found = re.search(r'<code id="new-password">([^<]+)</code>', response.body_text)
    assert found is not None
    password = found.group(1)
    _, again = await support.get(f"/ops/lines/{shop.line_id}")
    assert password not in again
    assert 'id="new-password"' not in again
    refused = await sign_in_subscriber(shop.login_id, shop.password, client_address="127.0.0.1", request_id=None)
    assert refused.failure_code == "invalid_credentials"
    charge_id = await buy(client, settings, shop, amount=700, password=password)
    assert (await Charge.get(id=charge_id)).status == "succeeded"


async def test_a_refund_from_the_line_page_tells_the_merchant(client: Any, shop: Shop) -> None:
    """A billing member refunds part of a purchase: the refund row with the reason, the charge's refunded amount,
    and a charge.refunded event for the merchant."""
    charge = await a_charge(shop, 1200)
    billing = await ops_signed_in(client, role="billing")
    path = f"/ops/lines/{shop.line_id}/charges/{charge.id}/refund"
    response = await billing.post(path, {"amount": "500", "reason": REASON})
    assert response.status == 303
    refund = await Refund.get(charge_id=charge.id)
    assert (refund.amount, refund.reason) == (500, REASON)
    assert (await Charge.get(id=charge.id)).refunded_amount == 500
    assert await Event.filter(merchant_id=shop.merchant_id, type="charge.refunded", object_id=charge.id).count() == 1
    _, page = await billing.get(response.headers["Location"])
    assert 'data-done="refunded"' in page
    assert f'id="refund-amount-{charge.id}"' in page
    assert 'value="700"' in page


async def test_a_subscription_canceled_by_staff_keeps_a_code_and_the_reason(client: Any, shop: Shop) -> None:
    """The subscription is canceled with the code ``staff``; the audit row keeps the reason; the merchant is told."""
    subscription = await a_subscription(shop)
    support = await ops_signed_in(client, role="support")
    path = f"/ops/lines/{shop.line_id}/subscriptions/{subscription.id}/cancel"
    response = await support.post(path, {"reason": REASON})
    assert response.status == 303
    canceled = await Subscription.get(id=subscription.id)
    assert (canceled.status, canceled.cancel_reason) == ("canceled", "staff")
    entry = await AuditEntry.get(action="subscription.cancel", target_id=subscription.id)
    assert entry.details == {"reason": REASON, "cancel_reason": "staff"}
    assert await Event.filter(type="subscription.canceled", object_id=subscription.id).count() == 1
    response = await support.post(path, {"reason": REASON})
    assert response.status == 409
    assert 'data-problem="subscription_not_cancelable"' in response.body_text


async def test_an_admin_suspends_resumes_and_terminates_and_termination_cancels_subscriptions(
    client: Any, settings: Settings, shop: Shop, worker: Any
) -> None:
    """Suspend then resume (each once: again is a 409), then terminate: sessions end, the live
    subscription is canceled by the worker, and the page offers no more line actions."""
    subscription = await a_subscription(shop)
    admin = await ops_signed_in(client, role="admin")
    base = f"/ops/lines/{shop.line_id}"
    assert (await admin.post(f"{base}/suspend", {"reason": REASON})).status == 303
    assert (await Line.get(line_id=shop.line_id)).status == "suspended"
    before = await row_counts()
    again = await admin.post(f"{base}/suspend", {"reason": REASON})
    assert again.status == 409
    assert 'data-problem="line_status"' in again.body_text
    assert await row_counts() == before
    assert (await admin.post(f"{base}/resume", {"reason": REASON})).status == 303
    assert (await Line.get(line_id=shop.line_id)).status == "active"
    assert (await admin.post(f"{base}/terminate", {"reason": REASON})).status == 303
    assert (await Line.get(line_id=shop.line_id)).status == "terminated"
    assert await LineSession.filter(line_id=shop.line_id, ended_at=None).count() == 0

    async def canceled() -> bool:
        return (await Subscription.get(id=subscription.id)).status == "canceled"

    await settle(settings, canceled)
    assert (await Subscription.get(id=subscription.id)).cancel_reason == "line_terminated"
    status, page = await admin.get(base)
    assert status == 200
    assert 'id="line-actions"' not in page
    again = await admin.post(f"{base}/terminate", {"reason": REASON})
    assert again.status == 409
    assert 'data-problem="line_terminated"' in again.body_text


async def test_bad_input_is_named_on_the_page_and_writes_nothing(ops: OpsClient, client: Any, shop: Shop) -> None:
    """A refund above what is left, a non-digit or empty amount, a missing or too long reason, an
    unknown purchase, or another line's purchase, ID or subscription: the page again with the
    problem named (4xx), not one row written."""
    await other_line(ops)
    charge = await a_charge(shop, 1200)
    theirs = await a_charge(shop, 800, login_id="jiro")
    their_id = await SubscriberAccount.get(login_id="jiro")
    their_subscription = await a_subscription(shop, login_id="jiro")
    billing = await ops_signed_in(client, role="billing")
    base = f"/ops/lines/{shop.line_id}"
    refund = f"{base}/charges/{charge.id}/refund"
    cases = [
        (refund, {"amount": "1201", "reason": REASON}, 400, "amount_too_large"),
        (refund, {"amount": "abc", "reason": REASON}, 400, "invalid_amount"),
        (refund, {"amount": "", "reason": REASON}, 400, "invalid_amount"),
        (refund, {"amount": "-5", "reason": REASON}, 400, "invalid_amount"),
        (refund, {"amount": "9" * 5000, "reason": REASON}, 400, "invalid_amount"),
        (refund, {"amount": "100", "reason": ""}, 400, "reason_required"),
        (refund, {"amount": "100", "reason": "x" * 501}, 400, "reason_invalid"),
        (refund, {"amount": "100"}, 400, "reason_required"),
        (f"{base}/charges/ch_nothing/refund", {"amount": "100", "reason": REASON}, 404, "not_this_line"),
        (f"{base}/charges/ch_{'a' * 60}/refund", {"amount": "100", "reason": REASON}, 404, "not_this_line"),
        (f"{base}/charges/{theirs.id}/refund", {"amount": "100", "reason": REASON}, 404, "not_this_line"),
        (f"{base}/ids/{their_id.id}/unlock", {"reason": REASON}, 404, "not_this_line"),
        (f"{base}/ids/{their_id.id}/reset_password", {"reason": REASON}, 404, "not_this_line"),
        (f"{base}/subscriptions/{their_subscription.id}/cancel", {"reason": REASON}, 404, "not_this_line"),
        (f"{base}/subscriptions/sub_{'b' * 60}/cancel", {"reason": REASON}, 404, "not_this_line"),
    ]
    before = await row_counts()
    for path, form, status, code in cases:
        response = await billing.post(path, form)
        assert response.status == status, (path, form, response.status)
        assert f'data-problem="{code}"' in response.body_text, (path, form)
        assert 'id="line-fields"' in response.body_text
    assert await row_counts() == before
    assert (await Charge.get(id=charge.id)).refunded_amount == 0
    response = await billing.post(
        f"/ops/lines/CAF9999999999/charges/{charge.id}/refund", {"amount": "1", "reason": "r"}
    )
    assert response.status == 404


async def test_a_refund_of_what_is_left_then_one_more_yen_is_refused(client: Any, shop: Shop) -> None:
    """Refunding in full removes the refund form; one more refund is a 409 naming it, nothing written."""
    charge = await a_charge(shop, 600)
    billing = await ops_signed_in(client, role="billing")
    path = f"/ops/lines/{shop.line_id}/charges/{charge.id}/refund"
    assert (await billing.post(path, {"amount": "600", "reason": REASON})).status == 303
    _, page = await billing.get(f"/ops/lines/{shop.line_id}")
    assert f'id="refund-{charge.id}"' not in page
    before = await row_counts()
    response = await billing.post(path, {"amount": "1", "reason": REASON})
    assert response.status == 409
    assert 'data-problem="charge_already_refunded"' in response.body_text
    assert await row_counts() == before


async def test_a_forged_form_without_the_csrf_token_changes_nothing(client: Any, shop: Shop) -> None:
    """A POST with a wrong CSRF token is refused 403 before the handler, even for an admin."""
    admin = await ops_signed_in(client, role="admin")
    before = await row_counts()
    response = await admin.post(f"/ops/lines/{shop.line_id}/suspend", {"reason": REASON}, csrf="forged")
    assert response.status == 403
    assert await row_counts() == before


async def test_purchases_are_paged_newest_first_by_cursor(client: Any, shop: Shop) -> None:
    """25 purchases: 20 on the first page with an older link, the other 5 behind it; a bad cursor is a 400."""
    start = await clock.now()
    made = [await a_charge(shop, 100 + n, created_at=start + timedelta(seconds=n)) for n in range(25)]
    support = await ops_signed_in(client, role="support")
    _, page = await support.get(f"/ops/lines/{shop.line_id}")
    shown = re.findall(r'<tr id="charge-(ch_[0-9a-f]+)"', page)
    assert shown == [charge.id for charge in reversed(made)][:20]
    older = re.search(r'<a href="([^"]+)" rel="next">', page)
    assert older is not None
    _, rest = await support.get(older.group(1).replace("&amp;", "&"))
    assert re.findall(r'<tr id="charge-(ch_[0-9a-f]+)"', rest) == [charge.id for charge in reversed(made)][20:]
    status, bad = await support.get(f"/ops/lines/{shop.line_id}?after=ch_unknown")
    assert status == 400
    assert 'data-problem="cursor_invalid"' in bad
