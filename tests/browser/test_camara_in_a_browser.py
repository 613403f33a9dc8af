"""A CAMARA aggregator end to end in a real browser (Debian's Chromium, driven by Playwright):
the subscriber authorises the aggregator on /oauth/authorize from the line's own address, the
aggregator prepares a payment with a sink, the subscriber confirms it on its validation page,
the aggregator confirms it; the sink hears payment-reserved then payment-completed as
CloudEvents, and the charge is on the month's bill like any other."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import secrets
from typing import Any
from urllib.parse import urlencode

import pytest
from aiohttp import web
from aiohttp.test_utils import unused_port
from browser_support import chromium, needs_chromium, screenshot

import queues
from conftest import OpsClient
from models.charges import Charge
from models.clock import clock
from models.events import DeliveryAttempt
from settings import Settings
from tests_support import close, invoice_of, open_shop, settle

pytestmark = needs_chromium

SCOPES = "openid carrier-billing:payments:create carrier-billing:payments:read carrier-billing:payments:write"
PAYMENTS = "/carrier-billing/v0.5/payments"


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The platform may call the aggregator's sink on this machine (as under ``matomete up``)."""
    return settings.replace(webhooks_allow_insecure=True)


def aggregator_site(received: list[dict[str, Any]]) -> web.Application:
    """The aggregator's own pages: the OAuth callback shows the code; the sink keeps each notification."""

    async def callback(request: web.Request) -> web.Response:
        code = request.query.get("code", "")
        return web.Response(text=f"<p id=code>{code}</p>", content_type="text/html")

    async def notify(request: web.Request) -> web.Response:
        received.append({"headers": dict(request.headers), "body": json.loads(await request.read())})
        return web.Response(status=204)

    app = web.Application()
    app.router.add_get("/callback", callback)
    app.router.add_post("/notify", notify)
    return app


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def _authorised(page: Any, ops: OpsClient, shop: Any, client: dict[str, Any], redirect: str) -> dict[str, str]:
    """The subscriber allows the aggregator on the authorisation page; the aggregator trades the code."""
    verifier, challenge = _pkce()
    query = {
        "response_type": "code",
        "client_id": client["client_id"],
        "redirect_uri": redirect,
        "scope": SCOPES,
        "state": "s-1",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
    }
    await page.goto(f"{ops.client.make_url('/oauth/authorize')}?{urlencode(query)}")
    assert "まとめ決済ゲートウェイ" in await page.inner_text("#client-name")
    await screenshot(page, "camara-authorize")
    await page.fill("input[name=login_id]", shop.login_id)
    await page.fill("input[name=password]", shop.password)
    await page.click("button[value=allow]")
    await page.wait_for_url(f"{redirect}*", timeout=30_000)
    basic = base64.b64encode(f"{client['client_id']}:{client['client_secret']}".encode()).decode()
    form = {"grant_type": "authorization_code", "redirect_uri": redirect, "code_verifier": verifier}
    form["code"] = await page.inner_text("#code")
    response = await ops.client.post("/oauth/token", data=form, headers={"Authorization": f"Basic {basic}"})
    assert response.status == 200, await response.text()
    return {"Authorization": f"Bearer {(await response.json())['access_token']}", "x-correlator": "j-1"}


def _prepare_body(sink: str) -> dict[str, Any]:
    """300 yen net for a game shop behind the aggregator, notified at ``sink`` with a bearer token."""
    information = {"amount": 300, "currency": "JPY", "description": "ゲーム内コイン 300枚"}
    return {
        "amountTransaction": {
            "referenceCode": "journey-1",
            "paymentAmount": {"chargingInformation": information, "chargingMetaData": {"merchantName": "ゲーム工房"}},
        },
        "sink": sink,
        "sinkCredential": {
            "credentialType": "ACCESSTOKEN",
            "accessToken": "sink-token-1",
            "accessTokenExpiresUtc": "2099-01-01T00:00:00Z",
            "accessTokenType": "bearer",
        },
    }


async def _confirmed_on_the_validation_page(page: Any, shop: Any, prepared: dict[str, Any]) -> None:
    await page.goto(prepared["validationInfo"]["validationURL"])
    text = await page.content()
    assert "ゲーム工房（ストリーム動画株式会社 経由）" in text
    assert "330円" in text  # 300 yen net and its 10% tax
    await screenshot(page, "camara-validation-page")
    await page.fill("input[name=login_id]", shop.login_id)
    await page.fill("input[name=password]", shop.password)
    await page.click("button[value=confirm]")
    await page.wait_for_selector("text=お支払いを承認しました", timeout=30_000)
    await screenshot(page, "camara-reserved")


async def test_an_aggregator_is_authorised_prepares_and_confirms_a_payment_in_chromium(
    aiohttp_server: Any, aiohttp_client: Any, settings: Any, worker: Any
) -> None:
    """Authorisation page → code → token; prepare with a sink; the subscriber confirms on the
    validation page; the aggregator confirms: succeeded, the sink hears reserved then completed,
    and the month's invoice of the line carries the charge."""
    from api.app import create_app

    port = unused_port()
    live = settings.replace(public_url=f"http://127.0.0.1:{port}")
    server = await aiohttp_server(create_app(live), port=port)
    await clock.move_to(clock.system_now().replace(year=2030, month=11, day=10))
    ops = OpsClient(await aiohttp_client(server))
    shop = await open_shop(ops)
    received: list[dict[str, Any]] = []
    aggregator = await aiohttp_server(aggregator_site(received))
    redirect = f"http://127.0.0.1:{aggregator.port}/callback"
    body = {"merchant_id": shop.merchant_id, "name": "まとめ決済ゲートウェイ", "redirect_uris": [redirect]}
    status, client = await ops.post("/ops/v1/oauth_clients", json={**body, "scopes": SCOPES.split()})
    assert status == 201, client
    stop = asyncio.Event()
    relay = asyncio.create_task(queues.relay_forever(queues.publisher_for(live), stop=stop))
    try:
        async with chromium(width=390, height=844) as context:  # a phone at home, on the line
            page = await context.new_page()
            headers = await _authorised(page, ops, shop, client, redirect)
            sink = f"http://127.0.0.1:{aggregator.port}/notify"
            response = await ops.client.post(f"{PAYMENTS}/prepare", json=_prepare_body(sink), headers=headers)
            assert response.status == 201, await response.text()
            prepared = await response.json()
            assert prepared["paymentStatus"] == "pending_validation"
            await _confirmed_on_the_validation_page(page, shop, prepared)
        payment = f"{PAYMENTS}/{prepared['paymentId']}"
        assert (await (await ops.client.get(payment, headers=headers)).json())["paymentStatus"] == "reserved"
        response = await ops.client.post(f"{payment}/confirm", json={}, headers=headers)
        assert response.status == 202, await response.text()
        assert (await (await ops.client.get(payment, headers=headers)).json())["paymentStatus"] == "succeeded"

        async def notified() -> bool:
            return await DeliveryAttempt.filter(status_code=204).count() >= 2

        await settle(live, notified)
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await relay
    assert [item["body"]["type"] for item in received] == [
        "org.camaraproject.carrier-billing.v0.payment-reserved",
        "org.camaraproject.carrier-billing.v0.payment-completed",
    ]
    assert all(item["headers"]["Authorization"] == "Bearer sink-token-1" for item in received)
    assert all(item["headers"]["Content-Type"].startswith("application/cloudevents+json") for item in received)
    assert received[1]["body"]["data"]["paymentId"] == prepared["paymentId"]

    await clock.move_to(clock.system_now().replace(year=2030, month=12, day=2))
    await close(ops, live, "2030-11")
    invoice = await invoice_of(ops, shop.line_id, "2030-11")
    charge = await Charge.get(id=prepared["paymentId"])
    assert (charge.billing_status, charge.period, charge.amount) == ("billed", "2030-11", 330)
    assert invoice["total"] == 5500 + 330  # the line's own fee and the payment, like any other charge
