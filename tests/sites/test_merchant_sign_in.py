"""The merchant site's foundation: sign-in and lockout, sessions that end, CSRF, roles, headers."""

from __future__ import annotations

from typing import Any

import pyotp
import time_machine
from sites_support import SiteBrowser, merchant_user

from conftest import OpsClient
from models.audit_log import AuditEntry
from models.clock import clock
from models.merchants import MerchantUser
from models.site_sessions import SiteSession
from tests_support import open_shop


async def _admin(ops: OpsClient) -> tuple[str, dict[str, Any]]:
    shop = await open_shop(ops)
    return shop.merchant_id, await merchant_user(ops, shop.merchant_id, role="admin")


async def test_ops_creates_a_user_whose_first_password_signs_in(ops: OpsClient, client: Any) -> None:
    """POST /ops/v1/merchants/{id}/users answers the fixed fields; the password opens the home page."""
    merchant_id, user = await _admin(ops)
    assert set(user) >= {"id", "email", "name", "role", "initial_password"}
    browser = SiteBrowser(client)
    response = await browser.sign_in(user["email"], user["initial_password"])
    assert response.status == 303
    assert response.headers["Location"] == "/merchant"
    status, page = await browser.get("/merchant")
    assert status == 200
    assert "まとめて" in page or "Matomete" in page
    stored = await MerchantUser.get(id=user["id"])
    assert stored.password_hash.startswith("$argon2id$")
    assert user["initial_password"] not in stored.password_hash
    assert merchant_id == stored.merchant_id


async def test_a_visitor_without_a_session_is_sent_to_sign_in(client: Any) -> None:
    """Any page of the site without a session redirects to the sign-in page, remembering where it was."""
    response = await client.get("/merchant/purchases?status=failed", allow_redirects=False)
    assert response.status == 303
    assert response.headers["Location"].startswith("/merchant/login?next=%2Fmerchant%2Fpurchases")


async def test_wrong_passwords_lock_the_user_and_the_right_one_is_then_refused(ops: OpsClient, client: Any) -> None:
    """Five wrong passwords lock the user: the sixth attempt, even right, is refused as locked."""
    _, user = await _admin(ops)
    browser = SiteBrowser(client)
    statuses = [(await browser.sign_in(user["email"], "wrong-password-1")).status for _ in range(5)]
    assert statuses == [401, 401, 401, 401, 403]
    locked = await browser.sign_in(user["email"], user["initial_password"])
    assert locked.status == 403
    assert "30" in locked.body_text
    stored = await MerchantUser.get(id=user["id"])
    assert stored.locked_until is not None
    assert await SiteSession.filter(user_id=user["id"]).count() == 0


async def test_an_unknown_email_reads_like_a_wrong_password(ops: OpsClient, client: Any) -> None:
    """An address nobody has gets the same answer as a wrong password, and locks nothing."""
    await _admin(ops)
    response = await SiteBrowser(client).sign_in("nobody@example.jp", "whatever-password")
    assert response.status == 401


async def test_a_form_without_or_with_a_wrong_csrf_token_is_refused(ops: OpsClient, client: Any) -> None:
    """A POST with a missing or forged CSRF token answers 403 and adds no user."""
    merchant_id, user = await _admin(ops)
    browser = SiteBrowser(client)
    await browser.sign_in(user["email"], user["initial_password"])
    await browser.get("/merchant/users")
    before = await MerchantUser.filter(merchant_id=merchant_id).count()
    for forged in ("", "not-the-token"):
        response = await browser.post(
            "/merchant/users", {"email": "x@shop.example.jp", "name": "X", "role": "viewer"}, csrf=forged
        )
        assert response.status == 403
    assert await MerchantUser.filter(merchant_id=merchant_id).count() == before


async def test_sign_out_ends_the_session_server_side(ops: OpsClient, client: Any) -> None:
    """After sign-out the session row is ended, so a copy of the old cookie signs nobody in."""
    _, user = await _admin(ops)
    browser = SiteBrowser(client)
    await browser.sign_in(user["email"], user["initial_password"])
    await browser.get("/merchant")
    stolen = {cookie.key: cookie.value for cookie in client.session.cookie_jar}
    response = await browser.post("/merchant/logout")
    assert response.status == 303
    session = await SiteSession.get(user_id=user["id"])
    assert session.ended_at is not None
    assert await AuditEntry.exists(action="sign_out", actor=f"muser:{user['id']}")
    client.session.cookie_jar.update_cookies(stolen)
    replay = await client.get("/merchant", allow_redirects=False)
    assert replay.status == 303


async def test_a_session_idle_for_thirty_minutes_sends_the_user_to_sign_in(ops: OpsClient, client: Any) -> None:
    """29 idle minutes keep the session; past 30 it redirects to sign-in and the row is ended."""
    _, user = await _admin(ops)
    browser = SiteBrowser(client)
    await browser.sign_in(user["email"], user["initial_password"])
    start = clock.system_now()
    with time_machine.travel(start.timestamp() + 29 * 60, tick=False):
        assert (await browser.get("/merchant"))[0] == 200
    with time_machine.travel(start.timestamp() + 29 * 60 + 31 * 60, tick=False):
        status, _ = await browser.get("/merchant")
    assert status == 303
    assert (await SiteSession.get(user_id=user["id"])).ended_at is not None


async def test_a_viewer_may_not_manage_users(ops: OpsClient, client: Any) -> None:
    """The users page and its form answer 403 to a viewer, and nothing is added."""
    merchant_id, _ = await _admin(ops)
    viewer = await merchant_user(ops, merchant_id, role="viewer")
    browser = SiteBrowser(client)
    await browser.sign_in(viewer["email"], viewer["initial_password"])
    assert (await browser.get("/merchant/users"))[0] == 403
    await browser.get("/merchant")
    response = await browser.post("/merchant/users", {"email": "y@shop.example.jp", "name": "Y", "role": "admin"})
    assert response.status == 403
    assert not await MerchantUser.exists(email="y@shop.example.jp")


async def test_an_admin_adds_a_user_and_bad_input_is_named(ops: OpsClient, client: Any) -> None:
    """A bad e-mail re-renders the form naming it (nothing added); a good one shows the password once."""
    merchant_id, user = await _admin(ops)
    browser = SiteBrowser(client)
    await browser.sign_in(user["email"], user["initial_password"])
    await browser.get("/merchant/users")
    bad = await browser.post("/merchant/users", {"email": "not-an-address", "name": "Hanako", "role": "viewer"})
    assert bad.status == 400
    assert 'id="email-error"' in bad.body_text
    assert not await MerchantUser.exists(name="Hanako")
    good = await browser.post(
        "/merchant/users", {"email": "hanako@shop.example.jp", "name": "Hanako", "role": "viewer"}
    )
    assert good.status == 201
    assert 'id="initial-password"' in good.body_text
    assert await AuditEntry.exists(action="merchant_user.create", actor=f"muser:{user['id']}")
    assert await MerchantUser.filter(merchant_id=merchant_id).count() == 2


async def test_required_totp_is_enrolled_then_asked_at_every_sign_in(ops: OpsClient, client: Any) -> None:
    """Once the admin requires TOTP, the user must enrol before any page, and later sign-ins ask for a code."""
    _, user = await _admin(ops)
    browser = SiteBrowser(client)
    await browser.sign_in(user["email"], user["initial_password"])
    await browser.get("/merchant/users")
    await browser.post("/merchant/users/totp", {"required": "1"})
    detour = await client.get("/merchant", allow_redirects=False)
    assert detour.headers["Location"] == "/merchant/account/totp"
    status, page = await browser.get("/merchant/account/totp")
    assert status == 200
    assert "data:image/svg+xml" in page
    secret = (await MerchantUser.get(id=user["id"])).totp_secret
    wrong = await browser.post("/merchant/account/totp", {"otp": "000000"})
    assert wrong.status == 400
    right = await browser.post("/merchant/account/totp", {"otp": pyotp.TOTP(secret).now()})
    assert right.status == 303
    await browser.post("/merchant/logout")
    asked = await browser.sign_in(user["email"], user["initial_password"])
    assert asked.headers["Location"].startswith("/merchant/login/otp")
    await browser.get(asked.headers["Location"])
    bad_code = await browser.post("/merchant/login/otp", {"otp": "123456"})
    assert bad_code.status == 401
    signed_in = await browser.post("/merchant/login/otp", {"otp": pyotp.TOTP(secret).now()})
    assert signed_in.status == 303
    assert (await browser.get("/merchant"))[0] == 200


async def test_pages_carry_the_security_headers(ops: OpsClient, client: Any) -> None:
    """Every page forbids framing and script, is not sniffed, and signed-in pages are not stored."""
    _, user = await _admin(ops)
    browser = SiteBrowser(client)
    await browser.sign_in(user["email"], user["initial_password"])
    response = await client.get("/merchant")
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy
    assert "script-src 'none'" in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"]
    assert "aiohttp" not in response.headers["Server"].lower()


async def test_english_is_chosen_with_lang_and_remembered(ops: OpsClient, client: Any) -> None:
    """?lang=en shows the sign-in page in English and sets a cookie; the next page stays English."""
    english = await client.get("/merchant/login?lang=en")
    assert "Sign in" in await english.text()
    assert english.cookies["lang"].value == "en"
    again = await client.get("/merchant/login")
    assert "Sign in to the merchant site" in await again.text()
    japanese = await client.get("/merchant/login?lang=ja")
    assert "Sign in to the merchant site" not in await japanese.text()


async def test_problems_on_an_english_page_are_in_english(ops: OpsClient, client: Any) -> None:
    """A refused sign-in on the English page names the problem in English (the macros see the page's language)."""
    await _admin(ops)
    browser = SiteBrowser(client)
    await browser.get("/merchant/login?lang=en")
    refused = await browser.post("/merchant/login", {"email": "nobody@example.jp", "password": "x" * 12})
    assert "The e-mail address or password is wrong." in refused.body_text


async def test_a_weak_or_mismatched_new_password_is_named_and_changes_nothing(ops: OpsClient, client: Any) -> None:
    """Too short, equal to the e-mail, or not repeated alike: the account page names it (400); the hash stays."""
    _, user = await _admin(ops)
    browser = SiteBrowser(client)
    await browser.sign_in(user["email"], user["initial_password"])
    await browser.get("/merchant/account")
    stored = (await MerchantUser.get(id=user["id"])).password_hash
    current = user["initial_password"]
    for new, again, field in (
        ("short", "short", "new_password"),
        (user["email"], user["email"], "new_password"),
        ("a-long-enough-password", "a-different-password", "new_password_confirmation"),
    ):
        response = await browser.post(
            "/merchant/account/password",
            {"current_password": current, "new_password": new, "new_password_confirmation": again},
        )
        assert response.status == 400
        assert f'id="{field}-error"' in response.body_text
    assert (await MerchantUser.get(id=user["id"])).password_hash == stored


async def test_a_new_password_ends_the_users_other_sessions(ops: OpsClient, client: Any, aiohttp_client: Any) -> None:
    """Changing the password keeps this session and ends the one signed in elsewhere."""
    _, user = await _admin(ops)
    here, elsewhere = SiteBrowser(client), SiteBrowser(await aiohttp_client(client.server))
    for browser in (here, elsewhere):
        await browser.sign_in(user["email"], user["initial_password"])
    await here.get("/merchant/account")
    changed = await here.post(
        "/merchant/account/password",
        {
            "current_password": user["initial_password"],
            "new_password": "a fresh pass phrase",
            "new_password_confirmation": "a fresh pass phrase",
        },
    )
    assert changed.status == 303
    assert (await here.get("/merchant"))[0] == 200
    assert (await elsewhere.get("/merchant"))[0] == 303
