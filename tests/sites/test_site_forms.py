"""Every form of every site, found from the router: without the session's CSRF token, or with a
wrong one, each answers 403 and the database is left exactly as it was."""

from __future__ import annotations

import re
from typing import Any

from sites_support import SiteBrowser, merchant_user, staff_member

from conftest import OpsClient, row_counts
from tests_support import open_shop

SITE_PREFIXES = ("/merchant", "/my", "/ops", "/confirm")
# Fields that would make a change if the token were not checked (a user, a refund, a key...).
FORM = {"email": "z@shop.example.jp", "name": "Z", "role": "admin", "amount": "100", "reason": "requested_by_customer"}


def _site_form_paths(app: Any) -> list[str]:
    """The path of every POST route of the sites (not the JSON APIs), placeholders filled in."""
    paths = set()
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource else {}
        path = info.get("path") or info.get("formatter")
        if route.method != "POST" or not path or not path.startswith(SITE_PREFIXES) or path.startswith("/ops/v1"):
            continue
        paths.add(re.sub(r"{[^}]+}", "x" * 12, path))
    return sorted(paths)


async def test_every_site_form_refuses_a_missing_or_wrong_csrf_token(ops: OpsClient, client: Any) -> None:
    """Signed in as an admin, each site form posted without or with a forged token answers 403; nothing changes."""
    shop = await open_shop(ops)
    admin = await merchant_user(ops, shop.merchant_id, role="admin")
    browser = SiteBrowser(client)
    await browser.sign_in(admin["email"], admin["initial_password"])
    # One browser may be signed in to both sites: the console's forms are refused for the token too.
    await browser.sign_in(*await staff_member("admin"), prefix="/ops")
    await browser.get("/merchant")
    paths = [path for path in _site_form_paths(client.server.app) if not path.startswith("/confirm")]
    assert "/merchant/users" in paths
    assert "/merchant/logout" in paths
    assert "/ops/staff" in paths
    before = await row_counts()
    refused = {}
    for path in paths:
        for forged in ("", "forged-token"):
            response = await browser.post(
                path, {"email": "z@shop.example.jp", "name": "Z", "role": "admin"}, csrf=forged
            )
            refused[(path, forged)] = response.status
    assert set(refused.values()) == {403}, {key: status for key, status in refused.items() if status != 403}
    assert await row_counts() == before
    assert (await browser.get("/merchant"))[0] == 200  # still signed in: sign-out was refused too
    assert (await browser.get("/ops/staff"))[0] == 200
