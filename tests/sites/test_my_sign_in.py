"""Signing in to the my page under a purchase's own rules: the password and its lock (one counter
with purchases), only from the ID's own line, audited; CSRF, sessions, headers, language."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from my_support import AWAY, buy, open_browsers, other_line, proxied_client  # noqa: F401 - fixtures client, browsers

from billing.purchases import PurchaseFacts, decide_my_page_sign_in
from conftest import OpsClient
from models.accounts import SubscriberAccount
from models.audit_log import AuditEntry
from models.charges import Charge
from models.site_sessions import SiteSession
from settings import Settings
from tests_support import Shop, open_shop

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


@pytest.fixture
async def shop(ops: OpsClient) -> Shop:
    """A line holding 127.0.0.1 with the ID ``taro``, and a merchant."""
    return await open_shop(ops)


def test_the_sign_in_rule_is_the_purchase_rule_without_merchant_or_amount() -> None:
    """Lock first, then the password, then the line, then the address; a right password clears the counter."""
    good = PurchaseFacts(
        now=NOW, amount=999_999, account_found=True, password_ok=True, failed_attempts=3, address_in_open_session=True
    )
    assert decide_my_page_sign_in(good).failure_code is None
    assert decide_my_page_sign_in(good).failed_attempts == 0
    away = PurchaseFacts(now=NOW, amount=0, account_found=True, password_ok=True, address_in_open_session=False)
    assert decide_my_page_sign_in(away).failure_code == "line_mismatch"
    fifth = PurchaseFacts(now=NOW, amount=0, account_found=True, password_ok=False, failed_attempts=4)
    assert decide_my_page_sign_in(fifth).failure_code == "account_locked"


async def test_the_id_signs_in_from_its_own_line(shop: Shop, browsers: Any) -> None:
    """Right ID and password from the line's address: the my page opens, a session row, an audit entry."""
    browser = browsers()
    response = await browser.sign_in(shop.login_id, shop.password)
    assert response.status == 303
    assert response.headers["Location"] == "/my"
    status, page = await browser.get("/my")
    assert status == 200
    assert 'id="signed-in-as">taro<' in page
    account = await SubscriberAccount.get(login_id=shop.login_id)
    assert await SiteSession.filter(site="my", user_id=account.id, ended_at=None).count() == 1
    entry = await AuditEntry.get(action="my_sign_in.signed_in")
    assert (entry.actor, entry.target_id, entry.details["address"]) == (
        f"subscriber:{account.id}",
        account.id,
        "127.0.0.1",
    )


async def test_another_lines_address_is_refused_naming_the_line(ops: OpsClient, shop: Shop, browsers: Any) -> None:
    """From the other line's address taro is refused as line_mismatch (no session); that line's own ID gets in."""
    jiro_password = await other_line(ops, login_id="jiro")
    away = browsers(address=AWAY)
    refused = await away.sign_in(shop.login_id, shop.password)
    assert refused.status == 403
    assert 'data-problem="line_mismatch"' in refused.body_text
    assert "フレッツ回線からのみ" in refused.body_text
    assert await SiteSession.filter(site="my").count() == 0
    assert await AuditEntry.exists(action="my_sign_in.line_mismatch")
    assert (await away.sign_in("jiro", jiro_password)).status == 303


async def test_five_wrong_passwords_lock_the_id_for_the_my_page_and_for_purchases(
    client: Any, shop: Shop, settings: Settings, browsers: Any, worker: Any
) -> None:
    """Four wrong passwords are named, the fifth locks; the right one is then refused, and so is a purchase."""
    browser = browsers()
    answers = [await browser.sign_in(shop.login_id, f"wrong-password-{n}") for n in range(5)]
    assert [a.status for a in answers] == [401, 401, 401, 401, 403]
    assert 'data-problem="invalid_credentials"' in answers[0].body_text
    assert 'data-problem="account_locked"' in answers[4].body_text
    locked = await browser.sign_in(shop.login_id, shop.password)
    assert locked.status == 403
    assert 'data-problem="account_locked"' in locked.body_text
    assert (await SubscriberAccount.get(login_id=shop.login_id)).locked_until is not None
    assert await SiteSession.filter(site="my").count() == 0
    await buy(client, settings, shop.auth, login_id=shop.login_id, password=shop.password, amount=100, until="failed")
    assert (await Charge.get()).failure_code == "account_locked"


async def test_a_wrong_password_on_a_purchase_counts_on_the_my_page_counter(
    client: Any, shop: Shop, settings: Settings, browsers: Any, worker: Any
) -> None:
    """Four wrong passwords on the my page and a fifth on a purchase lock the ID: the my page then refuses."""
    browser = browsers()
    for n in range(4):
        assert (await browser.sign_in(shop.login_id, f"wrong-password-{n}")).status == 401
    await buy(client, settings, shop.auth, login_id=shop.login_id, password="wrong-again-5", amount=100, until="failed")
    assert (await Charge.get()).failure_code == "account_locked"
    refused = await browser.sign_in(shop.login_id, shop.password)
    assert refused.status == 403
    assert 'data-problem="account_locked"' in refused.body_text


async def test_an_unknown_id_reads_like_a_wrong_password(shop: Shop, browsers: Any) -> None:
    """An ID nobody has is answered like a wrong password, and locks nothing."""
    response = await browsers().sign_in("nobody-here", "whatever-password")
    assert response.status == 401
    assert 'data-problem="invalid_credentials"' in response.body_text
    assert (await SubscriberAccount.get(login_id=shop.login_id)).failed_attempts == 0


async def test_a_suspended_line_is_named(ops: OpsClient, shop: Shop, browsers: Any) -> None:
    """The right password on a suspended line is refused as line_inactive, and resets the counter like a purchase."""
    await ops.patch(f"/ops/v1/lines/{shop.line_id}", json={"status": "suspended"})
    response = await browsers().sign_in(shop.login_id, shop.password)
    assert response.status == 403
    assert 'data-problem="line_inactive"' in response.body_text


async def test_a_post_without_the_csrf_token_is_refused(shop: Shop, browsers: Any) -> None:
    """Sign-in and sign-out without (or with a forged) CSRF token answer 403 and change nothing."""
    browser = browsers()
    await browser.get("/my/login")
    for forged in ("", "not-the-token"):
        response = await browser.post("/my/login", {"login_id": shop.login_id, "password": shop.password}, csrf=forged)
        assert response.status == 403
    assert await SiteSession.filter(site="my").count() == 0
    assert not await AuditEntry.exists(action__startswith="my_sign_in")
    await browser.sign_in(shop.login_id, shop.password)
    await browser.get("/my")
    assert (await browser.post("/my/logout", csrf="forged")).status == 403
    assert await SiteSession.filter(site="my", ended_at=None).count() == 1


async def test_sign_out_ends_the_session_and_a_visitor_is_sent_to_sign_in(shop: Shop, browsers: Any) -> None:
    """Without a session every page leads to sign-in; after sign-out the old session no longer opens /my."""
    browser = browsers()
    status, _ = await browser.get("/my/subscriptions")
    assert status == 303
    await browser.sign_in(shop.login_id, shop.password)
    await browser.get("/my")
    out = await browser.post("/my/logout")
    assert (out.status, out.headers["Location"]) == (303, "/my/login")
    assert (await SiteSession.get(site="my")).ended_at is not None
    assert (await browser.get("/my"))[0] == 303


async def test_the_pages_are_japanese_by_default_english_on_asking_and_send_the_headers(
    shop: Shop, browsers: Any, client: Any
) -> None:
    """The sign-in page is Japanese, English with ?lang=en; pages forbid script and framing and are not stored."""
    browser = browsers()
    assert "マイページにログイン" in (await browser.get("/my/login"))[1]
    assert "Sign in to your my page" in (await browser.get("/my/login?lang=en"))[1]
    response = await client.get("/my/login")
    assert "script-src 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Cache-Control"] == "no-store"
