"""Helpers for tests of the sites: forms with their CSRF token, and signing in."""

from __future__ import annotations

import re
import uuid
from typing import Any

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    """The CSRF token of the first form on a page."""
    found = CSRF_FIELD.search(html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


class SiteBrowser:
    """An aiohttp test client used like a browser without JavaScript: it keeps the cookies,
    reads each form's CSRF token from the page and sends it back."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.token = ""

    async def get(self, path: str, **kwargs: Any) -> tuple[int, str]:
        """GET ``path`` without following redirects; remember the page's CSRF token."""
        response = await self.client.get(path, allow_redirects=False, **kwargs)
        text = (await response.read()).decode("utf-8", errors="replace")  # a download may be Shift_JIS
        found = CSRF_FIELD.search(text)
        if found:
            self.token = found.group(1)
        return response.status, text

    async def post(self, path: str, data: dict[str, Any] | None = None, *, csrf: str | None = None) -> Any:
        """POST a form with the last CSRF token seen (or ``csrf``, to forge one); no redirects followed."""
        form = dict(data or {})
        form["csrf_token"] = self.token if csrf is None else csrf
        response = await self.client.post(path, data=form, allow_redirects=False)
        text = await response.text()
        found = CSRF_FIELD.search(text)
        if found:
            self.token = found.group(1)
        response.body_text = text
        return response

    async def sign_in(self, email: str, password: str, *, prefix: str = "/merchant") -> Any:
        """Open the sign-in page and post the e-mail and password."""
        await self.get(f"{prefix}/login")
        return await self.post(f"{prefix}/login", {"email": email, "password": password})


async def merchant_user(ops: Any, merchant_id: str, *, role: str = "admin", email: str | None = None) -> dict[str, Any]:
    """A user of ``merchant_id`` made through ``POST /ops/v1/merchants/{id}/users``."""
    status, body = await ops.post(
        f"/ops/v1/merchants/{merchant_id}/users",
        json={"email": email or f"{role}.{merchant_id[-12:]}@shop.example.jp", "name": f"{role} user", "role": role},
    )
    assert status == 201, body
    return body


async def signed_in(ops: Any, client: Any, merchant_id: str, *, role: str = "viewer") -> SiteBrowser:
    """A browser signed in as a new ``role`` user of ``merchant_id``, holding the session's CSRF
    token (signing in changes it, so it reads the home page's)."""
    user = await merchant_user(ops, merchant_id, role=role)
    browser = SiteBrowser(client)
    response = await browser.sign_in(user["email"], user["initial_password"])
    assert response.status == 303, response.body_text
    status, _ = await browser.get("/merchant")
    assert status == 200
    return browser


async def staff_member(role: str, *, email: str | None = None) -> tuple[str, str]:
    """A new staff member of the console with ``role``: their e-mail and first password."""
    from models.audit_log import Actor
    from models.operations.staff import create_staff

    address = email or f"{role}.{uuid.uuid4().hex[:8]}@carrier.example.jp"
    user, password = await create_staff(address, name=f"{role} staff", role=role, actor=Actor("test"))
    return user.email, password


async def ops_signed_in(client: Any, *, role: str = "support") -> SiteBrowser:
    """A browser signed in to the console as a new ``role`` staff member, holding the session's
    CSRF token (read from the console's home page)."""
    email, password = await staff_member(role)
    browser = SiteBrowser(client)
    response = await browser.sign_in(email, password, prefix="/ops")
    assert response.status == 303, response.body_text
    status, _ = await browser.get("/ops")
    assert status == 200
    return browser
