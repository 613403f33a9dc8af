"""The scheduler catches up on what fell due by the platform clock, and repeats nothing."""

from __future__ import annotations

from datetime import timedelta

from models.clock import Clock, clock
from models.merchants import IdempotencyKey, Merchant
from models.outbox import OutboxMessage
from settings import Settings
from workers.scheduler import Job, run_due_jobs


async def test_old_sent_outbox_rows_and_idempotency_keys_are_pruned(db: Settings) -> None:
    """Sent rows older than a week and completed keys older than 48 h go; everything else stays."""
    now = await clock.now()
    system = Clock.system_now()
    old_sent = await OutboxMessage.create(
        queue_name="charges", actor_name="a", created_at=system - timedelta(days=9), sent_at=system - timedelta(days=8)
    )
    recent = await OutboxMessage.create(queue_name="charges", actor_name="a", created_at=system, sent_at=system)
    unsent = await OutboxMessage.create(queue_name="charges", actor_name="a", created_at=system - timedelta(days=30))
    merchant = await Merchant.create(name="m", name_kana="ﾑ", return_signing_secret="s", created_at=now)
    stale = await IdempotencyKey.create(
        merchant=merchant,
        key="old",
        request_fingerprint="f",
        created_at=now - timedelta(hours=49),
        completed_at=now - timedelta(hours=49),
    )
    fresh = await IdempotencyKey.create(
        merchant=merchant, key="new", request_fingerprint="f", created_at=now - timedelta(hours=23), completed_at=now
    )
    done = await run_due_jobs()
    assert (done["prune_outbox"], done["prune_idempotency_keys"]) == (1, 1)
    assert set(await OutboxMessage.filter(actor_name="a").values_list("id", flat=True)) == {recent.id, unsent.id}
    assert set(await IdempotencyKey.all().values_list("id", flat=True)) == {fresh.id}
    assert not await OutboxMessage.exists(id=old_sent.id)
    assert not await IdempotencyKey.exists(id=stale.id)
    again = await run_due_jobs()
    assert (again["prune_outbox"], again["prune_idempotency_keys"]) == (0, 0)


async def test_a_test_clock_jump_makes_keys_due(db: Settings) -> None:
    """Moving the test clock two days ahead makes a just-completed key old enough to prune."""
    now = await clock.now()
    merchant = await Merchant.create(name="m", name_kana="ﾑ", return_signing_secret="s", created_at=now)
    await IdempotencyKey.create(merchant=merchant, key="k", request_fingerprint="f", created_at=now, completed_at=now)
    assert (await run_due_jobs())["prune_idempotency_keys"] == 0
    await clock.move_to(now + timedelta(days=2, minutes=1))
    assert (await run_due_jobs())["prune_idempotency_keys"] == 1


async def test_a_failing_job_does_not_stop_the_others(db: Settings) -> None:
    """One job raising is logged; the jobs after it still run."""

    async def broken(_now: object) -> int:
        raise RuntimeError("boom")

    async def fine(_now: object) -> int:
        return 7

    assert await run_due_jobs([Job("broken", broken), Job("fine", fine)]) == {"fine": 7}


async def test_the_month_just_ended_is_closed_once(db: Settings) -> None:
    """Shortly after midnight JST on the 1st the scheduler opens one close of the previous month."""
    from datetime import datetime

    from models.invoices import BillingRun

    await clock.move_to(datetime.fromisoformat("2032-04-01T00:05:00+09:00"))
    assert (await run_due_jobs())["close_due_periods"] == 1
    assert (await run_due_jobs())["close_due_periods"] == 0
    assert await BillingRun.filter(period="2032-03").count() == 1


async def _line_created(line_id: str, moment: str) -> None:
    """A line with a base fee, created at ``moment`` (JST)."""
    from datetime import datetime

    from models.lines import Line

    created = datetime.fromisoformat(moment)
    await Line.create(
        line_id=line_id,
        line_type="hikari_next",
        holder_name="x",
        base_monthly_fee=1000,
        created_at=created,
        updated_at=created,
    )


async def _finish(period: str, status: str) -> None:
    """The period's running run ends ``status`` (no worker runs in these tests: the runs stay as
    the scheduler left them until a test ends them)."""
    from models.invoices import BillingRun

    assert await BillingRun.filter(period=period, status="running").update(status=status) == 1


async def _periods_opened() -> list[str]:
    from models.invoices import BillingRun

    return list(await BillingRun.all().order_by("started_at", "period").values_list("period", flat=True))


async def test_missed_month_ends_are_closed_oldest_first_one_at_a_time(db: Settings) -> None:
    """A scheduler down from January to April closes January, February and March in that order,
    each once, the next only after the one before has succeeded; never a month before the
    first line."""
    from datetime import datetime

    await _line_created("CAF0000009001", "2032-01-15T10:00:00+09:00")
    await clock.move_to(datetime.fromisoformat("2032-04-01T00:05:00+09:00"))
    assert (await run_due_jobs())["close_due_periods"] == 1
    assert await _periods_opened() == ["2032-01"]
    assert (await run_due_jobs())["close_due_periods"] == 0  # January still running: wait
    await _finish("2032-01", "succeeded")
    assert (await run_due_jobs())["close_due_periods"] == 1
    await _finish("2032-02", "succeeded")
    assert (await run_due_jobs())["close_due_periods"] == 1
    await _finish("2032-03", "succeeded")
    assert (await run_due_jobs())["close_due_periods"] == 0
    assert await _periods_opened() == ["2032-01", "2032-02", "2032-03"]


async def test_a_failed_close_holds_the_months_after_it_until_closed_again(db: Settings) -> None:
    """A failed run is not retried by the scheduler and later months wait; once an operator has
    closed the month again, the scheduler goes on with the next."""
    from datetime import datetime

    from models.operations.closing import start_close

    await _line_created("CAF0000009002", "2032-01-15T10:00:00+09:00")
    await clock.move_to(datetime.fromisoformat("2032-03-01T00:05:00+09:00"))
    assert (await run_due_jobs())["close_due_periods"] == 1
    await _finish("2032-01", "failed")
    assert (await run_due_jobs())["close_due_periods"] == 0
    await start_close("2032-01")  # the operator, once the cause is mended
    await _finish("2032-01", "succeeded")
    assert (await run_due_jobs())["close_due_periods"] == 1
    assert await _periods_opened() == ["2032-01", "2032-01", "2032-02"]


async def test_after_a_close_the_scheduler_starts_from_the_month_after_it(db: Settings) -> None:
    """Months before the latest closed one are not looked at again, whatever data they hold."""
    from datetime import datetime

    from models.invoices import BillingRun

    await _line_created("CAF0000009003", "2020-01-15T10:00:00+09:00")
    await BillingRun.create(period="2032-02", status="succeeded", started_at=await clock.now())
    await clock.move_to(datetime.fromisoformat("2032-04-01T00:05:00+09:00"))
    assert (await run_due_jobs())["close_due_periods"] == 1
    assert await _periods_opened() == ["2032-02", "2032-03"]
