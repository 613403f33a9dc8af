"""Queue ``payouts``: what each merchant is paid for a closed period (product.md §7).

``generate_payouts`` makes at most one payout per merchant and period (the database's unique
key holds it), each in its own transaction: it gathers the figures, lets
``billing.payouts.compute_payout`` decide, and writes the payout, its statement lines and the
items' ``paid_out_amount``, so a collection is paid out once, in the first payout after it.
"""

from __future__ import annotations

from datetime import datetime

import dramatiq
import structlog
from tortoise.transactions import in_transaction

from billing.calendar import payout_date
from billing.errors import Conflict, InvalidRequest
from billing.fees import FeePlan as Plan
from billing.fees import plan_for
from billing.payouts import PayoutInput, compute_payout
from billing.periods import period_of, previous_period, valid_period
from billing.zengin import to_zengin_kana
from billing.zengin_records import Payee, Payer, transfer_file
from models.charges import Charge
from models.clock import clock
from models.events import Event
from models.invoices import BillingRun, Invoice, InvoiceItem, ItemKind
from models.ledger import JournalEntry
from models.merchants import BankAccount, FeePlan, Merchant
from models.outbox import send
from models.payouts import Payout, PayoutLine
from queues import ACTOR_OPTIONS

__all__ = ["generate_due_payouts", "generate_payouts", "request_payouts", "transfer_file_for"]

log = structlog.get_logger("matomete.workers.payouts")


async def request_payouts(period: str) -> None:
    """Queue the payouts of a closed period (refused before the period is closed)."""
    if not valid_period(period):
        raise InvalidRequest("period must be YYYY-MM.", param="period")
    if not await BillingRun.exists(period=period, status="succeeded"):
        raise Conflict(f"{period} has not been closed yet.", param="period", code="period_not_closed")
    await send(generate_payouts, period)


@dramatiq.actor(queue_name="payouts", **ACTOR_OPTIONS)
async def generate_payouts(period: str) -> None:
    """One payout per merchant with anything to pay or settle for ``period``; repeats add nothing."""
    merchants = set(
        await InvoiceItem.filter(invoice__period=period, merchant_id__not_isnull=True).values_list(
            "merchant_id", flat=True
        )
    )
    merchants |= set(
        await InvoiceItem.filter(kind=ItemKind.CHARGE, invoice__period__lt=period)
        .filter(collected_amount__gt=0)
        .values_list("merchant_id", flat=True)
    )
    made = 0
    for merchant_id in sorted(m for m in merchants if m):
        made += await _payout(str(merchant_id), period)
    log.info("payouts_generated", period=period, payouts=made)


async def _payout(merchant_id: str, period: str) -> int:
    async with in_transaction():
        merchant = await Merchant.select_for_update().get(id=merchant_id)
        if await Payout.exists(merchant_id=merchant_id, period=period):
            return 0
        items = await InvoiceItem.select_for_update().filter(merchant_id=merchant_id, invoice__period=period)
        charges = [i for i in items if i.kind == ItemKind.CHARGE]
        credit_items = [i for i in items if i.kind == ItemKind.CREDIT and i.paid_out_amount == 0]
        late = await InvoiceItem.select_for_update().filter(
            merchant_id=merchant_id, kind=ItemKind.CHARGE, invoice__period__lt=period
        )
        late = [i for i in late if i.collected_amount > i.paid_out_amount]
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
                postings=[
                    ("payable:merchant", merchant_id, figures.fee + figures.setup_fee),
                    ("revenue:merchant_fee", None, -figures.fee),
                    ("revenue:setup_fee", None, -figures.setup_fee),
                ],
            )
        await Event.record("payout.created", merchant_id=merchant_id, obj=payout.to_api())
    return 1


async def generate_due_payouts(now: datetime) -> int:
    """Scheduler job: once month P+2 has begun, the payouts of a closed P are made (once)."""
    period = previous_period(previous_period(period_of(now)))
    async with in_transaction():
        runs = await BillingRun.select_for_update().filter(period=period, status="succeeded")
        if not runs or any(run.payouts_requested_at for run in runs) or await Payout.exists(period=period):
            return 0
        runs[0].payouts_requested_at = now
        await runs[0].save(update_fields=["payouts_requested_at"])
        await send(generate_payouts, period)
    return 1


async def transfer_file_for(period: str, payer: tuple[str, str, str, int, str, str]) -> bytes:
    """The Zengin 総合振込 file of ``period``'s payouts with something to pay."""
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
