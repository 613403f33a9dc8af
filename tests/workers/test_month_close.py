"""Closing a month (product.md §5): one invoice per line with something to bill, the base fee
first, then each charge, then credits for refunds of charges billed before; tax once per
invoice; closing twice or redelivering a batch changes nothing."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import pytest
from tortoise import connections

import queues
from billing.zengin_records import read_transfer_file
from conftest import OpsClient
from models.audit_log import AuditEntry
from models.charges import Charge, Refund
from models.clock import clock
from models.events import Event
from models.invariants import run_audit
from models.invoices import BillingBatch, BillingRun, Invoice, InvoiceItem
from models.ledger import JournalEntry
from models.operations import closing
from settings import Settings
from tests_support import Shop, buy, close, invoice_of, line_body, make_payouts, open_shop, settle
from workers import billing as billing_queue

pytestmark = pytest.mark.usefixtures("worker")
LINE_A, LINE_B, LINE_C, LINE_D = "CAF0000002001", "CAF0000002002", "CAF0000002003", "CAF0000002004"


@pytest.fixture
async def november(client, ops: OpsClient, settings: Settings) -> dict[str, Any]:
    """November 2030: line A buys three 105-yen items, line B one 1,000-yen item refunded 300
    before the close, line C only has its base fee, line D has nothing to bill."""
    await clock.move_to(datetime.fromisoformat("2030-11-10T10:00:00+09:00"))
    shop = await open_shop(ops, line_id=LINE_A, login_id="a-taro")
    for line_id, fee in ((LINE_B, 0), (LINE_C, 3000), (LINE_D, 0)):
        await ops.post("/ops/v1/lines", json=line_body(line_id, base_monthly_fee=fee))
    a_charges = [
        await buy(client, settings, shop, login_id="a-taro", password=shop.password, amount=105) for _ in range(3)
    ]
    _, b_account = await ops.post(f"/ops/v1/lines/{LINE_B}/accounts", json={"login_id": "b-hanako"})
    await ops.post(f"/ops/v1/lines/{LINE_B}/sessions", json={"address": "127.0.0.1"})
    b_charge = await buy(
        client, settings, shop, login_id="b-hanako", password=b_account["initial_password"], amount=1000
    )
    refund = await client.post("/v1/refunds", headers=shop.auth, json={"charge": b_charge, "amount": 300})
    assert refund.status == 201
    return {"shop": shop, "a_charges": a_charges, "b_charge": b_charge, "b_password": b_account["initial_password"]}


async def test_a_period_is_closed_only_once_it_has_ended(ops: OpsClient, november: dict[str, Any]) -> None:
    """November cannot be closed in November; a malformed period is a 400; nothing is written."""
    status, body = await ops.post("/ops/v1/billing/close", json={"period": "2030-11"})
    assert (status, body["error"]["code"]) == (409, "period_not_ended")
    for bad in ("2030-13", "2030-1", "November", 202011):
        status, body = await ops.post("/ops/v1/billing/close", json={"period": bad})
        assert (status, body["error"]["param"]) == (400, "period")
    assert await BillingRun.all().count() == 0


async def test_invoices_by_hand(ops: OpsClient, settings: Settings, november: dict[str, Any]) -> None:
    """Each invoice's items, total and tax equal the figures worked out by hand."""
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    run = await close(ops, settings, "2030-11")
    assert (run["status"], run["batches_done"], run["batches_total"]) == ("succeeded", 1, 1)
    assert (run["lines"], run["invoices"], run["total_billed"]) == (3, 3, 5815 + 700 + 3000)
    a = await invoice_of(ops, LINE_A, "2030-11")
    assert [(i["kind"], i["amount"]) for i in a["items"]] == [
        ("base_fee", 5500),
        ("charge", 105),
        ("charge", 105),
        ("charge", 105),
    ]
    # Tax once per invoice: floor(5815 / 11) = 528; per item it would be 500 + 3 x 9 = 527.
    assert (a["total"], a["taxes"]) == (5815, [{"rate": "0.1000", "taxable_total": 5815, "tax": 528}])
    assert a["due_date"] == "2030-12-31"
    b = await invoice_of(ops, LINE_B, "2030-11")
    assert [(i["kind"], i["amount"]) for i in b["items"]] == [("charge", 700)]  # 1,000 less the 300 refunded
    assert b["taxes"][0]["tax"] == 63  # floor(700 / 11)
    c = await invoice_of(ops, LINE_C, "2030-11")
    assert (c["total"], c["taxes"][0]["tax"]) == (3000, 272)  # floor(3000 / 11)
    assert not await Invoice.exists(line_id=LINE_D)
    charges = await Charge.filter(status="succeeded")
    assert {c.billing_status for c in charges} == {"billed"}
    billed_events = await Event.filter(type="charge.billed")
    assert len(billed_events) == 4
    for event in billed_events:  # written by SQL, exactly as the API shows the charge
        assert event.data == {"object": (await Charge.get(id=event.object_id)).to_api()}
        assert event.merchant_id == november["shop"].merchant_id  # type: ignore[attr-defined]


async def test_closing_twice_creates_nothing_new(ops: OpsClient, settings: Settings, november: dict[str, Any]) -> None:
    """A second close of the same month adds no invoice, item or event."""
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    counts = (await Invoice.all().count(), await InvoiceItem.all().count(), await Event.all().count())
    again = await close(ops, settings, "2030-11")
    assert (again["invoices"], again["total_billed"]) == (0, 0)
    assert (await Invoice.all().count(), await InvoiceItem.all().count(), await Event.all().count()) == counts


async def test_a_close_asked_through_the_ops_api_is_audited(
    ops: OpsClient, settings: Settings, november: dict[str, Any]
) -> None:
    """POST /ops/v1/billing/close writes one audit row naming the ops token and the run."""
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    run = await close(ops, settings, "2030-11")
    (entry,) = await AuditEntry.filter(action="billing.close")
    assert (entry.actor, entry.target_id) == ("ops_token", run["id"])


async def test_a_redelivered_batch_changes_nothing(
    ops: OpsClient, settings: Settings, november: dict[str, Any]
) -> None:
    """merge_invoices run again for a finished batch (a redelivery) writes nothing."""
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    run = await close(ops, settings, "2030-11")
    batch = await BillingBatch.get(run_id=run["id"])
    items = await InvoiceItem.all().count()
    await billing_queue.merge_invoices.fn.__wrapped__(batch.id)
    assert await InvoiceItem.all().count() == items
    assert (await BillingRun.get(id=run["id"])).batches_done == 1


SABOTAGE = {  # a storage fault for one test: every invoice item insert fails
    "sqlite": ["CREATE TRIGGER sabotage BEFORE INSERT ON invoice_items BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"],
    "postgres": [
        "CREATE FUNCTION sabotage() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'disk on fire'; END$$",
        "CREATE TRIGGER sabotage BEFORE INSERT ON invoice_items FOR EACH ROW EXECUTE FUNCTION sabotage()",
    ],
}
REPAIR = {
    "sqlite": ["DROP TRIGGER sabotage"],
    "postgres": ["DROP TRIGGER sabotage ON invoice_items", "DROP FUNCTION sabotage"],
}


async def _storage(statements: dict[str, list[str]]) -> None:
    connection = connections.get("default")
    for statement in statements[connection.capabilities.dialect]:
        await connection.execute_script(statement)


async def test_a_batch_out_of_retries_fails_its_run_and_a_new_close_finishes_it(
    ops: OpsClient, settings: Settings, november: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch failing its last retry marks the batch (with the error) and the run failed, writes
    nothing; once the fault is mended, closing the period again bills exactly what was due."""
    monkeypatch.setitem(billing_queue.merge_invoices.options, "max_retries", 0)
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await _storage(SABOTAGE)
    try:
        status, run = await ops.post("/ops/v1/billing/close", json={"period": "2030-11"})
        assert status == 202

        async def failed() -> bool:
            return (await BillingRun.get(id=run["id"])).status == "failed"

        await settle(settings, failed)
    finally:
        await _storage(REPAIR)
    status, shown = await ops.get(f"/ops/v1/billing/runs/{run['id']}")
    assert (status, shown["status"], shown["batches_done"], shown["invoices"]) == (200, "failed", 0, 0)
    batch = await BillingBatch.get(run_id=run["id"])
    assert batch.failed_at is not None
    assert batch.done_at is None
    assert "disk on fire" in (batch.error or "")
    assert (await Invoice.all().count(), await InvoiceItem.all().count()) == (0, 0)
    assert await Charge.filter(billing_status="billed").count() == 0
    again = await close(ops, settings, "2030-11")
    assert (again["status"], again["invoices"], again["total_billed"]) == ("succeeded", 3, 5815 + 700 + 3000)
    assert [check.name for check in await run_audit("2030-11") if not check.ok] == []


PLAN_SABOTAGE = {  # a storage fault for one test: no batch of a close can be written
    "sqlite": [
        "CREATE TRIGGER sabotage BEFORE INSERT ON billing_batches BEGIN SELECT RAISE(ABORT, 'disk on fire'); END"
    ],
    "postgres": [
        "CREATE FUNCTION sabotage() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'disk on fire'; END$$",
        "CREATE TRIGGER sabotage BEFORE INSERT ON billing_batches FOR EACH ROW EXECUTE FUNCTION sabotage()",
    ],
}
PLAN_REPAIR = {
    "sqlite": ["DROP TRIGGER sabotage"],
    "postgres": ["DROP TRIGGER sabotage ON billing_batches", "DROP FUNCTION sabotage"],
}


async def test_a_close_out_of_retries_fails_its_run_and_the_month_can_be_closed_again(
    ops: OpsClient, settings: Settings, november: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that cannot be planned (its close_period message used every retry) turns failed
    instead of reading running for good; once mended, closing the month again succeeds."""
    monkeypatch.setitem(billing_queue.close_period.options, "max_retries", 0)
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await _storage(PLAN_SABOTAGE)
    try:
        status, run = await ops.post("/ops/v1/billing/close", json={"period": "2030-11"})
        assert status == 202

        async def failed() -> bool:
            return (await BillingRun.get(id=run["id"])).status == "failed"

        await settle(settings, failed)
    finally:
        await _storage(PLAN_REPAIR)
    assert await BillingBatch.all().count() == 0
    again = await close(ops, settings, "2030-11")
    assert (again["status"], again["invoices"], again["total_billed"]) == ("succeeded", 3, 5815 + 700 + 3000)


async def test_batches_fan_out_and_add_up(
    ops: OpsClient, settings: Settings, november: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With two lines per batch, four lines make two batches and the same invoices."""
    monkeypatch.setattr(queues, "_worker_settings", settings.replace(billing_batch_lines=2))
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    run = await close(ops, settings, "2030-11")
    assert (run["batches_total"], run["batches_done"], run["invoices"], run["total_billed"]) == (2, 2, 3, 9515)


async def test_two_batches_of_a_run_merged_at_once_both_finish(
    settings: Settings, november: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two billing workers on two batches of one run: each batch's invoices hold a key-share lock
    on the run row, so ending both at once must not deadlock; the run adds up as one at a time."""
    monkeypatch.setattr(queues, "_worker_settings", settings.replace(billing_batch_lines=2))
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    run = await closing.start_close("2030-11")
    await billing_queue.close_period.fn.__wrapped__(run.id)
    batches = await BillingBatch.filter(run_id=run.id)
    assert len(batches) == 2
    await asyncio.gather(*(billing_queue.merge_invoices.fn.__wrapped__(batch.id) for batch in batches))
    done = await BillingRun.get(id=run.id)
    assert (done.status, done.batches_done, done.invoices, done.total_billed) == ("succeeded", 2, 3, 9515)


async def test_a_refund_made_after_the_close_survives_a_second_close_of_the_month(
    client, ops: OpsClient, settings: Settings, november: dict[str, Any]
) -> None:
    """November closed, a November charge refunded, November closed again: the refund is still
    owed to the line, and December's bill credits it."""
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    shop: Shop = november["shop"]
    refunded = november["a_charges"][0]
    assert (await client.post("/v1/refunds", headers=shop.auth, json={"charge": refunded})).status == 201
    await close(ops, settings, "2030-11")
    await clock.move_to(datetime.fromisoformat("2031-01-01T00:10:00+09:00"))
    await close(ops, settings, "2030-12")
    december = await invoice_of(ops, LINE_A, "2030-12")
    assert [(i["kind"], i["amount"]) for i in december["items"]] == [("base_fee", 5500), ("credit", -105)]


async def test_a_charge_refunded_in_full_before_the_close_is_not_billed_and_its_refund_is_settled(
    client, ops: OpsClient, settings: Settings, november: dict[str, Any]
) -> None:
    """A November charge refunded in full in November is on no bill, and its refund is marked
    accounted for at the close (so it is neither credited later nor waited on by every close)."""
    shop: Shop = november["shop"]
    refunded = november["a_charges"][0]
    assert (await client.post("/v1/refunds", headers=shop.auth, json={"charge": refunded})).status == 201
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    november_a = await invoice_of(ops, LINE_A, "2030-11")
    assert [(i["kind"], i["amount"]) for i in november_a["items"]] == [
        ("base_fee", 5500),
        ("charge", 105),
        ("charge", 105),
    ]
    assert (await Refund.get(charge_id=refunded)).credited
    assert (await Charge.get(id=refunded)).billing_status == "unbilled"
    await clock.move_to(datetime.fromisoformat("2031-01-01T00:10:00+09:00"))
    await close(ops, settings, "2030-12")
    assert [i["kind"] for i in (await invoice_of(ops, LINE_A, "2030-12"))["items"]] == ["base_fee"]
    assert [check.name for check in await run_audit() if not check.ok] == []


async def test_a_refund_after_the_close_is_credited_next_month(
    client, ops: OpsClient, settings: Settings, november: dict[str, Any]
) -> None:
    """A billed charge refunded in December appears as a credit on December's invoice."""
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    shop: Shop = november["shop"]
    refunded = november["a_charges"][0]
    response = await client.post("/v1/refunds", headers=shop.auth, json={"charge": refunded})
    assert response.status == 201
    await clock.move_to(datetime.fromisoformat("2031-01-01T00:10:00+09:00"))
    await close(ops, settings, "2030-12")
    december = await invoice_of(ops, LINE_A, "2030-12")
    assert [(i["kind"], i["amount"], i["charge_id"]) for i in december["items"]] == [
        ("base_fee", 5500, None),
        ("credit", -105, None),
    ]
    assert december["items"][1]["refund_id"]
    assert (december["total"], december["taxes"][0]["tax"]) == (5395, 490)  # floor(5395 / 11)
    await clock.move_to(datetime.fromisoformat("2031-02-01T00:10:00+09:00"))
    await close(ops, settings, "2031-01")
    january = await invoice_of(ops, LINE_A, "2031-01")
    assert [i["kind"] for i in january["items"]] == ["base_fee"]  # credited once, not again


async def test_payments_spread_by_largest_remainder(
    ops: OpsClient, settings: Settings, november: dict[str, Any]
) -> None:
    """3,000 of 5,815 then the rest: item by item as computed by hand; the charges end collected."""
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    a = await invoice_of(ops, LINE_A, "2030-11")
    paid_at = "2030-12-20T10:00:00+09:00"
    status, _ = await ops.post(
        "/ops/v1/collections", json={"rows": [{"invoice_id": a["id"], "amount": 3000, "paid_at": paid_at}]}
    )
    assert status == 201
    items = await InvoiceItem.filter(invoice_id=a["id"]).order_by("position")
    # 3000 x 5500/5815 = 2837.49..., 3000 x 105/5815 = 54.17... each: floors 2837 + 3 x 54 = 2999,
    # and the one yen left goes to the largest remainder (.49, the base fee).
    assert [i.collected_amount for i in items] == [2838, 54, 54, 54]
    assert (await invoice_of(ops, LINE_A, "2030-11"))["status"] == "partially_paid"
    await ops.post("/ops/v1/collections", json={"rows": [{"invoice_id": a["id"], "amount": 2815, "paid_at": paid_at}]})
    items = await InvoiceItem.filter(invoice_id=a["id"]).order_by("position")
    assert [(i.collected_amount, i.collection_status) for i in items] == [
        (5500, "collected"),
        (105, "collected"),
        (105, "collected"),
        (105, "collected"),
    ]
    paid = await invoice_of(ops, LINE_A, "2030-11")
    assert (paid["status"], paid["amount_paid"]) == ("paid", 5815)
    assert {c.billing_status for c in await Charge.filter(id__in=november["a_charges"])} == {"collected"}
    assert await Event.filter(type="charge.collected").count() == 3


async def test_bad_collections_change_nothing(ops: OpsClient, settings: Settings, november: dict[str, Any]) -> None:
    """Above the balance, an unknown invoice, a non-positive amount: 4xx naming the row; no row applied."""
    from conftest import row_counts

    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    b = await invoice_of(ops, LINE_B, "2030-11")
    good = {"invoice_id": b["id"], "amount": 100, "paid_at": "2030-12-20T10:00:00+09:00"}
    before = await row_counts()
    for rows, param in (
        ([{**good, "amount": 701}], "rows.0.amount"),
        ([good, {**good, "invoice_id": "inv_nope"}], "rows.1.invoice_id"),
        ([{**good, "amount": -5}], "rows.0.amount"),
        ([{**good, "amount": 0}], "rows.0.amount"),
        ([{**good, "paid_at": "yesterday"}], "rows.0.paid_at"),
    ):
        status, body = await ops.post("/ops/v1/collections", json={"rows": rows})
        assert 400 <= status < 500, body
        assert body["error"]["param"] == param
    assert await row_counts() == before


async def test_a_resent_row_counts_once(ops: OpsClient, settings: Settings, november: dict[str, Any]) -> None:
    """The same reference sent twice records one payment."""
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    b = await invoice_of(ops, LINE_B, "2030-11")
    row = {"invoice_id": b["id"], "amount": 700, "paid_at": "2030-12-20T10:00:00+09:00", "reference": "bank-0001"}
    for _ in range(2):
        status, _ = await ops.post("/ops/v1/collections", json={"rows": [row]})
        assert status == 201
    assert (await invoice_of(ops, LINE_B, "2030-11"))["amount_paid"] == 700


async def test_overdue_late_payment_and_write_off(ops: OpsClient, settings: Settings, november: dict[str, Any]) -> None:
    """Past the due date unpaid bills are overdue; a late payment still pays; 90 days on, the rest is written off."""
    from workers.scheduler import run_due_jobs

    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    await clock.move_to(datetime.fromisoformat("2031-01-01T09:00:00+09:00"))  # due date was 2030-12-31
    await run_due_jobs()
    assert {(await invoice_of(ops, line, "2030-11"))["status"] for line in (LINE_A, LINE_B, LINE_C)} == {"overdue"}
    b = await invoice_of(ops, LINE_B, "2030-11")
    await ops.post(
        "/ops/v1/collections",
        json={"rows": [{"invoice_id": b["id"], "amount": 700, "paid_at": "2031-01-01T09:00:00+09:00"}]},
    )
    assert (await invoice_of(ops, LINE_B, "2030-11"))["status"] == "paid"
    await clock.move_to(datetime.fromisoformat("2031-03-31T12:00:00+09:00"))  # 90 days after the due date
    await run_due_jobs()
    assert (await invoice_of(ops, LINE_A, "2030-11"))["status"] == "overdue"
    await clock.move_to(datetime.fromisoformat("2031-04-01T12:00:00+09:00"))
    await run_due_jobs()
    assert (await invoice_of(ops, LINE_A, "2030-11"))["status"] == "uncollectible"
    assert (await invoice_of(ops, LINE_C, "2030-11"))["status"] == "uncollectible"
    assert (await invoice_of(ops, LINE_B, "2030-11"))["status"] == "paid"
    assert {c.billing_status for c in await Charge.filter(id__in=november["a_charges"])} == {"uncollectible"}
    assert (await Charge.get(id=november["b_charge"])).billing_status == "collected"
    assert await Event.filter(type="charge.uncollectible").count() == 3
    status, body = await ops.post(
        "/ops/v1/collections",
        json={
            "rows": [
                {
                    "invoice_id": (await invoice_of(ops, LINE_A, "2030-11"))["id"],
                    "amount": 10,
                    "paid_at": "2031-04-01T12:00:00+09:00",
                }
            ]
        },
    )
    assert (status, body["error"]["code"]) == (409, "invoice_written_off")
    assert [(check.name, check.breaks) for check in await run_audit() if not check.ok] == []
    assert await JournalEntry.filter(kind="written_off").count() == 2  # lines A and C


async def test_a_terminated_line_pays_its_last_month_only(
    ops: OpsClient, settings: Settings, november: dict[str, Any]
) -> None:
    """Terminated in November: November's fee is billed, December's is not."""
    await ops.post("/ops/v1/lines", json=line_body("CAF0000002005", base_monthly_fee=2000))
    await ops.patch("/ops/v1/lines/CAF0000002005", json={"status": "terminated"})
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    assert (await invoice_of(ops, "CAF0000002005", "2030-11"))["total"] == 2000
    await clock.move_to(datetime.fromisoformat("2031-01-01T00:10:00+09:00"))
    await close(ops, settings, "2030-12")
    assert not await Invoice.exists(line_id="CAF0000002005", period="2030-12")


async def test_a_bill_credits_bring_to_nothing_is_settled(
    client, ops: OpsClient, settings: Settings, november: dict[str, Any]
) -> None:
    """Line B (no base fee) refunded in December for all it paid: December's bill is 0 and settled at once."""
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    shop: Shop = november["shop"]
    await client.post("/v1/refunds", headers=shop.auth, json={"charge": november["b_charge"]})
    await clock.move_to(datetime.fromisoformat("2031-01-01T00:10:00+09:00"))
    await close(ops, settings, "2030-12")
    december = await invoice_of(ops, LINE_B, "2030-12")
    assert (december["total"], december["status"], december["taxes"][0]["tax"]) == (-700, "paid", -63)


async def test_a_charge_its_bill_nets_to_nothing_is_collected(
    client, ops: OpsClient, settings: Settings, november: dict[str, Any]
) -> None:
    """December: line B buys 700 and is refunded the 700 billed in November: the bill is 0 and
    settled at once, and the new charge is collected (the credit paid it), with its event."""
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    shop: Shop = november["shop"]
    await clock.move_to(datetime.fromisoformat("2030-12-05T10:00:00+09:00"))
    bought = await buy(client, settings, shop, login_id="b-hanako", password=november["b_password"], amount=700)
    await client.post("/v1/refunds", headers=shop.auth, json={"charge": november["b_charge"]})
    await clock.move_to(datetime.fromisoformat("2031-01-01T00:10:00+09:00"))
    await close(ops, settings, "2030-12")
    december = await invoice_of(ops, LINE_B, "2030-12")
    assert [(i["kind"], i["amount"]) for i in december["items"]] == [("charge", 700), ("credit", -700)]
    assert (december["total"], december["status"], december["amount_paid"]) == (0, "paid", 0)
    item = await InvoiceItem.get(charge_id=bought)
    assert (item.collected_amount, item.collection_status) == (700, "collected")
    assert (await Charge.get(id=bought)).billing_status == "collected"
    assert await Event.filter(type="charge.collected", object_id=bought).count() == 1
    assert [check.name for check in await run_audit() if not check.ok] == []


async def test_payouts_pay_what_was_collected_less_the_fee(
    client, ops: OpsClient, settings: Settings, november: dict[str, Any]
) -> None:
    """November: 1,015 billed on 2 lines (507.5 a line, so 31.5 x 2 = 63), all collected: 952 paid on 31 Jan."""
    status, body = await ops.post("/ops/v1/payouts/generate", json={"period": "2030-11"})
    assert (status, body["error"]["code"]) == (409, "period_not_closed")
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    paid_at = "2030-12-20T10:00:00+09:00"
    for line_id in (LINE_A, LINE_B):
        invoice = await invoice_of(ops, line_id, "2030-11")
        await ops.post(
            "/ops/v1/collections",
            json={"rows": [{"invoice_id": invoice["id"], "amount": invoice["total"], "paid_at": paid_at}]},
        )
    shop: Shop = november["shop"]
    await client.post("/v1/refunds", headers=shop.auth, json={"charge": november["a_charges"][0]})  # after billing
    await clock.move_to(datetime.fromisoformat("2031-01-01T00:10:00+09:00"))
    (payout,) = await make_payouts(ops, settings, "2030-11")
    assert (payout["billed"], payout["lines"], payout["fee"], payout["fee_rule"]) == (1015, 2, 63, "per_line")
    assert (payout["collected"], payout["adjustments"], payout["net"], payout["carried_forward"]) == (1015, 0, 952, 0)
    assert payout["scheduled_date"] == "2031-01-31"  # the last business day of January 2031, a Friday
    assert {c.payout_id for c in await Charge.filter(id__in=[*november["a_charges"], november["b_charge"]])} == {
        payout["id"]
    }
    assert len(await make_payouts(ops, settings, "2030-11")) == 1  # generating again adds nothing
    await close(ops, settings, "2030-12")
    (december,) = await make_payouts(ops, settings, "2030-12")
    assert (december["collected"], december["adjustments"], december["net"], december["carried_forward"]) == (
        0,
        -105,
        0,
        -105,
    )  # the December refund of a November charge, carried forward
    status, paid = await ops.post(f"/ops/v1/payouts/{payout['id']}/paid")
    assert (status, paid["status"]) == (200, "paid")
    status, body = await ops.post(f"/ops/v1/payouts/{payout['id']}/paid")
    assert (status, body["error"]["code"]) == (409, "payout_already_paid")
    listing = await (await client.get("/v1/payouts", headers=shop.auth)).json()
    assert [p["period"] for p in listing["data"]] == ["2030-12", "2030-11"]
    statement = await (await client.get(f"/v1/payouts/{payout['id']}", headers=shop.auth)).json()
    assert sorted(line["kind"] for line in statement["statement"]) == ["collected"] * 4 + ["fee"]
    assert sum(line["amount"] for line in statement["statement"]) == 952
    types = await Event.filter(type__in=["payout.created", "payout.paid"]).values_list("type", flat=True)
    assert sorted(types) == ["payout.created", "payout.created", "payout.paid"]
    response = await ops.client.get("/ops/v1/payouts/files/2030-11", headers=ops.headers)
    assert response.status == 200
    transfers = read_transfer_file(await response.read())  # checks 120-byte records, trailer count and sum
    assert [(p.amount, p.bank_code, p.account_number, p.name) for p in transfers.payees] == [
        (952, "0001", "1234567", "ｽﾄﾘ-ﾑﾄﾞｳｶﾞ(ｶ")
    ]
    assert (transfers.transfer_month, transfers.transfer_day, transfers.total_amount) == (1, 31, 952)
    status, body = await ops.get("/ops/v1/payouts/files/2030-12")  # nothing to pay: the balance is carried
    assert (status, body["error"]["code"]) == (409, "nothing_to_transfer")
    assert [(check.name, check.breaks) for check in await run_audit() if not check.ok] == []
    assert await JournalEntry.filter(kind__in=["billed", "collected", "fee", "payout"]).count() >= 6


async def test_audit_finds_a_tampered_invoice_and_an_unbalanced_entry(
    ops: OpsClient, settings: Settings, november: dict[str, Any]
) -> None:
    """An invoice total edited behind the platform's back and a lopsided posting are both reported."""
    from tortoise import connections

    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    assert all(check.ok for check in await run_audit("2030-11"))
    a = await invoice_of(ops, LINE_A, "2030-11")
    db = connections.get("default")
    await db.execute_query(
        "UPDATE invoices SET total = total + 1 WHERE id = ?"
        if db.capabilities.dialect == "sqlite"
        else "UPDATE invoices SET total = total + 1 WHERE id = $1",
        [a["id"]],
    )
    await db.execute_query("UPDATE postings SET amount = amount + 1 WHERE id = (SELECT MIN(id) FROM postings)")
    broken = {check.name: check.breaks for check in await run_audit() if not check.ok}
    assert broken["invoice totals equal their items, and their taxes their items per rate"] == [a["id"]]
    assert len(broken["every journal entry sums to zero and has postings"]) == 1


def debit_result_file(rows: list[tuple[str, int, int]]) -> bytes:
    """A 口座振替 result file as a bank sends it (zengin.md): (顧客番号, amount, result code) rows."""

    def n(value: int, width: int) -> str:
        return str(value).rjust(width, "0")

    def c(text: str, width: int) -> str:
        return text.ljust(width)

    header = (
        "1"
        "91"
        "0"
        + n(1234567890, 10)
        + c("ﾏﾄﾒﾃ", 40)
        + "0127"
        + "0001"
        + c("ﾐｽﾞﾎ", 15)
        + "001"
        + c("ﾄｳｷﾖｳ", 15)
        + "1"
        + "1234567"
        + c("", 17)
    )
    data = [
        "2"
        "0005"
        + c("ﾐﾂﾋﾞｼ", 15)
        + "001"
        + c("ﾎﾝﾃﾝ", 15)
        + c("", 4)
        + "1"
        + "7654321"
        + c("ﾔﾏﾀﾞ ﾀﾛｳ", 30)
        + n(amount, 10)
        + "0"
        + c(reference, 20)
        + str(code)
        + c("", 8)
        for reference, amount, code in rows
    ]
    debited = [amount for _, amount, code in rows if code == 0]
    failed = [amount for _, amount, code in rows if code != 0]
    trailer = (
        "8"
        + n(len(rows), 6)
        + n(sum(debited) + sum(failed), 12)
        + n(len(debited), 6)
        + n(sum(debited), 12)
        + n(len(failed), 6)
        + n(sum(failed), 12)
        + c("", 65)
    )
    records = [header, *data, trailer, "9" + c("", 119)]
    assert all(len(r.encode("cp932")) == 120 for r in records)
    return b"".join(r.encode("cp932") + b"\r\n" for r in records)


async def test_a_debit_result_file_pays_the_debited_bills_once(
    ops: OpsClient, settings: Settings, november: dict[str, Any]
) -> None:
    """Code 0 pays its bill; code 1 (no funds) leaves it open; importing the file again changes nothing."""
    from tortoise.transactions import in_transaction

    from billing.zengin_records import ZenginFormatError, read_debit_results
    from models.operations.collections import import_debit_results

    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    a, b = await invoice_of(ops, LINE_A, "2030-11"), await invoice_of(ops, LINE_B, "2030-11")
    assert a["debit_reference"] == "CAF0000002001203011"
    file = debit_result_file([(a["debit_reference"], 5815, 0), (b["debit_reference"], 700, 1)])
    for expected in (
        {"debited": 1, "already_imported": 0, "not_debited": 1},
        {"debited": 0, "already_imported": 1, "not_debited": 1},
    ):
        async with in_transaction():
            assert await import_debit_results(read_debit_results(file), now=await clock.now()) == expected
    assert (
        (await invoice_of(ops, LINE_A, "2030-11"))["status"],
        (await invoice_of(ops, LINE_B, "2030-11"))["status"],
    ) == ("paid", "open")
    tampered = file.replace(b"00000058150", b"00000058160", 1)
    with pytest.raises(ZenginFormatError, match="record"):
        read_debit_results(tampered)  # the trailer's sum no longer matches: refused whole


async def test_the_scheduler_makes_payouts_once_the_next_month_is_over(
    ops: OpsClient, settings: Settings, november: dict[str, Any]
) -> None:
    """On 1 January the scheduler asks once for November's payouts; they are made once."""
    from models.payouts import Payout
    from workers.scheduler import run_due_jobs

    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    await clock.move_to(datetime.fromisoformat("2031-01-01T00:10:00+09:00"))
    assert (await run_due_jobs())["generate_due_payouts"] == 1

    async def made() -> bool:
        return await Payout.exists(period="2030-11")

    await settle(settings, made)
    assert (await run_due_jobs())["generate_due_payouts"] == 0
    assert await Payout.filter(period="2030-11").count() == 1


async def test_a_scheduler_down_across_two_month_ends_closes_both_months_in_order_each_once(
    client, ops: OpsClient, settings: Settings, november: dict[str, Any]
) -> None:
    """No scheduler pass from November to 5 January: the passes after close November, then
    December (started once November has succeeded), each once, with the bills of each month."""
    from workers.scheduler import run_due_jobs

    shop: Shop = november["shop"]
    await clock.move_to(datetime.fromisoformat("2030-12-10T10:00:00+09:00"))
    await buy(client, settings, shop, login_id="b-hanako", password=november["b_password"], amount=210)
    await clock.move_to(datetime.fromisoformat("2031-01-05T09:00:00+09:00"))
    opened: list[str] = []
    for _ in range(3):
        if (await run_due_jobs())["close_due_periods"]:
            opened += await BillingRun.filter(status="running").values_list("period", flat=True)

        async def quiet() -> bool:
            return not await BillingRun.exists(status="running")

        await settle(settings, quiet)
    assert opened == ["2030-11", "2030-12"]
    runs = await BillingRun.all().order_by("period").values_list("period", "status")
    assert runs == [("2030-11", "succeeded"), ("2030-12", "succeeded")]
    assert (await invoice_of(ops, LINE_A, "2030-11"))["total"] == 5815
    assert (await invoice_of(ops, LINE_B, "2030-11"))["total"] == 700
    december = await invoice_of(ops, LINE_B, "2030-12")
    assert [(i["kind"], i["amount"]) for i in december["items"]] == [("charge", 210)]
    assert (await invoice_of(ops, LINE_A, "2030-12"))["total"] == 5500
    assert (await invoice_of(ops, LINE_C, "2030-12"))["total"] == 3000
    assert [check.name for check in await run_audit() if not check.ok] == []
