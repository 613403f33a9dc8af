"""A subscriber on their own my page (product.md §10): signing in under a purchase's own rules
(the same lock counter, and only from the ID's own line), what the ID bought in a month against
its limit, its line bill's items that are its own, its subscriptions, and its password.

Everything is scoped to one ``SubscriberAccount``: an invoice is per line (every ID of the
household), so only the items whose charge (or refunded charge) is this ID's are ever read out.
Password hashing and verification run off the event loop and never inside a transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tortoise.expressions import Q
from tortoise.functions import Count, Sum
from tortoise.transactions import in_transaction

from billing.errors import InvalidRequest, NotFound, PermissionDenied
from billing.purchases import PurchaseFacts, decide_my_page_sign_in
from billing.sign_in import SignInOutcome, password_problem
from billing.states import ChargeStatus, SubscriptionStatus
from models.accounts import AccountStatus, SubscriberAccount
from models.audit_log import Actor, audit
from models.base import fits_id_column
from models.charges import AccountUsage, Charge, FailureCode
from models.clock import clock
from models.invoices import Invoice, InvoiceItem, ItemKind
from models.lines import Line, LineStatus
from models.merchants import Merchant
from models.operations.purchases import address_in_open_session
from models.operations.site_users import MY_SITE, count_sign_in, end_user_sessions
from models.passwords import hash_password, store_rehash, verify_or_waste, verify_password
from models.subscriptions import Subscription

__all__ = [
    "MAX_CHARGES_SHOWN",
    "Bill",
    "MerchantGroup",
    "Month",
    "SubscriberSignIn",
    "change_subscriber_password",
    "find_my_subscription",
    "load_subscriber",
    "my_bill",
    "my_month",
    "my_subscriptions",
    "sign_in_subscriber",
    "subscriber_actor",
]

LOGIN_ID_LENGTH = 64
# A month of one ID is bounded by its limit; the list shows the newest this many, the totals all.
MAX_CHARGES_SHOWN = 300
LIVE = (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)


def subscriber_actor(account_id: str, request_id: str | None) -> Actor:
    """Who the audit log names for what a subscriber does on their my page."""
    return Actor(f"subscriber:{account_id}", request_id)


@dataclass(frozen=True)
class SubscriberSignIn:
    """``failure_code`` is a purchase's (``invalid_credentials``, ``account_locked``,
    ``line_inactive``, ``line_ineligible``, ``line_mismatch``), None with ``account`` when signed in."""

    failure_code: str | None
    account: SubscriberAccount | None = None


async def sign_in_subscriber(
    login_id: str, password: str, *, client_address: str | None, request_id: str | None
) -> SubscriberSignIn:
    """Check the ID and password, the lock, the line and the request's address, in a purchase's
    order and on its counter (five wrong passwords here or on purchases lock the ID for 30 minutes),
    and record the attempt."""
    login = login_id.strip()
    found = (
        await SubscriberAccount.get_or_none(login_id=login, status=AccountStatus.ACTIVE)
        if 0 < len(login) <= LOGIN_ID_LENGTH
        else None
    )
    # Outside any transaction: argon2 takes its time on a thread while no row is locked.
    check = await verify_or_waste(found.password_hash if found else None, password)
    if found is None:
        return SubscriberSignIn(FailureCode.INVALID_CREDENTIALS.value)
    async with in_transaction():
        account = await SubscriberAccount.select_for_update().get_or_none(id=found.id, status=AccountStatus.ACTIVE)
        if account is None:
            return SubscriberSignIn(FailureCode.INVALID_CREDENTIALS.value)
        line = await Line.get(line_id=account.line_id)
        decision = decide_my_page_sign_in(
            PurchaseFacts(
                now=await clock.now(),
                amount=0,
                account_found=True,
                # A password changed while this one was checked does not count as right.
                password_ok=check.ok and account.password_hash == found.password_hash,
                failed_attempts=account.failed_attempts,
                locked_until=account.locked_until,
                line_active=line.status == LineStatus.ACTIVE,
                line_eligible=line.eligible,
                address_in_open_session=await address_in_open_session(line, client_address),
            )
        )
        account.failed_attempts, account.locked_until = decision.failed_attempts, decision.locked_until
        rehashed = store_rehash(account, check) if decision.succeeded else []
        await account.save(update_fields=["failed_attempts", "locked_until", *rehashed])
        outcome = decision.failure_code or "signed_in"
        await audit(
            subscriber_actor(account.id, request_id),
            f"my_sign_in.{outcome}",
            "subscriber_account",
            account.id,
            address=client_address,
        )
    return SubscriberSignIn(decision.failure_code, account if decision.succeeded else None)


async def load_subscriber(account_id: str) -> SubscriberAccount | None:
    """The active ID ``account_id``, or None (its my-page session then ends)."""
    if not fits_id_column(account_id):
        return None
    return await SubscriberAccount.get_or_none(id=account_id, status=AccountStatus.ACTIVE)


@dataclass(frozen=True)
class MerchantGroup:
    """One merchant's share of the ID's month: its total and (the newest of) its charges."""

    merchant_id: str
    merchant_name: str
    count: int
    total: int
    refunded: int
    charges: list[Charge] = field(default_factory=list)


@dataclass(frozen=True)
class Month:
    """What one ID bought in one month: charges that succeeded (purchases and renewals) by merchant."""

    period: str
    groups: list[MerchantGroup]
    count: int
    total: int
    refunded: int
    shown: int
    spent: int  # the month's usage row: what the limit checks count

    @property
    def complete(self) -> bool:
        """True when every charge of the month is listed (not only the newest)."""
        return self.shown >= self.count


def _charges_of(account: SubscriberAccount, period: str) -> Any:
    # line_id first: the (line_id, period) index finds the month; the ID narrows it to its own.
    return Charge.filter(line_id=account.line_id, period=period, account_id=account.id, status=ChargeStatus.SUCCEEDED)


async def my_month(account: SubscriberAccount, period: str) -> Month:
    """The ID's succeeded charges of ``period`` grouped by merchant, with totals and its usage."""
    sums = (
        await _charges_of(account, period)
        .annotate(total=Sum("amount"), refunded=Sum("refunded_amount"), count=Count("id"))
        .group_by("merchant_id")
        .values("merchant_id", "total", "refunded", "count")
    )
    newest = await _charges_of(account, period).order_by("-created_at", "-id").limit(MAX_CHARGES_SHOWN)
    names = dict(await Merchant.filter(id__in=[row["merchant_id"] for row in sums]).values_list("id", "name"))
    groups = [
        MerchantGroup(
            merchant_id=row["merchant_id"],
            merchant_name=str(names.get(row["merchant_id"], "")),
            count=int(row["count"]),
            total=int(row["total"] or 0),
            refunded=int(row["refunded"] or 0),
            charges=[charge for charge in newest if charge.merchant_id == row["merchant_id"]],
        )
        for row in sums
    ]
    groups.sort(key=lambda group: (-group.total, group.merchant_name))
    usage = await AccountUsage.get_or_none(account_id=account.id, period=period)
    return Month(
        period=period,
        groups=groups,
        count=sum(group.count for group in groups),
        total=sum(group.total for group in groups),
        refunded=sum(group.refunded for group in groups),
        shown=len(newest),
        spent=usage.amount if usage else 0,
    )


@dataclass(frozen=True)
class Bill:
    """This ID's items on its line's bill for a closed month (charges, and credits for refunds)."""

    invoice: Invoice
    items: list[InvoiceItem]
    merchant_names: dict[str, str]

    @property
    def total(self) -> int:
        """What this ID's items add up to on the bill (the line's fee and other IDs' are not here)."""
        return sum(item.amount for item in self.items)


async def my_bill(account: SubscriberAccount, period: str) -> Bill | None:
    """The line's invoice for ``period`` read down to this ID's own items; None before the close."""
    invoice = await Invoice.get_or_none(line_id=account.line_id, period=period)
    if invoice is None:
        return None
    items = (
        await InvoiceItem.filter(invoice_id=invoice.id, kind__in=(ItemKind.CHARGE, ItemKind.CREDIT))
        .filter(Q(charge__account_id=account.id) | Q(refund__charge__account_id=account.id))
        .order_by("position")
    )
    merchant_ids = {item.merchant_id for item in items if item.merchant_id}
    names = dict(await Merchant.filter(id__in=list(merchant_ids)).values_list("id", "name"))
    return Bill(invoice=invoice, items=list(items), merchant_names={str(k): str(v) for k, v in names.items()})


async def my_subscriptions(account: SubscriberAccount) -> list[Subscription]:
    """The ID's subscriptions still renewing (active or past due), oldest first, with merchants."""
    return (
        await Subscription.filter(line_id=account.line_id, account_id=account.id, status__in=LIVE)
        .order_by("created_at", "id")
        .prefetch_related("merchant")
    )


async def find_my_subscription(account: SubscriberAccount, subscription_id: str) -> Subscription:
    """One of the ID's own subscriptions; any other (another ID's, or none) is ``NotFound``."""
    found = (
        await Subscription.get_or_none(id=subscription_id, account_id=account.id).prefetch_related("merchant")
        if fits_id_column(subscription_id)
        else None
    )
    if found is None:
        raise NotFound(f"No such subscription: {subscription_id}.", param="id")
    return found


async def change_subscriber_password(
    account: SubscriberAccount, *, current: str, new: str, keep_session: str | None, actor: Actor
) -> None:
    """A new password after the current one is checked; the ID's other my-page sessions end.

    A wrong current password counts on the ID's lock counter like a wrong one at sign-in or at a
    purchase (a session left open must not become a way to guess the password without limit);
    a locked ID changes nothing. A weak new password changes nothing and counts nothing."""
    current_ok = await verify_password(account.password_hash, current)
    problem = password_problem(new, login=account.login_id)
    new_hash = await hash_password(new) if current_ok and problem is None else None
    async with in_transaction():
        locked = await SubscriberAccount.select_for_update().get(id=account.id)
        now = await clock.now()
        # A password changed meanwhile (another session) makes this one's check stale.
        still_current = current_ok and locked.password_hash == account.password_hash
        decision = count_sign_in(locked, password_ok=still_current, now=now)
        if decision.outcome != SignInOutcome.SIGNED_IN:
            await locked.save(update_fields=["failed_attempts", "locked_until"])
            await audit(actor, f"subscriber_account.password_{decision.outcome.value}", "subscriber_account", locked.id)
        elif new_hash is not None:
            locked.password_hash, locked.password_changed_at = new_hash, now  # the counter is cleared above
            await locked.save(update_fields=["password_hash", "password_changed_at", "failed_attempts", "locked_until"])
            await end_user_sessions(MY_SITE, locked.id, keep=keep_session)
            await audit(actor, "subscriber_account.password", "subscriber_account", locked.id)
    # Raised after the transaction: a wrong password's count is kept though the change is refused.
    if decision.outcome == SignInOutcome.LOCKED:
        raise PermissionDenied("The ID is locked for 30 minutes.", param="current_password", code="locked")
    if decision.outcome == SignInOutcome.WRONG_PASSWORD:
        raise InvalidRequest("The current password is wrong.", param="current_password", code="wrong_password")
    if new_hash is None:
        raise InvalidRequest("The new password is too weak.", param="new_password", code=problem)
