"""The console's billing runs: the list with progress, starting the close of an ended month with
a reason, one run's self-reloading page and its failed batches (product.md §5, §10)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from sites_support import ops_signed_in

from conftest import OpsClient, row_counts
from models.audit_log import AuditEntry
from models.clock import clock
from models.invoices import BillingBatch, BillingRun, Invoice
from settings import Settings
from tests_support import buy, open_shop, settle

REFRESH = '<meta http-equiv="refresh" content="2">'


@pytest.fixture
async def november(client: Any, ops: OpsClient, settings: Settings, worker: Any) -> Any:
    """A line with a purchase in November 2030; the clock on 1 December, the month over."""
    await clock.move_to(datetime.fromisoformat("2030-11-10T10:00:00+09:00"))
    shop = await open_shop(ops)
    await buy(client, settings, shop, amount=1200)
    await clock.move_to(datetime.fromisoformat("2030-12-01T00:10:00+09:00"))
    return shop


async def test_billing_staff_close_an_ended_month_and_watch_the_run(
    client: Any, settings: Settings, november: Any
) -> None:
    """The close starts from the form (one audit row with the reason), the run page reloads itself
    while it runs and shows the figures once it has succeeded."""
    browser = await ops_signed_in(client, role="billing")
    status, page = await browser.get("/ops/billing")
    assert status == 200
    assert 'id="close-form"' in page
    assert 'value="2030-11"' in page  # the month just ended is offered
    response = await browser.post("/ops/billing/close", {"period": "2030-11", "reason": "monthly close"})
    assert response.status == 303
    run = await BillingRun.get(period="2030-11")
    assert response.headers["Location"] == f"/ops/billing/runs/{run.id}"
    status, page = await browser.get(f"/ops/billing/runs/{run.id}")
    assert status == 200
    assert REFRESH in page
    assert 'data-status="running"' in page

    async def finished() -> bool:
        return (await BillingRun.get(id=run.id)).status == "succeeded"

    await settle(settings, finished)
    status, page = await browser.get(f"/ops/billing/runs/{run.id}")
    assert status == 200
    assert REFRESH not in page
    assert 'data-status="succeeded"' in page
    assert await Invoice.filter(period="2030-11").count() == 1
    done = await BillingRun.get(id=run.id)
    assert f'<dd id="run-invoices">{done.invoices}</dd>' in page
    assert f'<progress class="run-progress" max="{done.batches_total}" value="{done.batches_total}"' in page
    (entry,) = await AuditEntry.filter(action="billing.close")
    assert (entry.target_type, entry.target_id) == ("billing_run", run.id)
    assert entry.details == {"period": "2030-11", "reason": "monthly close"}
    assert entry.actor.startswith("staff:")
    _, listing = await browser.get("/ops/billing")
    assert f'id="run-{run.id}" data-status="succeeded"' in listing


async def test_a_month_not_ended_malformed_running_or_closed_is_named_and_nothing_is_written(
    client: Any, ops: OpsClient
) -> None:
    """Each refusal is a 4xx page naming the problem next to the month; no run, outbox row or audit row."""
    await clock.move_to(datetime.fromisoformat("2030-12-15T10:00:00+09:00"))
    now = await clock.now()
    await BillingRun.create(period="2030-10", status="succeeded", started_at=now, finished_at=now)
    await BillingRun.create(period="2030-09", status="running", started_at=now)
    browser = await ops_signed_in(client, role="admin")
    await browser.get("/ops/billing")
    before = await row_counts()
    for period, status, words in (
        ("2030-12", 409, "has not ended"),
        ("2030-13", 400, "YYYY-MM"),
        ("Nov 2030", 400, "YYYY-MM"),
        ("2030-10", 409, "closed already"),
        ("2030-09", 409, "running already"),
    ):
        response = await browser.post("/ops/billing/close?lang=en", {"period": period, "reason": "test"})
        assert response.status == status, period
        assert 'id="period-error"' in response.body_text
        assert words in response.body_text, period
    response = await browser.post("/ops/billing/close", {"period": "2030-11", "reason": ""})
    assert response.status == 400
    assert 'id="reason-error"' in response.body_text
    assert await row_counts() == before


async def test_support_staff_see_the_runs_but_cannot_start_a_close(client: Any, ops: OpsClient) -> None:
    """No close form for support; a forged close answers 403 and opens no run."""
    await clock.move_to(datetime.fromisoformat("2030-12-15T10:00:00+09:00"))
    browser = await ops_signed_in(client, role="support")
    status, page = await browser.get("/ops/billing")
    assert status == 200
    assert 'id="close-form"' not in page
    before = await row_counts()
    response = await browser.post("/ops/billing/close", {"period": "2030-11", "reason": "forged"})
    assert response.status == 403
    assert await row_counts() == before


async def test_an_unknown_run_answers_404(client: Any) -> None:
    """A run id nobody has, or one too long to be an id: the 404 page."""
    browser = await ops_signed_in(client, role="support")
    for run_id in ("run_nobody", "run_" + "x" * 80):
        status, _ = await browser.get(f"/ops/billing/runs/{run_id}")
        assert status == 404


async def test_a_failed_run_shows_its_failed_batches_and_stops_reloading(client: Any) -> None:
    """Each failed batch with its lines and error; a run no longer running does not reload itself."""
    now = await clock.now()
    run = await BillingRun.create(
        period="2030-11", status="failed", batches_total=2, batches_done=1, started_at=now, finished_at=now
    )
    batch = await BillingBatch.create(
        run=run, first_line_id="CAF0000001001", last_line_id="CAF0000002000", failed_at=now, error="deadlock detected"
    )
    browser = await ops_signed_in(client, role="support")
    status, page = await browser.get(f"/ops/billing/runs/{run.id}")
    assert status == 200
    assert REFRESH not in page
    assert f'id="batch-{batch.id}"' in page
    assert "deadlock detected" in page
    assert 'data-status="failed"' in page
