"""A scheduler that was down across month ends catches up: every month it missed closes, in
order, once; each subscription renews once for every month; payouts follow, oldest first.

Told on the test clock: October 2034 a line buys 300 yen and subscribes at 480 a month; no
scheduler runs until 5 December (two month ends missed), then none until 5 February (two more).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from conftest import OpsClient
from models.charges import Charge
from models.invariants import run_audit
from models.invoices import BillingRun, Invoice, InvoiceItem
from models.outbox import OutboxMessage
from models.payouts import Payout
from models.subscriptions import Subscription
from settings import Settings
from tests_support import answer, open_shop, settle
from workers.scheduler import run_due_jobs

pytestmark = pytest.mark.usefixtures("worker")
LINE = "COP0000004001"
RETURN_URL = "https://shop.example/r"


async def _quiet() -> bool:
    """Nothing left in flight: no close running, no purchase deciding, the outbox relayed."""
    return (
        not await BillingRun.exists(status="running")
        and not await Charge.exists(status="processing")
        and not await OutboxMessage.exists(sent_at=None)
    )


async def catch_up(settings: Settings, moment: str, passes: int = 8) -> None:
    """Move the test clock past month ends with no scheduler, then let it run pass after pass
    (as it does every few seconds) until a pass finds nothing more to do."""
    from models.clock import clock

    await clock.move_to(datetime.fromisoformat(moment))
    for _ in range(passes):
        done = await run_due_jobs()
        await settle(settings, _quiet)
        if not any(done.values()):
            return
    pytest.fail("the scheduler kept finding work")


async def test_two_missed_month_ends_close_both_months_in_order(
    client: Any, ops: OpsClient, settings: Settings
) -> None:
    """Both missed months close once, oldest first; the subscription renews once a month; payouts follow."""
    from models.clock import clock

    await clock.move_to(datetime.fromisoformat("2034-10-10T10:00:00+09:00"))
    shop = await open_shop(ops, line_id=LINE, login_id="catchup")
    charge = await (
        await client.post(
            "/v1/charges", headers=shop.auth, json={"amount": 300, "description": "一回", "return_url": RETURN_URL}
        )
    ).json()
    await answer(client, charge["confirmation_url"], login_id="catchup", password=shop.password)
    subscription = await (
        await client.post(
            "/v1/subscriptions",
            headers=shop.auth,
            json={"amount": 480, "description": "月額", "return_url": RETURN_URL},
        )
    ).json()
    await answer(client, subscription["confirmation_url"], login_id="catchup", password=shop.password)
    await settle(settings, _quiet)

    await catch_up(settings, "2034-12-05T09:00:00+09:00")  # November and December 1st passed unseen
    runs = await BillingRun.all().order_by("started_at", "id")
    assert [(run.period, run.status) for run in runs] == [("2034-10", "succeeded"), ("2034-11", "succeeded")]
    renewals = await Charge.filter(subscription_id=subscription["id"]).order_by("renewal_period")
    assert [(c.renewal_period, c.status.value, c.period) for c in renewals] == [
        ("2034-10", "succeeded", "2034-10"),
        ("2034-11", "succeeded", "2034-11"),
        ("2034-12", "succeeded", "2034-12"),
    ]
    assert (await Subscription.get(id=subscription["id"])).current_period == "2034-12"
    october = await Invoice.get(line_id=LINE, period="2034-10")
    november = await Invoice.get(line_id=LINE, period="2034-11")
    assert (october.total, november.total) == (5500 + 300 + 480, 5500 + 480)
    november_items = await InvoiceItem.filter(invoice_id=november.id).order_by("position")
    assert [item.charge_id for item in november_items] == [None, renewals[1].id]

    await catch_up(settings, "2035-02-05T09:00:00+09:00")  # January and February 1st passed unseen
    assert [(r.period, r.status) for r in await BillingRun.all().order_by("started_at", "id")] == [
        ("2034-10", "succeeded"),
        ("2034-11", "succeeded"),
        ("2034-12", "succeeded"),
        ("2035-01", "succeeded"),
    ]
    months = await Charge.filter(subscription_id=subscription["id"]).values_list("renewal_period", flat=True)
    assert sorted(months) == ["2034-10", "2034-11", "2034-12", "2035-01", "2035-02"]

    async def paid_out() -> bool:
        return await Payout.filter(merchant_id=shop.merchant_id).count() == 3

    await settle(settings, paid_out)
    payouts = await Payout.filter(merchant_id=shop.merchant_id).order_by("period")
    assert [(p.period, p.billed) for p in payouts] == [("2034-10", 780), ("2034-11", 480), ("2034-12", 480)]
    assert payouts[0].created_at <= payouts[1].created_at <= payouts[2].created_at
    await catch_up(settings, "2035-02-05T09:05:00+09:00")
    assert await BillingRun.all().count() == 4
    assert await Payout.filter(merchant_id=shop.merchant_id).count() == 3
    assert [(c.name, c.breaks) for c in await run_audit() if not c.ok] == []


async def test_a_month_waits_for_its_renewals_before_it_closes(db: Settings) -> None:
    """A renewal belongs to the month it renews: the close of that month waits while one is still
    to be made or decided, so a busy charges queue never leaves a renewal off its month's bill."""
    from models.accounts import SubscriberAccount
    from models.clock import clock
    from models.lines import Line
    from models.merchants import Merchant
    from models.operations.closing import close_due_periods

    await clock.move_to(datetime.fromisoformat("2034-01-10T10:00:00+09:00"))
    now = await clock.now()
    line = await Line.create(
        line_id=LINE, line_type="hikari_next", holder_name="x", base_monthly_fee=0, created_at=now, updated_at=now
    )
    account = await SubscriberAccount.create(
        login_id="waits", line=line, slot=1, password_hash="x", monthly_limit=50_000, created_at=now
    )
    merchant = await Merchant.create(name="m", name_kana="ﾑ", return_signing_secret="s", created_at=now)
    subscription = await Subscription.create(
        merchant=merchant,
        account=account,
        line=line,
        amount=480,
        description="月額",
        status="active",
        current_period="2034-01",
        created_at=now,
    )
    await BillingRun.create(period="2034-01", status="succeeded", started_at=now, finished_at=now)
    await clock.move_to(datetime.fromisoformat("2034-03-05T09:00:00+09:00"))
    now = await clock.now()

    assert await close_due_periods(now) == 0  # February's renewal is not even made yet
    subscription.current_period = "2034-02"
    await subscription.save()
    renewal = await Charge.create(
        merchant=merchant,
        subscription=subscription,
        renewal_period="2034-02",
        account=account,
        line=line,
        amount=480,
        description="月額",
        status="processing",
        created_at=now,
    )
    assert await close_due_periods(now) == 0  # made, still being decided
    renewal.status = "succeeded"
    await renewal.save()
    assert await close_due_periods(now) == 1
    assert await BillingRun.filter(period="2034-02").count() == 1
