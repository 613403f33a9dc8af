"""Three months of one small and one big merchant, told as a story on the test clock.

January 2033: line 1 (base fee 1,000) buys 300 from the small merchant, 8,000 from the big one,
and subscribes to the small one at 480 a month; line 2 (no base fee) buys 200 from the small
merchant and 4,000 from the big one, of which 1,000 is refunded before the close; line 3 has
only its base fee of 500 and never pays. Every figure below is worked out by hand.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from conftest import OpsClient
from models.invariants import run_audit
from models.invoices import Invoice
from models.payouts import Payout
from models.subscriptions import Subscription
from settings import Settings
from tests_support import MERCHANT_BODY, answer, at, line_body, open_shop, purchase, settle

pytestmark = pytest.mark.usefixtures("worker")
L1, L2, L3 = "COP0000003001", "COP0000003002", "COP0000003003"
RETURN_URL = "https://shop.example/r"


async def buy(  # noqa: PLR0913, PLR0917 - the purchase's parts
    settings: Settings, client: Any, auth: dict[str, str], login_id: str, password: str, amount: int
) -> str:
    """A confirmed purchase from 127.0.0.1; its id."""
    return await purchase(
        client, settings, auth, login_id=login_id, password=password, amount=amount, description=f"item {amount}"
    )


async def pay(ops: OpsClient, line_id: str, period: str, amount: int, when: str) -> None:
    """The carrier reports a payment on a line's bill."""
    invoice = await Invoice.get(line_id=line_id, period=period)
    status, body = await ops.post(
        "/ops/v1/collections", json={"rows": [{"invoice_id": invoice.id, "amount": amount, "paid_at": when}]}
    )
    assert status == 201, body


async def payout(settings: Settings, merchant_id: str, period: str) -> Payout:
    """The merchant's payout of ``period``, once the payouts worker has made it."""

    async def made() -> bool:
        return await Payout.exists(merchant_id=merchant_id, period=period)

    await settle(settings, made)
    return await Payout.get(merchant_id=merchant_id, period=period)


async def bill(line_id: str, period: str) -> tuple[int, int, str]:
    """(total, tax, status) of a line's bill."""
    from models.invoices import InvoiceTax

    invoice = await Invoice.get(line_id=line_id, period=period)
    taxes = await InvoiceTax.filter(invoice_id=invoice.id)
    return invoice.total, sum(t.tax for t in taxes), invoice.status.value


async def test_three_months_by_hand(client, ops: OpsClient, settings: Settings) -> None:
    """Bills, taxes, collections, fees, payouts and carried balances equal the hand figures; audit is clean."""
    from models.clock import clock

    await clock.move_to(datetime.fromisoformat("2033-01-10T10:00:00+09:00"))
    small = await open_shop(ops, line_id=L1, login_id="one")  # the small merchant, line 1 on 127.0.0.1
    await ops.patch(f"/ops/v1/lines/{L1}", json={"base_monthly_fee": 1000})
    _, big = await ops.post("/ops/v1/merchants", json={**MERCHANT_BODY, "setup_fee": 20_000})
    big_auth = {"Authorization": f"Bearer {big['api_key']}"}
    await ops.post("/ops/v1/lines", json=line_body(L2, base_monthly_fee=0))
    await ops.post("/ops/v1/lines", json=line_body(L3, base_monthly_fee=500))
    _, two = await ops.post(f"/ops/v1/lines/{L2}/accounts", json={"login_id": "two"})

    await buy(settings, client, small.auth, "one", small.password, 300)
    big_on_l1 = await buy(settings, client, big_auth, "one", small.password, 8000)
    subscription = await (
        await client.post(
            "/v1/subscriptions",
            headers=small.auth,
            json={"amount": 480, "description": "月額 480", "return_url": RETURN_URL},
        )
    ).json()
    await answer(client, subscription["confirmation_url"], login_id="one", password=small.password)

    async def active() -> bool:
        return (await Subscription.get(id=subscription["id"])).status == "active"

    await settle(settings, active)
    await ops.post(f"/ops/v1/lines/{L2}/sessions", json={"address": "127.0.0.1"})  # line 2 now holds the address
    await buy(settings, client, small.auth, "two", two["initial_password"], 200)
    big_on_l2 = await buy(settings, client, big_auth, "two", two["initial_password"], 4000)
    await client.post("/v1/refunds", headers=big_auth, json={"charge": big_on_l2, "amount": 1000})

    await at(settings, "2033-02-01T00:10:00+09:00")  # January closes; the subscription renews for February
    assert await bill(L1, "2033-01") == (9780, 889, "open")  # 1,000 + 300 + 8,000 + 480; floor(9,780/11)
    assert await bill(L2, "2033-01") == (3200, 290, "open")  # 200 + (4,000 - 1,000); floor(3,200/11)
    assert await bill(L3, "2033-01") == (500, 45, "open")
    await pay(ops, L1, "2033-01", 9780, "2033-02-20T10:00:00+09:00")
    await pay(ops, L2, "2033-01", 1600, "2033-02-20T10:00:00+09:00")  # half: 100 of the 200, 1,500 of the 3,000
    await client.post("/v1/refunds", headers=big_auth, json={"charge": big_on_l1, "amount": 500})  # after billing

    await at(settings, "2033-03-01T00:10:00+09:00")  # February closes; January's payouts are made
    assert await bill(L1, "2033-02") == (980, 89, "open")  # 1,000 + 480 renewal - 500 credit
    assert await bill(L2, "2033-01") == (3200, 290, "overdue")
    small_jan = await payout(settings, small.merchant_id, "2033-01")
    # 980 billed on 2 lines (490 a line < 600): 31.5 x 2 = 63; collected 300 + 480 + 100 = 880.
    assert (small_jan.billed, small_jan.lines, small_jan.fee, small_jan.fee_rule) == (980, 2, 63, "per_line")
    assert (small_jan.collected, small_jan.net, small_jan.carried_forward) == (880, 817, 0)
    big_jan = await payout(settings, big["id"], "2033-01")
    # 11,000 on 2 lines (5,500 a line): 5% = 550; collected 8,000 + 1,500; setup fee 20,000 → carried -11,050.
    assert (big_jan.billed, big_jan.fee, big_jan.fee_rule, big_jan.setup_fee) == (11_000, 550, "percent", 20_000)
    assert (big_jan.collected, big_jan.net, big_jan.carried_forward) == (9500, 0, -11_050)
    await pay(ops, L2, "2033-01", 1600, "2033-03-05T10:00:00+09:00")  # late
    await pay(ops, L1, "2033-02", 980, "2033-03-20T10:00:00+09:00")

    await at(settings, "2033-04-01T00:10:00+09:00")  # March closes; February's payouts are made
    assert await bill(L2, "2033-01") == (3200, 290, "paid")
    small_feb = await payout(settings, small.merchant_id, "2033-02")
    # 480 on 1 line: 31.5 floored to 31; collected 480; the late 100 of January: 480 - 31 + 100 = 549.
    assert (small_feb.fee, small_feb.collected, small_feb.adjustments, small_feb.net) == (31, 480, 100, 549)
    big_feb = await payout(settings, big["id"], "2033-02")
    # nothing billed; late 1,500 - credit 500 - carried 11,050 = -10,050, carried again.
    assert (big_feb.fee, big_feb.adjustments, big_feb.net, big_feb.carried_forward) == (0, -10_050, 0, -10_050)

    await at(settings, "2033-06-01T00:10:00+09:00")  # 90 days past January's due date (28 February)
    assert (await bill(L3, "2033-01"))[2] == "uncollectible"
    assert [(c.name, c.breaks) for c in await run_audit() if not c.ok] == []
