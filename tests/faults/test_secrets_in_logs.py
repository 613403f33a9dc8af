"""No secret reaches a log line: a whole scenario runs with every log line captured (structlog
JSON from the app and the worker, and whatever the standard library's loggers write), then each
secret it handled is searched for by its full value (Build item 6 of issue 13)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import pytest
import structlog
from fault_scenario import Receiver, serve_receiver
from sites_support import SiteBrowser, merchant_user, staff_member

import queues
from conftest import OPS_TOKEN, OpsClient
from models.charges import Charge
from models.events import WebhookDelivery
from models.site_sessions import SiteSession
from settings import Settings
from settings.logging import configure_logging
from tests_support import RETURN_URL, answer, open_shop, settle

pytestmark = pytest.mark.faults


@pytest.fixture
async def logged(aiohttp_client: Any, settings: Settings) -> AsyncIterator[tuple[OpsClient, Settings, io.StringIO]]:
    """The app and a worker in this process, webhooks allowed to this machine, every log line
    (structlog JSON and the standard library's loggers) written to the buffer it yields."""
    import workers  # noqa: F401 - declares the actors
    from api.app import create_app

    chosen = settings.replace(log_format="json", webhooks_allow_insecure=True)
    queues.declare_queues()
    queues.broker.flush_all()
    client = await aiohttp_client(create_app(chosen))
    root_handlers = logging.getLogger().handlers[:]
    worker = queues.start_worker(asyncio.get_running_loop(), settings=chosen, threads=2)
    buffer = io.StringIO()
    configure_logging(log_format="json", log_level="info", stream=buffer)  # after the worker's own boot
    yield OpsClient(client), chosen, buffer
    await asyncio.get_running_loop().run_in_executor(None, worker.stop)
    structlog.reset_defaults()
    logging.getLogger().handlers[:] = root_handlers


async def test_no_secret_appears_in_any_log_line(  # noqa: PLR0915 - one scenario, told in order
    logged: tuple[OpsClient, Settings, io.StringIO],
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """API keys, the ops token, passwords, signing secrets, confirmation tokens, session cookies: none is logged."""
    ops, settings, buffer = logged
    client = ops.client
    receiver = Receiver()
    runner, port = await serve_receiver(receiver)
    try:
        shop = await open_shop(ops, line_id="COP0000014001", login_id="quiet")
        secrets: dict[str, str] = {
            "ops token": OPS_TOKEN,
            "secret key": settings.secret_key,
            "API key": shop.api_key,
            "return-signing secret": shop.signing_secret,
            "subscriber password": shop.password,
        }
        response = await client.post(
            "/v1/webhook_endpoints",
            headers=shop.auth,
            json={"url": f"http://127.0.0.1:{port}/hooks/0", "events": ["*"]},
        )
        secrets["webhook signing secret"] = receiver.secrets[0] = (await response.json())["secret"]

        created = await (
            await client.post(
                "/v1/charges",
                headers=shop.auth,
                json={"amount": 700, "description": "ひみつ", "return_url": RETURN_URL},
            )
        ).json()
        secrets["confirmation token"] = urlsplit(created["confirmation_url"]).path.split("/")[2]
        secrets["mistyped password"] = "Mistyped-Pa55word-quiet"
        mistyped = await answer(
            client, created["confirmation_url"], login_id="quiet", password=secrets["mistyped password"]
        )
        assert mistyped.status == 303
        await settle(settings, lambda: _charge_is(created["id"], "requires_confirmation"))
        confirmed = await answer(client, created["confirmation_url"], login_id="quiet", password=shop.password)
        assert confirmed.status == 303
        await settle(settings, lambda: _charge_is(created["id"], "succeeded"))
        status = await (await client.get(f"/confirm/{secrets['confirmation token']}/status")).json()
        assert "signature=" in status["redirect_url"]

        user = await merchant_user(ops, shop.merchant_id)
        secrets["merchant user password"] = user["initial_password"]
        merchant_site = SiteBrowser(client)
        assert (await merchant_site.sign_in(user["email"], "Wrong-merchant-pa55")).status == 401
        secrets["mistyped merchant password"] = "Wrong-merchant-pa55"
        assert (await merchant_site.sign_in(user["email"], user["initial_password"])).status == 303
        assert (await merchant_site.get("/merchant"))[0] == 200
        email, password = await staff_member("admin")
        secrets["staff password"] = password
        console = SiteBrowser(client)
        assert (await console.sign_in(email, password, prefix="/ops")).status == 303
        assert (await console.get("/ops"))[0] == 200
        my_page = SiteBrowser(client)
        await my_page.get("/my/login")
        assert (await my_page.post("/my/login", {"login_id": "quiet", "password": shop.password})).status == 303

        _, reset = await ops.post("/ops/v1/accounts/quiet/reset_password", json={"reason": "forgotten"})
        secrets["reset password"] = reset["initial_password"]
        _, issued = await ops.post(f"/ops/v1/merchants/{shop.merchant_id}/api_keys")
        secrets["second API key"] = issued["api_key"]
        endpoint = (await (await client.get("/v1/webhook_endpoints", headers=shop.auth)).json())["data"][0]
        rotated = await client.post(f"/v1/webhook_endpoints/{endpoint['id']}/rotate_secret", headers=shop.auth)
        secrets["rotated webhook secret"] = (await rotated.json())["secret"]

        async def delivered() -> bool:
            return await WebhookDelivery.filter(status="delivered").exists()

        await settle(settings, delivered)
        for cookie in client.session.cookie_jar:
            secrets[f"cookie {cookie.key}"] = cookie.value
        for n, session_id in enumerate(await SiteSession.all().values_list("id", flat=True)):
            secrets[f"site session id {n}"] = str(session_id)
    finally:
        await runner.cleanup()
    output = capsys.readouterr()
    logs = buffer.getvalue() + output.out + output.err + caplog.text
    lines = [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]
    events = {line.get("event") for line in lines}
    assert {"request", "purchase_decided", "webhook_attempt"} <= events, events
    assert receiver.received, "the webhook was delivered"
    found = [name for name, value in secrets.items() if len(value) >= 8 and value in logs]
    with capsys.disabled():
        print(f"\nsecrets searched in {len(lines)} JSON log lines: {len(secrets)}; found: {found or 'none'}")  # noqa: T201
    assert found == []


async def _charge_is(charge_id: str, status: str) -> bool:
    return (await Charge.get(id=charge_id)).status == status
