"""Request bodies and helpers several test modules share."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import queues
from models.charges import Charge
from models.invoices import BillingRun
from models.payouts import Payout
from models.subscriptions import Subscription
from settings import Settings

MERCHANT_BODY: dict[str, Any] = {
    "name": "ストリーム動画株式会社",
    "name_kana": "ストリームドウガ(カ",
    "bank_account": {
        "bank_code": "0001",
        "branch_code": "001",
        "account_type": "ordinary",
        "account_number": "1234567",
        "holder_kana": "ストリームドウガ(カ",
    },
}


def line_body(line_id: str, **changes: Any) -> dict[str, Any]:
    """A valid line creation body."""
    return {
        "line_id": line_id,
        "line_type": "hikari_next",
        "holder_name": "山田 太郎",
        "base_monthly_fee": 5500,
        **changes,
    }


RETURN_URL = "https://shop.example/r"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass
class Shop:
    """A provisioned line with a session for 127.0.0.1, an ID on it, and a merchant."""

    line_id: str
    login_id: str
    password: str
    merchant_id: str
    api_key: str
    signing_secret: str

    @property
    def auth(self) -> dict[str, str]:
        """The merchant's API headers."""
        return {"Authorization": f"Bearer {self.api_key}"}


async def open_shop(ops: Any, *, line_id: str = "CAF0000001001", login_id: str = "taro", **account: Any) -> Shop:
    """Provision everything a purchase needs, through the ops API."""
    status, _ = await ops.post("/ops/v1/lines", json=line_body(line_id))
    assert status == 201
    status, _ = await ops.post(f"/ops/v1/lines/{line_id}/sessions", json={"address": "127.0.0.1"})
    assert status in (200, 201)
    status, created = await ops.post(f"/ops/v1/lines/{line_id}/accounts", json={"login_id": login_id, **account})
    assert status == 201, created
    status, merchant = await ops.post("/ops/v1/merchants", json=MERCHANT_BODY)
    assert status == 201
    return Shop(
        line_id,
        login_id,
        created["initial_password"],
        merchant["id"],
        merchant["api_key"],
        merchant["return_signing_secret"],
    )


async def answer(  # noqa: PLR0913 - the form fields, keyword-only
    client: Any,
    confirmation_url: str,
    *,
    login_id: str = "",
    password: str = "",
    action: str = "confirm",
    csrf: str | None = None,
    address: str | None = None,
) -> Any:
    """Open the confirmation page and post the form as a browser would (from ``address``, through
    a trusted proxy's ``X-Forwarded-For``, when given); the raw response."""
    path = urlsplit(confirmation_url).path
    headers = {"X-Forwarded-For": address} if address else {}
    page = await client.get(path, headers=headers)
    assert page.status == 200, await page.text()
    token = CSRF.search(await page.text())
    assert token is not None
    form = {
        "login_id": login_id,
        "password": password,
        "csrf_token": token.group(1) if csrf is None else csrf,
        "action": action,
    }
    return await client.post(path, data=form, headers=headers, allow_redirects=False)


async def settle(settings: Settings, done: Callable[[], Awaitable[bool]], *, deadline: float = 30) -> None:
    """Relay the outbox and let the worker run until ``done()`` holds (or fail at the deadline)."""
    publisher = queues.publisher_for(settings)
    loop = asyncio.get_running_loop()
    end = loop.time() + deadline
    try:
        while not await done():
            assert loop.time() < end, "the platform did not settle in time"
            if not await queues.relay_once(publisher):
                await asyncio.sleep(0.05)
    finally:
        close = getattr(publisher, "close", None)
        if close is not None:
            await close()


async def at(settings: Settings, moment: str) -> None:
    """Move the test clock and let the scheduler do what fell due (renewals, a month close), to the end."""
    from datetime import datetime

    from models.charges import Charge
    from models.clock import clock
    from models.invoices import BillingRun
    from workers.scheduler import run_due_jobs

    await clock.move_to(datetime.fromisoformat(moment))
    await run_due_jobs()

    async def quiet() -> bool:
        return not await BillingRun.exists(status="running") and not await Charge.exists(status="processing")

    await settle(settings, quiet)


async def purchase(  # noqa: PLR0913 - the purchase's parts, keyword-only
    client: Any,
    settings: Settings,
    auth: dict[str, str],
    *,
    login_id: str,
    password: str,
    amount: int,
    description: str,
    address: str | None = None,
    monthly: bool = False,
    until: str = "succeeded",
) -> str:
    """A purchase (or, ``monthly``, a subscription) confirmed from ``address``; its id, once the
    charge is ``until`` (or the subscription active)."""
    kind = "subscriptions" if monthly else "charges"
    response = await client.post(
        f"/v1/{kind}", headers=auth, json={"amount": amount, "description": description, "return_url": RETURN_URL}
    )
    assert response.status == 201, await response.text()
    created = await response.json()
    posted = await answer(client, created["confirmation_url"], login_id=login_id, password=password, address=address)
    assert posted.status == 303

    async def done() -> bool:
        if monthly:
            return (await Subscription.get(id=created["id"])).status == "active"
        return (await Charge.get(id=created["id"])).status == until

    await settle(settings, done)
    return str(created["id"])


async def buy(  # noqa: PLR0913 - keyword-only purchase details
    client: Any,
    settings: Settings,
    shop: Shop,
    *,
    amount: int,
    login_id: str | None = None,
    password: str | None = None,
) -> str:
    """One confirmed purchase from 127.0.0.1 (by the shop's own ID unless another is given); the charge id."""
    return await purchase(
        client,
        settings,
        shop.auth,
        login_id=login_id or shop.login_id,
        password=password or shop.password,
        amount=amount,
        description=f"コンテンツ {amount}円",
    )


async def close(ops: Any, settings: Settings, period: str) -> dict[str, Any]:
    """POST /billing/close and wait for the run to finish; the run."""
    status, run = await ops.post("/ops/v1/billing/close", json={"period": period})
    assert status == 202, run

    async def finished() -> bool:
        return (await BillingRun.get(id=run["id"])).status == "succeeded"

    await settle(settings, finished)
    status, done = await ops.get(f"/ops/v1/billing/runs/{run['id']}")
    assert status == 200
    return done


async def invoice_of(ops: Any, line_id: str, period: str) -> dict[str, Any]:
    """The one invoice of a line and period, as the ops API shows it."""
    status, listing = await ops.get(f"/ops/v1/invoices?line_id={line_id}&period={period}")
    assert status == 200
    (invoice,) = listing["data"]
    return invoice


async def collect_in_full(ops: Any, line_id: str, period: str, *, paid_at: str) -> None:
    """The carrier reports the line's whole bill of ``period`` paid at ``paid_at``."""
    invoice = await invoice_of(ops, line_id, period)
    row = {"invoice_id": invoice["id"], "amount": invoice["total"], "paid_at": paid_at}
    status, body = await ops.post("/ops/v1/collections", json={"rows": [row]})
    assert status == 201, body


async def make_payouts(ops: Any, settings: Settings, period: str) -> list[dict[str, Any]]:
    """POST /payouts/generate and wait for the merchant's payout of ``period``; the period's payouts."""
    status, body = await ops.post("/ops/v1/payouts/generate", json={"period": period})
    assert status == 202, body

    async def made() -> bool:
        return await Payout.exists(period=period)

    await settle(settings, made)
    _, listing = await ops.get(f"/ops/v1/payouts?period={period}")
    return list(listing["data"])
