"""The figures of a merchant's home page (product.md §10): this month so far, daily sales and
refunds over the last 60 days, and each closed month's billed → collected → paid out.

Every read is bounded and goes by an index, and sums in SQL (never row by row in Python):
- sales and cancellations: charges by (merchant_id, status, created_at) over the days shown;
  a charge counts on the day it was decided (the day it succeeded, as its period does), and is
  decided at most ``DECISION_SLACK`` after it was created (its confirmation window);
- refunds: ``refunds`` has no merchant column and no date index, so the charges refunded in the
  window are found by their ``charge.refunded`` events (events (merchant_id, created_at); the
  event is written with the refund, at the same instant), then their refunds by (charge_id);
- subscriptions canceled: their ``subscription.canceled`` events, the same way;
- closed months: the periods of succeeded billing runs (one row a month), this merchant's
  payouts by (merchant_id, period); a closed month not paid out yet is summed from its charges
  (by created_at) and their invoice items (by charge_id).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from billing.periods import JST, period_end, period_of, period_start
from billing.states import ChargeStatus, RunStatus, SubscriptionStatus
from models.charges import Charge
from models.events import Event
from models.invoices import BillingRun
from models.payouts import Payout
from models.sql import Dialect, execute, literal
from models.subscriptions import Subscription

__all__ = [
    "DAYS",
    "MONTHS",
    "ClosedMonth",
    "DayFigures",
    "MonthSoFar",
    "closed_months",
    "daily_figures",
    "month_so_far",
]

DAYS = 60
MONTHS = 12
# A charge is decided within its 30-minute confirmation window and the auth worker's turn;
# a day more than covers both, so a created_at range this much wider finds every decision.
DECISION_SLACK = timedelta(days=1)

SALES_BY_DAY = """
SELECT {day} AS day, COUNT(*) AS n, SUM(c.amount) AS amount
FROM charges c
WHERE c.merchant_id = %(merchant)s AND c.status = {succeeded}
  AND c.created_at >= %(created_from:timestamptz)s AND c.decided_at >= %(since:timestamptz)s
GROUP BY 1
"""
REFUNDS_BY_DAY = """
SELECT {day} AS day, COUNT(*) AS n, SUM(r.amount) AS amount
FROM refunds r
WHERE r.charge_id IN (
    SELECT e.object_id FROM events e
    WHERE e.merchant_id = %(merchant)s AND e.type = {refunded} AND e.created_at >= %(since:timestamptz)s
  )
  AND r.created_at >= %(since:timestamptz)s AND r.status = {succeeded}
GROUP BY 1
"""
BILLED_BY_PERIOD = """
SELECT c.period AS period, SUM(i.amount) AS billed, SUM(i.collected_amount) AS collected
FROM charges c JOIN invoice_items i ON i.charge_id = c.id
WHERE c.merchant_id = %(merchant)s AND c.status = {succeeded}
  AND c.created_at >= %(created_from:timestamptz)s AND c.created_at < %(created_to:timestamptz)s
  AND {periods}
GROUP BY c.period
"""


@dataclass(frozen=True)
class DayFigures:
    """One JST day: succeeded purchases and refunds made that day (counts and yen)."""

    day: date
    purchases: int = 0
    sales: int = 0
    refunds: int = 0
    refunded: int = 0


@dataclass(frozen=True)
class MonthSoFar:
    """This JST month up to now."""

    period: str
    purchases: int
    sales: int
    refunds: int
    refunded: int
    canceled_charges: int
    canceled_subscriptions: int
    active_subscriptions: int

    @property
    def cancellations(self) -> int:
        """Charges canceled and subscriptions canceled this month."""
        return self.canceled_charges + self.canceled_subscriptions


@dataclass(frozen=True)
class ClosedMonth:
    """One closed period: what was billed, collected, and paid out (None: no payout yet)."""

    period: str
    billed: int
    collected: int
    paid_out: int | None
    payout_id: str | None = None
    payout_status: str | None = None


def _start_of(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=JST).astimezone(UTC)


async def daily_figures(merchant_id: str, now: datetime, days: int = DAYS) -> list[DayFigures]:
    """The last ``days`` JST days up to today, oldest first, days without anything included."""
    today = now.astimezone(JST).date()
    first = today - timedelta(days=days - 1)
    since = _start_of(first)
    dialect = Dialect.for_connection()
    params = {"merchant": merchant_id, "since": since, "created_from": since - DECISION_SLACK}
    succeeded = literal(ChargeStatus.SUCCEEDED)
    sales = await execute(SALES_BY_DAY.format(day=dialect.jst_day("c.decided_at"), succeeded=succeeded), params)
    refunds = await execute(
        REFUNDS_BY_DAY.format(
            day=dialect.jst_day("r.created_at"), refunded=literal("charge.refunded"), succeeded=literal("succeeded")
        ),
        params,
    )
    sold = {str(row["day"]): (int(row["n"]), int(row["amount"])) for row in sales}
    given = {str(row["day"]): (int(row["n"]), int(row["amount"])) for row in refunds}
    result = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        purchases, amount = sold.get(day.isoformat(), (0, 0))
        refund_count, refunded = given.get(day.isoformat(), (0, 0))
        result.append(DayFigures(day, purchases, amount, refund_count, refunded))
    return result


async def month_so_far(merchant_id: str, now: datetime, days: list[DayFigures]) -> MonthSoFar:
    """This month's figures; purchases and refunds are the month's days of ``days`` (which
    must reach back to the 1st: 60 days always do), so the figures and the chart agree."""
    period = period_of(now)
    start = period_start(period)
    this_month = [d for d in days if d.day >= start.astimezone(JST).date()]
    canceled_charges = await Charge.filter(
        merchant_id=merchant_id,
        status=ChargeStatus.CANCELED,
        created_at__gte=start - DECISION_SLACK,
        decided_at__gte=start,
    ).count()
    canceled_subscriptions = await Event.filter(
        merchant_id=merchant_id, type="subscription.canceled", created_at__gte=start
    ).count()
    # (merchant_id, created_at) is the subscriptions' only merchant index: this count reads every
    # subscription of the merchant (an index on (merchant_id, status) would make it index-only).
    active = await Subscription.filter(merchant_id=merchant_id, status=SubscriptionStatus.ACTIVE).count()
    return MonthSoFar(
        period=period,
        purchases=sum(d.purchases for d in this_month),
        sales=sum(d.sales for d in this_month),
        refunds=sum(d.refunds for d in this_month),
        refunded=sum(d.refunded for d in this_month),
        canceled_charges=canceled_charges,
        canceled_subscriptions=canceled_subscriptions,
        active_subscriptions=active,
    )


async def closed_months(merchant_id: str, months: int = MONTHS) -> list[ClosedMonth]:
    """The last ``months`` closed periods, oldest first: a paid-out period's figures are its
    payout's (billed, collected, net); a period not paid out yet is summed from its items."""
    periods = sorted(
        str(period)
        for period in await BillingRun.filter(status=RunStatus.SUCCEEDED)
        .order_by("-period")
        .distinct()
        .limit(months)
        .values_list("period", flat=True)
    )
    payouts = {p.period: p for p in await Payout.filter(merchant_id=merchant_id, period__in=periods)}
    waiting = [p for p in periods if p not in payouts]
    live: dict[str, tuple[int, int]] = {}
    if waiting:
        dialect = Dialect.for_connection()
        rows = await execute(
            BILLED_BY_PERIOD.format(
                succeeded=literal(ChargeStatus.SUCCEEDED), periods=dialect.one_of("c.period", "periods")
            ),
            {
                "merchant": merchant_id,
                "created_from": period_start(waiting[0]) - DECISION_SLACK,
                "created_to": period_end(waiting[-1]),
                "periods": waiting,
            },
        )
        live = {str(row["period"]): (int(row["billed"]), int(row["collected"])) for row in rows}
    result = []
    for period in periods:
        payout = payouts.get(period)
        if payout is not None:
            result.append(
                ClosedMonth(period, payout.billed, payout.collected, payout.net, payout.id, payout.status.value)
            )
        else:
            billed, collected = live.get(period, (0, 0))
            result.append(ClosedMonth(period, billed, collected, None))
    return result
