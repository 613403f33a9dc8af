"""``/ops/lines/{line_id}``: one line as support staff see it on a subscriber's call — the line,
its IDs (lock, limits, this month's usage), sessions, purchases (paged by cursor), subscriptions,
invoices with their collection state and payments, and the audit trail of all of them — and the
actions each role may take on it, every one with a reason for the audit log.

support: unlock an ID, reset its password (the new one shown on the answer, once), cancel a
subscription; billing: also refund a purchase; admin: also suspend, resume or terminate the line.
Each action checks the role first (403, nothing changed), then that the object is this line's
(404), then the form (4xx naming the problem, the page again, nothing written), and calls the
operation in ``models.operations`` with the staff member as the actor.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web
from tortoise.expressions import Q

from api.merchant_site.pager import page_links
from api.ops_site.access import StaffPermission, acting, reason_of, require
from api.paging import keyset_page
from api.site.pages import render, see_other
from billing.errors import Conflict, InvalidRequest, NotFound
from billing.periods import period_of
from billing.states import SubscriptionStatus
from models.accounts import SubscriberAccount
from models.audit_log import AuditEntry
from models.base import fits_id_column
from models.charges import AccountUsage, Charge, LineUsage
from models.clock import clock
from models.invoices import Collection, Invoice
from models.lines import Line, LineSession
from models.merchants import Merchant
from models.operations import charges as charge_ops
from models.operations import lines as line_ops
from models.subscriptions import Subscription

__all__ = ["DONE", "routes"]

routes = web.RouteTableDef()
PURCHASES_PER_PAGE = 20
IDS_SHOWN = 20  # five live IDs at most, and the closed ones before them
OPEN_SESSIONS_SHOWN = 50
PAST_SESSIONS_SHOWN = 20
SUBSCRIPTIONS_SHOWN = 50
INVOICES_SHOWN = 24
PAYMENTS_SHOWN = 100
AUDIT_SHOWN = 100
REFUNDED_CHARGES_READ = 200  # refunded charges whose audit entries join the trail
MAX_AMOUNT_DIGITS = 9
STAFF_CANCEL = "staff"  # the subscription's cancel_reason code when staff cancel it
LIVE_SUBSCRIPTIONS = (SubscriptionStatus.REQUIRES_CONFIRMATION, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)
# What the page says after an action (``?done=``); anything else says nothing.
DONE = ("unlocked", "refunded", "canceled", "suspended", "resumed", "terminated")


async def _audit_trail(
    line: Line, accounts: list[SubscriberAccount], charge_ids: list[str], subscription_ids: list[str]
) -> list[AuditEntry]:
    """The newest audit entries about the line, its IDs, the charges read and its subscriptions."""
    wanted = Q(target_type="line", target_id=line.line_id)
    if accounts:
        wanted |= Q(target_type="account", target_id__in=[account.login_id for account in accounts])
        wanted |= Q(target_type="subscriber_account", target_id__in=[account.id for account in accounts])
    if charge_ids:
        wanted |= Q(target_type="charge", target_id__in=charge_ids)
    if subscription_ids:
        wanted |= Q(target_type="subscription", target_id__in=subscription_ids)
    return await AuditEntry.filter(wanted).order_by("-at", "-id").limit(AUDIT_SHOWN)


async def _line_page(request: web.Request, line: Line, *, status: int = 200, **context: Any) -> web.Response:
    """The line's page; ``context`` adds an action's problem, its form values or a new password."""
    now = await clock.now()
    period = period_of(now)
    accounts = (
        await SubscriberAccount.filter(line_id=line.line_id).order_by("-status", "slot", "created_at").limit(IDS_SHOWN)
    )
    usage = dict(
        await AccountUsage.filter(account_id__in=[account.id for account in accounts], period=period).values_list(
            "account_id", "amount"
        )
    )
    line_usage = await LineUsage.get_or_none(line_id=line.line_id, period=period)
    open_sessions = (
        await LineSession.filter(line_id=line.line_id, ended_at=None).order_by("-started_at").limit(OPEN_SESSIONS_SHOWN)
    )
    past_sessions = (
        await LineSession.filter(line_id=line.line_id, ended_at__not_isnull=True)
        .order_by("-started_at")
        .limit(PAST_SESSIONS_SHOWN)
    )
    errors: dict[str, str] = dict(context.pop("errors", {}))
    after, before = request.query.get("after") or None, request.query.get("before") or None
    try:
        purchases = await keyset_page(
            Charge.filter(line_id=line.line_id), after=after, before=before, limit=PURCHASES_PER_PAGE
        )
    except InvalidRequest:
        errors.setdefault("action", "cursor_invalid")
        status = max(status, 400)
        purchases = await keyset_page(Charge.filter(line_id=line.line_id), limit=PURCHASES_PER_PAGE)
    links = page_links(request, purchases)
    subscriptions = (
        await Subscription.filter(line_id=line.line_id).order_by("-created_at", "-id").limit(SUBSCRIPTIONS_SHOWN)
    )
    invoices = await Invoice.filter(line_id=line.line_id).order_by("-period").limit(INVOICES_SHOWN)
    payments = (
        await Collection.filter(invoice_id__in=[invoice.id for invoice in invoices])
        .order_by("-paid_at", "-id")
        .limit(PAYMENTS_SHOWN)
        if invoices
        else []
    )
    refunded = (
        await Charge.filter(line_id=line.line_id, refunded_amount__gt=0)
        .order_by("-created_at")
        .limit(REFUNDED_CHARGES_READ)
        .values_list("id", flat=True)
    )
    charge_ids = list(dict.fromkeys([*(charge.id for charge in purchases.rows), *(str(i) for i in refunded)]))
    trail = await _audit_trail(line, accounts, charge_ids, [subscription.id for subscription in subscriptions])
    merchant_ids = {row.merchant_id for row in purchases.rows} | {row.merchant_id for row in subscriptions}
    names = dict(await Merchant.filter(id__in=list(merchant_ids)).values_list("id", "name")) if merchant_ids else {}
    done = request.query.get("done", "")
    page = {
        "line": line,
        "period": period,
        "now": now,
        "accounts": accounts,
        "logins": {account.id: account.login_id for account in accounts},
        "usage": usage,
        "line_usage": line_usage.amount if line_usage else 0,
        "open_sessions": open_sessions,
        "past_sessions": past_sessions,
        "purchases": purchases.rows,
        "newer_url": links["previous_url"],
        "older_url": links["next_url"],
        "subscriptions": subscriptions,
        "live_subscriptions": LIVE_SUBSCRIPTIONS,
        "invoices": invoices,
        "invoice_periods": {invoice.id: invoice.period for invoice in invoices},
        "payments": payments,
        "trail": trail,
        "names": names,
        "done": done if done in DONE else "",
        "errors": errors,
        "form": {},
        "target": "",
        "new_password": None,
        "reset_login": "",
        **context,
    }
    return await render(request, "ops/line.html", page, status=status)


@routes.get("/ops/lines/{line_id}")
async def line_page(request: web.Request) -> web.StreamResponse:
    """Everything about one line on one page (an unknown line: 404)."""
    require(request, StaffPermission.READ)
    line = await line_ops.find_line(request.match_info["line_id"])
    return await _line_page(request, line)


async def _acting_on(request: web.Request, permission: StaffPermission) -> tuple[Line, Mapping[str, Any]]:
    """The role checked (403), the line found (404) and the posted form."""
    require(request, permission)
    line = await line_ops.find_line(request.match_info["line_id"])
    return line, await request.post()


async def _problem(
    request: web.Request, line: Line, problem: InvalidRequest | Conflict | NotFound, *, target: str, **context: Any
) -> web.Response:
    """The line's page again with ``problem`` named (its status), for the action on ``target``."""
    errors = {"action": problem.code}
    if problem.param in ("reason", "amount"):
        errors[problem.param] = problem.code
    return await _line_page(request, line, status=problem.status, errors=errors, target=target, **context)


def _not_this_lines(kind: str) -> NotFound:
    """Another line's object (or none at all) answers 404 on this line's page."""
    return NotFound(f"No such {kind} on this line.", param=kind, code="not_this_line")


async def _account_of(line: Line, account_id: str) -> SubscriberAccount:
    account = (
        await SubscriberAccount.get_or_none(id=account_id, line_id=line.line_id) if fits_id_column(account_id) else None
    )
    if account is None:
        raise _not_this_lines("account")
    return account


async def _charge_of(line: Line, charge_id: str) -> Charge:
    charge = await Charge.get_or_none(id=charge_id, line_id=line.line_id) if fits_id_column(charge_id) else None
    if charge is None:
        raise _not_this_lines("charge")
    return charge


async def _subscription_of(line: Line, subscription_id: str) -> None:
    if not fits_id_column(subscription_id) or not await Subscription.exists(id=subscription_id, line_id=line.line_id):
        raise _not_this_lines("subscription")


def _amount_of(text: str) -> int:
    """A refund's amount: a whole number of yen, 1 or more, at most 9 digits (400 otherwise)."""
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_AMOUNT_DIGITS and int(text) > 0):
        raise InvalidRequest("amount must be a whole number of yen.", param="amount", code="invalid_amount")
    return int(text)


@routes.post("/ops/lines/{line_id}/ids/{account_id}/unlock")
async def unlock(request: web.Request) -> web.StreamResponse:
    """Lift an ID's lock and forget its failed attempts (support)."""
    line, form = await _acting_on(request, StaffPermission.SUPPORT)
    account_id = request.match_info["account_id"]
    try:
        account = await _account_of(line, account_id)
        await line_ops.unlock_account(account.login_id, actor=acting(request), reason=reason_of(form))
    except (InvalidRequest, Conflict, NotFound) as problem:
        return await _problem(request, line, problem, target=account_id)
    return see_other(f"/ops/lines/{line.line_id}?done=unlocked")


@routes.post("/ops/lines/{line_id}/ids/{account_id}/reset_password")
async def reset_password(request: web.Request) -> web.StreamResponse:
    """A new generated password for the ID (support), shown on this answer only; it lifts a lock."""
    line, form = await _acting_on(request, StaffPermission.SUPPORT)
    account_id = request.match_info["account_id"]
    try:
        account = await _account_of(line, account_id)
        _, password = await line_ops.reset_password(account.login_id, actor=acting(request), reason=reason_of(form))
    except (InvalidRequest, Conflict, NotFound) as problem:
        return await _problem(request, line, problem, target=account_id)
    return await _line_page(request, line, new_password=password, reset_login=account.login_id)


@routes.post("/ops/lines/{line_id}/charges/{charge_id}/refund")
async def refund(request: web.Request) -> web.StreamResponse:
    """Refund all or part of one of the line's purchases (billing); the merchant hears ``charge.refunded``."""
    line, form = await _acting_on(request, StaffPermission.MONEY)
    charge_id = request.match_info["charge_id"]
    amount = str(form.get("amount", "")).strip()
    values = {"amount": amount}
    try:
        charge = await _charge_of(line, charge_id)
        reason = reason_of(form)
        await charge_ops.refund_charge(
            charge.merchant_id, charge.id, amount=_amount_of(amount), reason=reason, actor=acting(request)
        )
    except (InvalidRequest, Conflict, NotFound) as problem:
        return await _problem(request, line, problem, target=charge_id, form=values)
    return see_other(f"/ops/lines/{line.line_id}?done=refunded")


@routes.post("/ops/lines/{line_id}/subscriptions/{subscription_id}/cancel")
async def cancel_subscription(request: web.Request) -> web.StreamResponse:
    """Cancel one of the line's subscriptions (support): no further renewals."""
    line, form = await _acting_on(request, StaffPermission.SUPPORT)
    subscription_id = request.match_info["subscription_id"]
    try:
        await _subscription_of(line, subscription_id)
        await charge_ops.cancel_subscription(
            subscription_id, merchant_id=None, reason=STAFF_CANCEL, note=reason_of(form), actor=acting(request)
        )
    except (InvalidRequest, Conflict, NotFound) as problem:
        return await _problem(request, line, problem, target=subscription_id)
    return see_other(f"/ops/lines/{line.line_id}?done=canceled")


async def _change_status(request: web.Request, done: str) -> web.StreamResponse:
    """Suspend, resume or terminate the line (admin)."""
    line, form = await _acting_on(request, StaffPermission.MANAGE)
    change = {
        "suspended": line_ops.suspend_line,
        "resumed": line_ops.resume_line,
        "terminated": line_ops.terminate_line,
    }
    try:
        await change[done](line.line_id, actor=acting(request), reason=reason_of(form))
    except (InvalidRequest, Conflict, NotFound) as problem:
        return await _problem(request, line, problem, target=line.line_id)
    return see_other(f"/ops/lines/{line.line_id}?done={done}")


@routes.post("/ops/lines/{line_id}/suspend")
async def suspend(request: web.Request) -> web.StreamResponse:
    """An active line can buy nothing until it is resumed (admin)."""
    return await _change_status(request, "suspended")


@routes.post("/ops/lines/{line_id}/resume")
async def resume(request: web.Request) -> web.StreamResponse:
    """A suspended line may buy again (admin)."""
    return await _change_status(request, "resumed")


@routes.post("/ops/lines/{line_id}/terminate")
async def terminate(request: web.Request) -> web.StreamResponse:
    """Final (admin): the line's sessions end and its subscriptions are canceled."""
    return await _change_status(request, "terminated")
