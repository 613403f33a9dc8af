"""The console's payouts page: a period's payouts with their figures, generating them, marking
one paid, and the Zengin 総合振込 file, each action with a reason (product.md §7, §10, §11)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sites_support import ops_signed_in

from conftest import OPS_TOKEN, OpsClient, row_counts
from models.audit_log import AuditEntry
from models.clock import clock
from models.payouts import Payout
from settings import Settings
from tests_support import buy, close, collect_in_full, open_shop, settle


@pytest.fixture
async def collected(client: Any, ops: OpsClient, settings: Settings, worker: Any) -> Any:
    """November 2030: two purchases, billed, collected in December; the clock on 1 January."""
    await clock.move_to(datetime.fromisoformat("2030-11-10T10:00:00+09:00"))
    shop = await open_shop(ops)
    for amount in (1000, 2500):
        await buy(client, settings, shop, amount=amount)
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    await close(ops, settings, "2030-11")
    await collect_in_full(ops, shop.line_id, "2030-11", paid_at="2030-12-20T10:00:00+09:00")
    await clock.move_to(datetime.fromisoformat("2031-01-01T00:10:00+09:00"))
    return shop


async def test_billing_staff_generate_a_periods_payouts_and_see_their_figures(
    client: Any, settings: Settings, collected: Any
) -> None:
    """The generate form queues the payouts (one audit row with the reason); the page then shows each
    §11 figure of the merchant's payout."""
    browser = await ops_signed_in(client, role="billing")
    status, page = await browser.get("/ops/payouts?period=2030-11")
    assert status == 200
    assert 'id="payouts-empty"' in page
    response = await browser.post("/ops/payouts/generate", {"period": "2030-11", "reason": "January payouts"})
    assert response.status == 303
    assert response.headers["Location"] == "/ops/payouts?period=2030-11&done=generated"

    async def made() -> bool:
        return await Payout.exists(period="2030-11")

    await settle(settings, made)
    payout = await Payout.get(period="2030-11")
    status, page = await browser.get("/ops/payouts")  # the latest period with payouts is shown
    assert status == 200
    row = page[page.index(f'<tr id="payout-{payout.id}"') :]
    row = row[: row.index("</tr>")]
    for figure in (payout.billed, payout.fee, payout.collected, payout.net):
        assert f"{figure:,}円" in row
    assert payout.scheduled_date.isoformat() in row
    assert 'data-status="scheduled"' in row
    (entry,) = await AuditEntry.filter(action="payouts.generate")
    assert (entry.target_id, entry.details["reason"]) == ("2030-11", "January payouts")
    assert entry.actor.startswith("staff:")


async def test_billing_staff_download_the_transfer_file_and_mark_a_payout_paid(
    client: Any, ops: OpsClient, settings: Settings, collected: Any
) -> None:
    """The file is the ops API's bytes, as an attachment; marking paid writes one audit row with the
    reason, and marking it again is a 409 that changes nothing."""
    status, _ = await ops.post("/ops/v1/payouts/generate", json={"period": "2030-11"})
    assert status == 202

    async def made() -> bool:
        return await Payout.exists(period="2030-11")

    await settle(settings, made)
    payout = await Payout.get(period="2030-11")
    browser = await ops_signed_in(client, role="admin")
    _, page = await browser.get("/ops/payouts?period=2030-11")
    assert 'id="transfer-file"' in page
    response = await client.get("/ops/payouts/files/2030-11")
    assert response.status == 200
    assert response.headers["Content-Disposition"] == 'attachment; filename="sogofurikomi-2030-11.txt"'
    api = await client.get("/ops/v1/payouts/files/2030-11", headers={"Authorization": f"Bearer {OPS_TOKEN}"})
    assert await response.read() == await api.read()
    response = await browser.post(f"/ops/payouts/{payout.id}/paid", {"period": "2030-11", "reason": "bank confirmed"})
    assert response.status == 303
    assert response.headers["Location"] == "/ops/payouts?period=2030-11&done=paid"
    assert (await Payout.get(id=payout.id)).status == "paid"
    (entry,) = await AuditEntry.filter(action="payout.paid")
    assert (entry.target_id, entry.details) == (payout.id, {"reason": "bank confirmed"})
    before = await row_counts()
    response = await browser.post(f"/ops/payouts/{payout.id}/paid?lang=en", {"period": "2030-11", "reason": "again"})
    assert response.status == 409
    assert f'id="payout-{payout.id}-error"' in response.body_text
    assert "recorded as paid already" in response.body_text
    assert await row_counts() == before


async def test_bad_periods_and_unknown_payouts_are_named_and_change_nothing(client: Any, collected: Any) -> None:
    """A malformed month, a month not closed, a month with nothing to transfer, an unknown payout,
    no reason: 4xx pages naming the problem, nothing written."""
    browser = await ops_signed_in(client, role="billing")
    await browser.get("/ops/payouts")
    before = await row_counts()
    status, page = await browser.get("/ops/payouts?period=2030-13&lang=en")
    assert status == 400
    assert 'id="period-error"' in page
    assert "YYYY-MM" in page
    response = await browser.post("/ops/payouts/generate", {"period": "2030-12", "reason": "too early"})
    assert response.status == 409
    assert 'id="generate-error"' in response.body_text
    assert "not been closed" in response.body_text
    response = await browser.post("/ops/payouts/generate", {"period": "11/2030", "reason": "typo"})
    assert response.status == 400
    response = await browser.post("/ops/payouts/generate", {"period": "2030-11", "reason": ""})
    assert response.status == 400
    assert 'id="generate-error"' in response.body_text
    status, _ = await browser.get("/ops/payouts/files/2030-13")
    assert status == 400
    status, page = await browser.get("/ops/payouts/files/2030-11")  # closed, but no payout made yet
    assert status == 409
    assert 'id="file-error"' in page
    assert "no payout to transfer" in page
    response = await browser.post("/ops/payouts/po_nobody/paid", {"period": "2030-11", "reason": "typo"})
    assert response.status == 404
    assert await row_counts() == before


async def test_support_staff_read_payouts_but_cannot_act_on_them(
    client: Any, ops: OpsClient, settings: Settings, collected: Any
) -> None:
    """No forms for support; a forged generate or mark-paid answers 403 and the file is refused."""
    status, _ = await ops.post("/ops/v1/payouts/generate", json={"period": "2030-11"})
    assert status == 202

    async def made() -> bool:
        return await Payout.exists(period="2030-11")

    await settle(settings, made)
    payout = await Payout.get(period="2030-11")
    browser = await ops_signed_in(client, role="support")
    status, page = await browser.get("/ops/payouts?period=2030-11")
    assert status == 200
    assert f'id="payout-{payout.id}"' in page
    assert 'id="generate-form"' not in page
    assert f'id="paid-{payout.id}"' not in page
    before = await row_counts()
    response = await browser.post("/ops/payouts/generate", {"period": "2030-11", "reason": "forged"})
    assert response.status == 403
    response = await browser.post(f"/ops/payouts/{payout.id}/paid", {"period": "2030-11", "reason": "forged"})
    assert response.status == 403
    status, _ = await browser.get("/ops/payouts/files/2030-11")
    assert status == 403
    assert await row_counts() == before
    assert (await Payout.get(id=payout.id)).status == "scheduled"
