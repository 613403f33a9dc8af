"""Signed-in merchant staff for the tests of the merchant site's pages."""

from __future__ import annotations

from typing import Any

from sites_support import SiteBrowser, merchant_user


async def signed_in(client: Any, ops: Any, merchant_id: str, role: str) -> SiteBrowser:
    """A browser signed in as a new ``role`` user of ``merchant_id``, holding the session's
    CSRF token (signing in changes it, so it reads the home page's)."""
    user = await merchant_user(ops, merchant_id, role=role)
    browser = SiteBrowser(client)
    response = await browser.sign_in(user["email"], user["initial_password"])
    assert response.status == 303, response.body_text
    status, _ = await browser.get("/merchant")
    assert status == 200
    return browser
