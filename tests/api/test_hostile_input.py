"""Hostile input found by an outside fuzzing run (issue 13, finding 2 and 6): each answers a 4xx
that names the problem, never a 500, and writes nothing."""

from __future__ import annotations

from typing import Any

import pytest
from sites_support import signed_in

from conftest import OpsClient, row_counts
from tests_support import open_shop

LONG = "x" * 33
VERY_LONG = "x" * 200


@pytest.fixture
async def shop(ops: OpsClient) -> Any:
    """A provisioned line, ID and merchant."""
    return await open_shop(ops)


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", f"/v1/charges/ch_{LONG}", None),
        ("GET", f"/v1/subscriptions/sub_{LONG}", None),
        ("GET", f"/v1/refunds/re_{LONG}", None),
        ("GET", f"/v1/events/evt_{LONG}", None),
        ("POST", "/v1/refunds", {"charge": "ch_" + "y" * 30}),
        ("POST", f"/v1/charges/ch_{LONG}/cancel", None),
        ("POST", f"/v1/events/evt_{LONG}/redeliver", None),
    ],
)
async def test_an_id_longer_than_its_column_is_not_found(
    client: Any, shop: Any, method: str, path: str, body: Any
) -> None:
    """An id too long to be any object's answers 404 resource_missing on /v1 and writes nothing."""
    before = await row_counts()
    response = await client.request(method, path, headers=shop.auth, json=body)
    assert response.status == 404, await response.text()
    assert (await response.json())["error"]["code"] == "resource_missing"
    assert await row_counts() == before


async def test_a_cursor_longer_than_an_id_is_a_bad_parameter(client: Any, shop: Any) -> None:
    """``starting_after`` longer than any id answers 400 naming the parameter, not 500."""
    response = await client.get(f"/v1/charges?starting_after={LONG}", headers=shop.auth)
    assert response.status == 400
    assert (await response.json())["error"]["param"] == "starting_after"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", f"/ops/v1/accounts/{VERY_LONG}"),
        ("POST", f"/ops/v1/accounts/{VERY_LONG}/unlock"),
        ("POST", f"/ops/v1/payouts/{VERY_LONG}/paid"),
        ("GET", f"/ops/v1/invoices/{VERY_LONG}"),
        ("GET", f"/ops/v1/billing/runs/{VERY_LONG}"),
        ("GET", f"/ops/v1/merchants/{VERY_LONG}"),
    ],
)
async def test_an_ops_id_longer_than_its_column_is_not_found(ops: OpsClient, method: str, path: str) -> None:
    """On /ops/v1 too, an over-long id answers 404 and writes nothing."""
    before = await row_counts()
    status, body = await ops.request(method, path)
    assert status == 404, body
    assert await row_counts() == before


@pytest.mark.parametrize("suffix", ["", "/status", "/wait"])
async def test_a_confirmation_token_longer_than_its_column_is_not_found(client: Any, suffix: str) -> None:
    """/confirm/<70 characters> (or with a character no token has) is the missing page, 404, not 500."""
    for token in ("a" * 70, "a%00b", "ä" * 10):
        response = await client.get(f"/confirm/{token}{suffix}", allow_redirects=False)
        assert response.status == 404, (token, suffix, await response.text())


@pytest.mark.parametrize(
    "url",
    [
        "http://[::1/x",
        "http://127.0.0.1:99999/x",
        "https://example.jp:0/x",
        "https://exa mple.jp/x",
        "https://:443/x",
        "https://<i#Z#J",
        "https://shop.example/パス",
    ],
)
async def test_a_webhook_url_that_does_not_parse_is_refused(client: Any, shop: Any, url: str) -> None:
    """A URL with a broken IPv6 host, an impossible port or a space answers 400 url_invalid; none is stored."""
    before = await row_counts()
    response = await client.post("/v1/webhook_endpoints", headers=shop.auth, json={"url": url, "events": ["*"]})
    assert response.status == 400, await response.text()
    error = (await response.json())["error"]
    assert (error["code"], error["param"]) == ("url_invalid", "url")
    assert await row_counts() == before


@pytest.mark.parametrize(
    "body",
    [
        {"amount": 100, "description": "a\u0000b", "return_url": "https://shop.example/r"},
        {"amount": 100, "description": "bell\u0007", "return_url": "https://shop.example/r"},
        {"amount": 100, "description": "ok", "return_url": "https://shop.example/r", "metadata": {"k": "v\u0000"}},
        {
            "amount": 100,
            "description": "ok",
            "return_url": "https://shop.example/r",
            "merchant_reference": "\u001b[31m",
        },
    ],
)
async def test_text_with_a_control_character_is_refused_on_every_backend(client: Any, shop: Any, body: Any) -> None:
    """NUL (which PostgreSQL text cannot hold) and other control characters answer 400 naming the field."""
    before = await row_counts()
    response = await client.post("/v1/charges", headers=shop.auth, json=body)
    assert response.status == 400, await response.text()
    error = (await response.json())["error"]
    assert error["code"] == "parameter_invalid"
    assert error["param"] in {"description", "metadata", "merchant_reference"}
    assert await row_counts() == before


async def test_a_line_break_in_metadata_is_still_text(client: Any, shop: Any) -> None:
    """Tab and line breaks are ordinary text: a charge whose metadata note has them is created."""
    body = {
        "amount": 100,
        "description": "ok",
        "return_url": "https://shop.example/r",
        "metadata": {"note": "a\tb\r\nc"},
    }
    response = await client.post("/v1/charges", headers=shop.auth, json=body)
    assert response.status == 201, await response.text()


async def test_a_page_form_with_a_control_character_is_refused(ops: OpsClient, client: Any, shop: Any) -> None:
    """A merchant-site form or search with NUL answers a 400 page naming the problem; nothing changes."""
    browser = await signed_in(ops, client, shop.merchant_id, role="admin")
    before = await row_counts()
    response = await browser.post(
        "/merchant/users", {"email": "n@shop.example.jp", "name": "a\u0000b", "role": "viewer"}
    )
    assert response.status == 400
    assert "control characters" in response.body_text or "制御文字" in response.body_text
    status, _ = await browser.get("/merchant/purchases?q=a%00b")
    assert status == 400
    assert await row_counts() == before


async def test_the_clock_refuses_a_year_the_calendar_cannot_serve(ops: OpsClient) -> None:
    """POST /ops/v1/clock to 9999-12-31 answers 422 clock_out_of_range (a well-formed time the
    calendar cannot serve) and the clock stays where it was."""
    _, before = await ops.get("/ops/v1/clock")
    status, body = await ops.post("/ops/v1/clock", json={"now": "9999-12-31T23:59:00+09:00"})
    assert status == 422, body
    assert (body["error"]["code"], body["error"]["param"]) == ("clock_out_of_range", "now")
    _, after = await ops.get("/ops/v1/clock")
    assert after["now"][:13] == before["now"][:13]
