"""What each merchant is paid for a closed period (product.md §7): generating the payouts,
recording the transfer, and the Zengin 総合振込 file.

A period's payouts are asked for once (``request_payouts``, or the scheduler once the month
after it is over) and made by the payouts worker: at most one payout per merchant and period
(the database's unique key holds it), each in its own transaction. The figures come from
``billing.payouts.compute_payout``, the ledger entries from ``billing.ledger``. Periods are paid
out oldest first for each merchant, because a payout carries the balance of the one before.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from billing.calendar import payout_date
from billing.errors import Conflict, InvalidRequest, NotFound
from billing.fees import FeePlan as Plan
from billing.fees import plan_for
from billing.ledger import fee_postings, payout_postings
from billing.payouts import PayoutInput, compute_payout
from billing.periods import period_of, previous_period, valid_period
from billing.states import RunStatus
from billing.zengin import to_zengin_kana
from billing.zengin_records import Payee, Payer, transfer_file
from models.audit_log import Actor, audit
from models.base import fits_id_column
from models.charges import Charge
from models.clock import clock
from models.events import Event
from models.invoices import BillingRun, Invoice, InvoiceItem, ItemKind
from models.ledger import JournalEntry
from models.merchants import BankAccount, FeePlan, Merchant
from models.outbox import GENERATE_PAYOUTS, send
from models.payouts import Payout, PayoutLine, PayoutStatus

__all__ = [
    "generate_due_payouts",
    "generate_payouts",
    "mark_paid",
    "request_payouts",
    "transfer_file_for",
]


async def request_payouts(period: str, *, actor: Actor, reason: str | None = None) -> None:
    """Queue the payouts of a closed period (refused before the period is closed); generating
    again adds nothing. ``reason``, when a person gives one, goes into the audit entry."""
    if not valid_period(period):
        raise InvalidRequest("period must be YYYY-MM.", param="period")
    async with in_transaction():
        run = await BillingRun.select_for_update().filter(period=period, status=RunStatus.SUCCEEDED).first()
        if run is None:
            raise Conflict(f"{period} has not been closed yet.", param="period", code="period_not_closed")
        if run.payouts_requested_at is None:
            run.payouts_requested_at = await clock.now()
            await run.save(update_fields=["payouts_requested_at"])
        await send(GENERATE_PAYOUTS, period)
        await audit(actor, "payouts.generate", "period", period, **_why(reason))


async def generate_payouts(period: str) -> int:
    """Make the payouts of every period asked for up to ``period``, oldest first (those already
    made are skipped): a merchant's payout carries the balance of its previous one, so a later
    period is never paid out before an earlier one that was asked for. Answers how many payouts
    were made."""
    periods = sorted(
        {
            run.period
            for run in await BillingRun.filter(
                status=RunStatus.SUCCEEDED, payouts_requested_at__not_isnull=True, period__lte=period
            )
        }
        | {period}
    )
    made = 0
    for each in periods:
        for merchant_id in await _merchants_to_pay(each):
            made += await _payout(merchant_id, each)
    return made


async def _merchants_to_pay(period: str) -> list[str]:
    """Merchants with items on the period's bills, or with earlier items collected and not yet
    paid out (found by SQL, not by reading every earlier item)."""
    merchants = set(
        await InvoiceItem.filter(invoice__period=period, merchant_id__not_isnull=True)
        .distinct()
        .values_list("merchant_id", flat=True)
    )
    merchants |= set(
        await InvoiceItem.filter(
            kind=ItemKind.CHARGE, invoice__period__lt=period, collected_amount__gt=F("paid_out_amount")
        )
        .distinct()
        .values_list("merchant_id", flat=True)
    )
    return sorted(str(m) for m in merchants if m)


async def _payout(merchant_id: str, period: str) -> int:
    async with in_transaction():
        merchant = await Merchant.select_for_update().get(id=merchant_id)
        if await Payout.exists(merchant_id=merchant_id, period=period):
            return 0
        items = await InvoiceItem.select_for_update().filter(merchant_id=merchant_id, invoice__period=period)
        charges = [i for i in items if i.kind == ItemKind.CHARGE]
        credit_items = [i for i in items if i.kind == ItemKind.CREDIT and i.paid_out_amount == 0]
        # Only the earlier items this payout pays: collected since they were last paid out.
        late = await InvoiceItem.select_for_update().filter(
            merchant_id=merchant_id,
            kind=ItemKind.CHARGE,
            invoice__period__lt=period,
            collected_amount__gt=F("paid_out_amount"),
        )
        previous = await Payout.filter(merchant_id=merchant_id, period__lt=period).order_by("-period").first()
        if not charges and not credit_items and not late and (previous is None or not previous.carried_forward):
            return 0
        invoice_lines = await Invoice.filter(id__in={i.invoice_id for i in charges}).values_list("line_id", flat=True)
        plans = [
            Plan(effective_from=p.effective_from, rate=p.rate, threshold=p.threshold, per_line_amount=p.per_line_amount)
            for p in await FeePlan.filter(merchant_id=merchant_id)
        ]
        figures = compute_payout(
            PayoutInput(
                billed=sum(i.amount for i in charges),
                lines=len(set(invoice_lines)),
                plan=plan_for(plans, period),
                setup_fee=merchant.setup_fee if previous is None else 0,
                collected=sum(i.collected_amount - i.paid_out_amount for i in charges),
                late_collected=sum(i.collected_amount - i.paid_out_amount for i in late),
                credits=sum(i.amount for i in credit_items),
                carried_in=previous.carried_forward if previous else 0,
            )
        )
        now = await clock.now()
        payout = await Payout.create(
            merchant=merchant,
            period=period,
            billed=sum(i.amount for i in charges),
            lines=len(set(invoice_lines)),
            fee=figures.fee,
            fee_rule=figures.fee_rule,
            setup_fee=figures.setup_fee,
            collected=figures.collected,
            adjustments=figures.adjustments,
            carried_forward=figures.carried_forward,
            net=figures.net,
            scheduled_date=payout_date(period),
            created_at=now,
        )
        statement = [
            *(
                PayoutLine(
                    payout=payout,
                    kind="collected",
                    item=i,
                    description=i.description,
                    amount=i.collected_amount - i.paid_out_amount,
                )
                for i in charges
                if i.collected_amount > i.paid_out_amount
            ),
            *(
                PayoutLine(
                    payout=payout,
                    kind="late_collected",
                    item=i,
                    description=i.description,
                    amount=i.collected_amount - i.paid_out_amount,
                )
                for i in late
            ),
            *(
                PayoutLine(payout=payout, kind="credit", item=i, description=i.description, amount=i.amount)
                for i in credit_items
            ),
            PayoutLine(payout=payout, kind="fee", description=f"月額利用料 ({figures.fee_rule})", amount=-figures.fee),
        ]
        if figures.setup_fee:
            statement.append(
                PayoutLine(payout=payout, kind="setup_fee", description="工事費", amount=-figures.setup_fee)
            )
        if previous is not None and previous.carried_forward:
            statement.append(
                PayoutLine(
                    payout=payout,
                    kind="carried_in",
                    description=f"{previous.period} 繰越",
                    amount=previous.carried_forward,
                )
            )
        await PayoutLine.bulk_create(statement)
        for item in [*charges, *late]:
            item.paid_out_amount = item.collected_amount
            await item.save(update_fields=["paid_out_amount"])
        for item in credit_items:
            item.paid_out_amount = item.amount
            await item.save(update_fields=["paid_out_amount"])
        settled = [i.charge_id for i in [*charges, *late] if i.charge_id and i.collected_amount >= i.amount]
        await Charge.filter(id__in=settled, payout_id=None).update(payout_id=payout.id)
        if figures.fee or figures.setup_fee:
            await JournalEntry.post(
                kind="fee",
                reference=payout.id,
                occurred_at=now,
                postings=fee_postings(merchant_id, fee=figures.fee, setup_fee=figures.setup_fee),
            )
        await Event.record("payout.created", merchant_id=merchant_id, obj=payout.to_api())
    return 1


async def generate_due_payouts(now: datetime) -> int:
    """Scheduler job: once month P+2 has begun, the payouts of a closed P are asked for (once) —
    every such P not asked for yet, oldest first, so a scheduler down for months catches up."""
    last = previous_period(previous_period(period_of(now)))
    asked = 0
    async with in_transaction():
        runs = await (
            BillingRun.select_for_update()
            .filter(status=RunStatus.SUCCEEDED, payouts_requested_at=None, period__lte=last)
            .order_by("period")
        )
        for run in runs:
            if await BillingRun.filter(period=run.period, payouts_requested_at__not_isnull=True).exists():
                continue  # another close of the same period carried the request
            if await Payout.exists(period=run.period):
                continue  # asked for by hand before the scheduler came to it
            run.payouts_requested_at = now
            await run.save(update_fields=["payouts_requested_at"])
            await send(GENERATE_PAYOUTS, run.period)
            asked += 1
    return asked


def _why(reason: str | None) -> dict[str, str]:
    """The reason a person gave, for the audit entry (none from the ops token)."""
    return {"reason": reason} if reason else {}


async def mark_paid(payout_id: str, *, actor: Actor, reason: str | None = None) -> Payout:
    """Finance confirms the transfer went out; ``payout.paid`` tells the merchant."""
    async with in_transaction():
        payout = await Payout.select_for_update().get_or_none(id=payout_id) if fits_id_column(payout_id) else None
        if payout is None:
            raise NotFound("No such payout.", param="id")
        if payout.status == PayoutStatus.PAID:
            raise Conflict("This payout is recorded as paid already.", code="payout_already_paid")
        payout.status, payout.paid_at = PayoutStatus.PAID, await clock.now()
        await payout.save(update_fields=["status", "paid_at"])
        if payout.net:
            await JournalEntry.post(
                kind="payout",
                reference=payout.id,
                occurred_at=payout.paid_at,
                postings=payout_postings(payout.merchant_id, payout.net),
            )
        await Event.record("payout.paid", merchant_id=payout.merchant_id, obj=payout.to_api())
        await audit(actor, "payout.paid", "payout", payout.id, **_why(reason))
    return payout


async def transfer_file_for(period: str, payer: tuple[str, str, str, int, str, str]) -> bytes:
    """The Zengin 総合振込 file of ``period``'s payouts with something to pay."""
    if not valid_period(period):
        raise InvalidRequest("period must be YYYY-MM.", param="period")
    payouts = await Payout.filter(period=period, net__gt=0).order_by("merchant_id")
    if not payouts:
        raise Conflict(f"{period} has no payout to transfer.", param="period", code="nothing_to_transfer")
    accounts = {a.merchant_id: a for a in await BankAccount.filter(merchant_id__in=[p.merchant_id for p in payouts])}  # type: ignore[attr-defined]
    code, bank, branch, account_type, number, name = payer
    payees = [
        Payee(
            bank_code=accounts[p.merchant_id].bank_code,
            branch_code=accounts[p.merchant_id].branch_code,
            account_type=1 if accounts[p.merchant_id].account_type == "ordinary" else 2,
            account_number=accounts[p.merchant_id].account_number,
            name=accounts[p.merchant_id].holder_kana,
            amount=p.net,
        )
        for p in payouts
    ]
    return transfer_file(
        Payer(
            code=code,
            name=to_zengin_kana(name),
            bank_code=bank,
            branch_code=branch,
            account_type=account_type,
            account_number=number,
        ),
        payouts[0].scheduled_date,
        payees,
    )
