"""Races on PostgreSQL, each run as requests (and worker messages) at the same moment over real
connections: every one ends in a state the rules allow (product.md §3, §5)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest

import queues
from conftest import OpsClient
from models.charges import Charge, Refund
from models.clock import clock
from models.invariants import run_audit
from models.invoices import BillingRun, Invoice, InvoiceItem
from models.subscriptions import Subscription
from settings import Settings
from tests_support import RETURN_URL, Shop, answer, buy, line_body, open_shop, settle

pytestmark = [pytest.mark.services, pytest.mark.faults, pytest.mark.usefixtures("worker")]


async def _refund(client: Any, shop: Shop, charge_id: str, amount: int | None) -> tuple[int, Any, int | None]:
    body: dict[str, Any] = {"charge": charge_id, **({"amount": amount} if amount else {})}
    response = await client.post("/v1/refunds", headers=shop.auth, json=body)
    return response.status, await response.json(), amount


async def _audit_breaks() -> list[tuple[str, list[str]]]:
    return [(check.name, check.breaks) for check in await run_audit() if not check.ok]


async def test_concurrent_refunds_never_exceed_the_charge(client: Any, ops: OpsClient, settings: Settings) -> None:
    """Refunds sent at once whose sum exceeds the charge: exactly what fits is refunded, the rest is a clean 4xx."""
    await clock.move_to(datetime.fromisoformat("2035-03-10T10:00:00+09:00"))
    shop = await open_shop(ops, line_id="COP0000013001", login_id="racer")
    for amounts, expected in (([400] * 5, 800), ([700, 500, 300, 200], None)):
        charge_id = await buy(client, settings, shop, amount=1000)
        answers = await asyncio.gather(*(_refund(client, shop, charge_id, amount) for amount in amounts))
        granted = [amount for status, _, amount in answers if status == 201]
        refused = [(status, body, amount) for status, body, amount in answers if status != 201]
        charge = await Charge.get(id=charge_id)
        assert charge.refunded_amount == sum(granted) <= 1000
        if expected is not None:
            assert sum(granted) == expected
        for status, body, amount in refused:
            assert status in (400, 409), body
            assert body["error"]["code"] in ("amount_too_large", "charge_already_refunded"), body
            assert amount is not None
            assert amount > 1000 - sum(granted)  # it truly did not fit
    assert await _audit_breaks() == []


async def test_a_refund_racing_the_close_is_billed_once(
    client: Any, ops: OpsClient, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    """Refunds sent while the month closes: each lowers the bill or is credited next month, never both or neither."""
    await clock.move_to(datetime.fromisoformat("2035-04-10T10:00:00+09:00"))
    shop = await open_shop(ops, line_id="COP0000013101", login_id="close0")
    charges: list[str] = [await buy(client, settings, shop, amount=2000 + n) for n in range(3)]
    for n in range(1, 3):  # more lines: the close writes three bills while the refunds arrive
        line_id = f"COP00000131{10 + n:02d}"
        status, _ = await ops.post("/ops/v1/lines", json=line_body(line_id, base_monthly_fee=0))
        assert status == 201
        await ops.post(f"/ops/v1/lines/{line_id}/sessions", json={"address": "127.0.0.1"})
        status, account = await ops.post(f"/ops/v1/lines/{line_id}/accounts", json={"login_id": f"close{n}"})
        assert status == 201
        password = account["initial_password"]
        charges.extend(
            [
                await buy(client, settings, shop, amount=2000 + m, login_id=f"close{n}", password=password)
                for m in range(3)
            ]
        )
    await clock.move_to(datetime.fromisoformat("2035-05-01T00:10:00+09:00"))
    publisher = queues.publisher_for(settings)
    started = asyncio.create_task(ops.post("/ops/v1/billing/close", json={"period": "2035-04"}))
    sent, after = 0, 0
    try:
        while after < 2:  # refunds of 50 yen, three at once, until two rounds after the close finished
            answers = await asyncio.gather(
                *(_refund(client, shop, charges[(sent + k) % len(charges)], 50) for k in range(3)),
                queues.relay_once(publisher),
            )
            assert all(status == 201 for status, _, _ in answers[:3]), answers
            sent += 3
            if started.done() and not await BillingRun.exists(period="2035-04", status="running"):
                after += 1
    finally:
        await publisher.close()
    status, run = await started
    assert status == 202, run

    async def finished(period: str) -> bool:
        return not await BillingRun.exists(period=period, status="running")

    await settle(settings, lambda: finished("2035-04"))
    await clock.move_to(datetime.fromisoformat("2035-06-01T00:10:00+09:00"))
    status, run = await ops.post("/ops/v1/billing/close", json={"period": "2035-05"})
    assert status == 202, run
    await settle(settings, lambda: finished("2035-05"))
    lowered = credited = 0
    for charge_id in charges:
        charge = await Charge.get(id=charge_id)
        billed = [item.amount for item in await InvoiceItem.filter(charge_id=charge_id)]
        refunds = await Refund.filter(charge_id=charge_id).values_list("id", flat=True)
        credit_items = [item.amount for item in await InvoiceItem.filter(refund_id__in=refunds, kind="credit")]
        assert len(billed) == 1, f"{charge_id} billed {len(billed)} times"
        assert billed[0] + sum(credit_items) == charge.amount - charge.refunded_amount  # every refund counted once
        assert all(amount < 0 for amount in credit_items)
        lowered += (charge.amount - billed[0]) // 50
        credited += -sum(credit_items) // 50
    assert lowered + credited == sent
    with capsys.disabled():
        print(f"\nrefunds racing the close: {sent} sent, {lowered} lowered the bill, {credited} credited next month")  # noqa: T201
    assert await Invoice.filter(period="2035-04").count() == 3
    assert await _audit_breaks() == []


async def test_a_cancel_racing_the_renewal_charges_at_most_once(
    client: Any, ops: OpsClient, settings: Settings
) -> None:
    """A cancel sent as the month's renewal is made: canceled in the end, renewed at most once, never charged twice."""
    from workers.scheduler import run_due_jobs

    await clock.move_to(datetime.fromisoformat("2035-07-20T10:00:00+09:00"))
    shop = await open_shop(ops, line_id="COP0000013201", login_id="renewer")
    ids = []
    for n in range(3):
        response = await client.post(
            "/v1/subscriptions",
            headers=shop.auth,
            json={"amount": 500 + n, "description": f"月額 {n}", "return_url": RETURN_URL},
        )
        created = await response.json()
        await answer(client, created["confirmation_url"], login_id=shop.login_id, password=shop.password)
        ids.append(created["id"])

    async def active() -> bool:
        return await Subscription.filter(id__in=ids, status="active").count() == len(ids)

    await settle(settings, active)
    await clock.move_to(datetime.fromisoformat("2035-08-01T00:10:00+09:00"))
    cancels = [client.post(f"/v1/subscriptions/{sid}/cancel", headers=shop.auth) for sid in ids]
    results = await asyncio.gather(run_due_jobs(), *cancels)
    assert all(response.status == 200 for response in results[1:])

    async def decided() -> bool:
        return not await Charge.exists(subscription_id__in=ids, status__in=("processing", "requires_confirmation"))

    await settle(settings, decided)
    for sid in ids:
        subscription = await Subscription.get(id=sid)
        assert subscription.status == "canceled"
        renewals = await Charge.filter(subscription_id=sid, renewal_period="2035-08")
        assert len(renewals) <= 1
        assert [charge.status for charge in renewals if charge.status == "succeeded"] in ([], ["succeeded"])
        succeeded = await Charge.filter(subscription_id=sid, status="succeeded").count()
        assert succeeded in (1, 2)  # the first month, and the August renewal if it came first
    assert await _audit_breaks() == []
