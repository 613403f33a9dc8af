"""A purchase from the subscriber's answer to its decision (product.md §3, §4), and the
monthly life of subscriptions: renewals, ``past_due`` and the cancellations that follow.

The decision itself is ``billing.purchases``; this module loads what it needs, with the usage
rows locked in one order (ID, then line) so concurrent decisions queue instead of deadlocking
and two purchases can never both pass a limit they exceed together, and records what was
decided with its events, in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from tortoise.transactions import in_transaction

from billing.periods import next_period, period_of
from billing.purchases import Decision, PurchaseFacts, decide_purchase, decide_renewal, may_try_again
from billing.states import BillingStatus, ChargeStatus, SubscriptionStatus
from models.accounts import AccountStatus, SubscriberAccount
from models.charges import AccountUsage, Charge, ConfirmationAttempt, FailureCode, LineUsage
from models.clock import clock
from models.events import Event
from models.lines import Line, LineSession, LineStatus
from models.merchants import Merchant, MerchantStatus
from models.metrics import count_confirmation
from models.operations.charges import LIVE_SUBSCRIPTIONS, end_charge, end_subscription
from models.operations.decisions import announce_decided
from models.outbox import RENEW_SUBSCRIPTION, VERIFY_PURCHASE, send
from models.passwords import PasswordCheck, check_password, store_rehash, unseal_password
from models.subscriptions import Subscription

__all__ = [
    "RESERVATION_WINDOW",
    "Usage",
    "add_usage",
    "address_in_open_session",
    "answer_confirmation",
    "cancel_line_subscriptions",
    "cancel_overdue_subscriptions",
    "capture_reservation",
    "consented_facts",
    "create_due_renewals",
    "decide_attempt",
    "decide_renewal_charge",
    "expire_unconfirmed",
    "lock_usage",
    "record_decision",
    "release_reservation",
]

BATCH = 500
# How long a reserved two-step payment waits for the aggregator's confirmation before it is
# canceled and its amount given back to the limits.
RESERVATION_WINDOW = timedelta(hours=24)


@dataclass
class Usage:
    """The locked usage rows of one ID and its line for one period."""

    account: AccountUsage
    line: LineUsage


async def lock_usage(account: SubscriberAccount, line: Line, period: str) -> Usage:
    """Create the period's usage rows if missing, then lock both (ID first, then line)."""
    await AccountUsage.bulk_create([AccountUsage(account=account, period=period)], ignore_conflicts=True)
    await LineUsage.bulk_create([LineUsage(line=line, period=period)], ignore_conflicts=True)
    account_usage = await AccountUsage.select_for_update().get(account_id=account.id, period=period)
    line_usage = await LineUsage.select_for_update().get(line_id=line.line_id, period=period)
    return Usage(account=account_usage, line=line_usage)


async def add_usage(usage: Usage, amount: int) -> None:
    """Count ``amount`` (negative: give it back) on the locked usage rows of the ID and its line."""
    usage.account.amount += amount
    usage.line.amount += amount
    await usage.account.save(update_fields=["amount"])
    await usage.line.save(update_fields=["amount"])


async def address_in_open_session(line: Line, client_address: str | None) -> bool:
    """True when the client address lies in a session of ``line`` that is open now."""
    if not client_address:
        return False
    sessions = await LineSession.filter(line_id=line.line_id, ended_at=None)
    return any(session.contains(client_address) for session in sessions)


def _merchant_active(merchant: Merchant) -> bool:
    return merchant.status == MerchantStatus.ACTIVE


async def expire_target(target: Charge | Subscription, now: datetime) -> None:
    """Not confirmed within 30 minutes: a charge fails with ``expired``, a subscription fails."""
    if isinstance(target, Charge):
        await end_charge(target, ChargeStatus.FAILED, now=now, code=FailureCode.EXPIRED)
    else:
        target.move_to(SubscriptionStatus.FAILED)
        await target.save(update_fields=["status"])


async def answer_confirmation(
    target: Charge | Subscription,
    *,
    action: str,
    login_id: str,
    sealed_password: str,
    client_address: str,
) -> None:
    """Record the subscriber's answer on the confirmation page: decline at once, or hand the
    sign-in to the auth worker (the sealed password travels in the attempt row, never in a
    message). A purchase answered already, or past its 30 minutes, is left as it stands (or
    expired)."""
    async with in_transaction():
        target = await type(target).select_for_update().get(id=target.id)
        now = await clock.now()
        if target.status != "requires_confirmation":
            return  # answered already (a second click, another tab): the caller shows where it stands
        outcome = None
        if target.expires_at is not None and target.expires_at <= now:
            await expire_target(target, now)
            outcome = "expired"
        elif action == "decline":
            if isinstance(target, Charge):
                await end_charge(target, ChargeStatus.CANCELED, now=now)
            else:
                await end_subscription(target, now=now, reason="declined")
            outcome = "declined"
        else:
            await _hand_to_auth_worker(target, login_id, sealed_password, client_address, now)
    if outcome is not None:
        count_confirmation(outcome)


async def _hand_to_auth_worker(
    target: Charge | Subscription, login_id: str, sealed: str, address: str, now: datetime
) -> None:
    charge = target if isinstance(target, Charge) else await _first_month(target, address, now)
    if charge is None:
        return  # the first month is being decided already
    if charge.status == ChargeStatus.REQUIRES_CONFIRMATION:  # a first answer, or a retry after a typo
        charge.move_to(ChargeStatus.PROCESSING)
        charge.client_address = address
        await charge.save(update_fields=["status", "failure_code", "client_address"])
    attempt = await ConfirmationAttempt.create(
        charge=charge, login_id=login_id[:64], sealed_password=sealed, client_address=address, created_at=now
    )
    await send(VERIFY_PURCHASE, attempt.id)


async def _first_month(subscription: Subscription, address: str, now: datetime) -> Charge | None:
    """The charge of a subscription's first month: made on the first answer, the same one again
    after a mistyped password; None while it is being decided."""
    first = await Charge.select_for_update().filter(subscription_id=subscription.id).first()
    if first is not None:
        return first if first.status == ChargeStatus.REQUIRES_CONFIRMATION else None
    return await Charge.create(
        merchant_id=subscription.merchant_id,
        subscription=subscription,
        renewal_period=period_of(now),
        amount=subscription.amount,
        description=subscription.description,
        merchant_reference=subscription.merchant_reference,
        metadata=subscription.metadata,
        status=ChargeStatus.PROCESSING,
        client_address=address,
        created_at=now,
    )


async def decide_attempt(attempt_id: str, *, secret_key: str) -> str | None:
    """Decide the charge a sign-in was for (product.md §4): the password, then the line, the
    address, the merchant and the limits, with the usage rows locked. A second delivery of the
    same attempt finds it decided and does nothing. Answers the failure code (None: succeeded
    or nothing to do).

    The password is checked first, outside any transaction (argon2 holds a core for tens of
    milliseconds, and no row stays locked meanwhile); then the rows are locked and everything
    is read again: the counter and lock as they stand then (a failure counted meanwhile
    counts), and a password changed meanwhile does not count as right."""
    attempt = await ConfirmationAttempt.get_or_none(id=attempt_id)
    if attempt is None or attempt.decided_at is not None:
        return None
    found = await SubscriberAccount.get_or_none(login_id=attempt.login_id, status=AccountStatus.ACTIVE)
    password = unseal_password(attempt.sealed_password or "", secret_key)
    check = (
        await check_password(found.password_hash, password)
        if found is not None and password is not None
        else PasswordCheck("", ok=False)
    )
    return await _decide_checked(attempt_id, check)


async def _decide_checked(attempt_id: str, check: PasswordCheck) -> str | None:
    """Lock the attempt, its charge, the ID and the usage rows (in that order) and decide."""
    async with in_transaction():
        attempt = await ConfirmationAttempt.select_for_update().get_or_none(id=attempt_id)
        if attempt is None or attempt.decided_at is not None:
            return None
        charge = await Charge.select_for_update().get(id=attempt.charge_id)
        now = await clock.now()
        if charge.status != ChargeStatus.PROCESSING:
            attempt.decided_at, attempt.sealed_password = now, ""  # wiped once decided
            await attempt.save(update_fields=["decided_at", "sealed_password"])
            return None
        account = await SubscriberAccount.select_for_update().get_or_none(
            login_id=attempt.login_id, status=AccountStatus.ACTIVE
        )
        # Right only against the hash the ID still holds (not one changed while it was checked).
        password_ok = account is not None and check.ok and account.password_hash == check.checked_hash
        line = usage = None
        facts = PurchaseFacts(
            now=now,
            amount=charge.amount,
            account_found=account is not None,
            password_ok=password_ok,
            failed_attempts=account.failed_attempts if account else 0,
            locked_until=account.locked_until if account else None,
        )
        if account is not None and password_ok:
            line = await Line.get(line_id=account.line_id)
            merchant = await Merchant.get(id=charge.merchant_id)
            usage = await lock_usage(account, line, period_of(now))
            facts = PurchaseFacts(
                now=now,
                amount=charge.amount,
                account_found=True,
                password_ok=True,
                failed_attempts=account.failed_attempts,
                locked_until=account.locked_until,
                line_active=line.status == LineStatus.ACTIVE,
                line_eligible=line.eligible,
                # From the line's own address, and from the line a payment was prepared for.
                address_in_open_session=await address_in_open_session(line, attempt.client_address)
                and charge.expected_line_id in (None, line.line_id),
                merchant_active=_merchant_active(merchant),
                account_spent=usage.account.amount,
                account_limit=account.monthly_limit,
                line_spent=usage.line.amount,
                line_limit=line.monthly_limit,
            )
        decision = decide_purchase(facts)
        if account is not None:
            account.failed_attempts, account.locked_until = decision.failed_attempts, decision.locked_until
            rehashed = store_rehash(account, check) if decision.succeeded else []
            await account.save(update_fields=["failed_attempts", "locked_until", *rehashed])
        if await _wrong_password_retry(charge, decision):
            pass  # back to the subscriber, with no event: the purchase is still open
        else:
            await record_decision(charge, decision, now=now, account=account, line=line, usage=usage)
        attempt.decided_at, attempt.sealed_password = now, ""  # wiped once decided
        attempt.failure_code = FailureCode(decision.failure_code) if decision.failure_code else None  # type: ignore[assignment]
        await attempt.save(update_fields=["decided_at", "sealed_password", "failure_code"])
        await announce_decided(charge.id)  # the waiting page learns it on commit
    count_confirmation(decision.failure_code or "succeeded")
    return decision.failure_code


async def _wrong_password_retry(charge: Charge, decision: Decision) -> bool:
    """A wrong ID or password, the purchase's first four: the charge goes back to
    ``requires_confirmation`` with ``invalid_credentials`` for the page to name (True)."""
    if decision.failure_code != FailureCode.INVALID_CREDENTIALS:
        return False
    earlier = await ConfirmationAttempt.filter(
        charge_id=charge.id, failure_code=FailureCode.INVALID_CREDENTIALS
    ).count()
    if not may_try_again(decision.failure_code, earlier + 1):
        return False
    charge.move_to(ChargeStatus.REQUIRES_CONFIRMATION, failure_code=FailureCode.INVALID_CREDENTIALS)
    await charge.save(update_fields=["status", "failure_code"])
    return True


async def decide_renewal_charge(charge_id: str) -> str | None:
    """Decide one month's renewal charge: line, merchant and limits, no password. Answers the
    failure code (None: succeeded, or nothing to do)."""
    async with in_transaction():
        charge = await Charge.select_for_update().get_or_none(id=charge_id)
        if charge is None or charge.status != ChargeStatus.PROCESSING:
            return None
        subscription = await Subscription.get(id=charge.subscription_id)
        now = await clock.now()
        if subscription.status not in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE):
            await end_charge(charge, ChargeStatus.CANCELED, now=now)
            return None
        account = await SubscriberAccount.get(id=subscription.account_id)
        line = await Line.get(line_id=account.line_id)
        merchant = await Merchant.get(id=charge.merchant_id)
        usage = await lock_usage(account, line, charge.renewal_period or period_of(now))
        decision = decide_renewal(
            consented_facts(now, charge.amount, account=account, line=line, merchant=merchant, usage=usage)
        )
        await record_decision(charge, decision, now=now, account=account, line=line, usage=usage)
    return decision.failure_code


async def _bought(charge: Charge, usage: Usage, now: datetime) -> None:
    """A charge decided ``succeeded``, or ``reserved`` when it is a two-step one."""
    await add_usage(usage, charge.amount)
    charge.period = usage.account.period
    if charge.two_step:
        # Held against the limits until the aggregator confirms it, cancels it or it expires.
        charge.move_to(ChargeStatus.RESERVED)
        charge.expires_at = now + RESERVATION_WINDOW
    else:
        charge.move_to(ChargeStatus.SUCCEEDED)
        charge.billing_status = BillingStatus.UNBILLED  # where every succeeded charge's billing starts


def consented_facts(  # noqa: PLR0913 - what a decision without a password reads, all locked by the caller
    now: datetime, amount: int, *, account: SubscriberAccount, line: Line, merchant: Merchant, usage: Usage
) -> PurchaseFacts:
    """The facts of a purchase the subscriber consented to beforehand (a renewal, a CAMARA token's
    one-step payment): no password is checked now; the line, the merchant and the limits are."""
    return PurchaseFacts(
        now=now,
        amount=amount,
        account_found=True,
        password_ok=True,
        line_active=line.status == LineStatus.ACTIVE,
        line_eligible=line.eligible,
        merchant_active=_merchant_active(merchant),
        account_spent=usage.account.amount,
        account_limit=account.monthly_limit,
        line_spent=usage.line.amount,
        line_limit=line.monthly_limit,
    )


async def record_decision(  # noqa: PLR0913 - everything the decision touches, keyword-only
    charge: Charge,
    decision: Decision,
    *,
    now: datetime,
    account: SubscriberAccount | None,
    line: Line | None,
    usage: Usage | None,
) -> None:
    """Write ``decision`` for a ``processing`` charge, with its events and subscription."""
    charge.decided_at = now
    if account is not None:
        charge.account = account
    if line is not None:
        charge.line = line
    subscription = (
        await Subscription.select_for_update().get(id=charge.subscription_id) if charge.subscription_id else None
    )
    if subscription is not None and subscription.status in (SubscriptionStatus.CANCELED, SubscriptionStatus.FAILED):
        # Canceled while the subscriber was signing in: nothing is bought.
        await charge.save()  # the account and line it was tried from
        await end_charge(charge, ChargeStatus.CANCELED, now=now)
        return
    if decision.succeeded:
        assert usage is not None  # noqa: S101 - a success is only decided with the usage locked
        await _bought(charge, usage, now)
    else:
        charge.move_to(ChargeStatus.FAILED, failure_code=FailureCode(cast("str", decision.failure_code)))
    await charge.save()
    merchant_id = charge.merchant_id
    await Event.record(f"charge.{charge.status.value}", merchant_id=merchant_id, obj=charge.to_api())
    if subscription is None:
        return
    renewal = subscription.status in (SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE)
    if decision.succeeded:
        first = subscription.status == SubscriptionStatus.REQUIRES_CONFIRMATION
        subscription.move_to(SubscriptionStatus.ACTIVE)
        subscription.current_period = charge.period
        if account is not None:
            subscription.account = account
        if line is not None:
            subscription.line = line
        await subscription.save()
        await Event.record(
            "subscription.activated" if first else "subscription.renewed",
            merchant_id=merchant_id,
            obj=subscription.to_api(),
        )
    elif renewal:
        subscription.move_to(SubscriptionStatus.PAST_DUE)
        subscription.current_period = charge.renewal_period
        await subscription.save()
        await Event.record("subscription.past_due", merchant_id=merchant_id, obj=subscription.to_api())
    else:
        subscription.move_to(SubscriptionStatus.FAILED)
        await subscription.save()


async def cancel_line_subscriptions(line_id: str) -> int:
    """Cancel every live subscription of a terminated line; a repeat finds none left to cancel."""
    async with in_transaction():
        subscriptions = await Subscription.select_for_update().filter(line_id=line_id, status__in=LIVE_SUBSCRIPTIONS)
        now = await clock.now()
        for subscription in subscriptions:
            await end_subscription(subscription, now=now, reason="line_terminated")
    return len(subscriptions)


async def create_due_renewals(now: datetime) -> int:
    """Scheduler job: each active subscription is charged once for every month after its current
    one, up to this month, oldest first: a scheduler down across two month ends renews the first
    missed month, and (once that renewal is decided and the subscription is still active) the
    next, on later passes. The unique (subscription, renewal_period) key makes "once" true."""
    period = period_of(now)
    due = await Subscription.filter(status=SubscriptionStatus.ACTIVE, current_period__lt=period).limit(BATCH)
    created = 0
    for subscription in due:
        async with in_transaction():
            locked = await Subscription.select_for_update().get(id=subscription.id)
            if locked.status != SubscriptionStatus.ACTIVE or locked.current_period is None:
                continue
            month = next_period(locked.current_period)
            if month > period or await Charge.exists(subscription_id=locked.id, renewal_period=month):
                continue
            charge = await Charge.create(
                merchant_id=locked.merchant_id,
                subscription=locked,
                renewal_period=month,
                account_id=locked.account_id,
                line_id=locked.line_id,
                amount=locked.amount,
                description=locked.description,
                merchant_reference=locked.merchant_reference,
                metadata=locked.metadata,
                status=ChargeStatus.PROCESSING,
                created_at=now,
            )
            await send(RENEW_SUBSCRIPTION, charge.id)
            created += 1
    return created


async def expire_unconfirmed(now: datetime) -> int:
    """Scheduler job: charges and subscriptions not confirmed within 30 minutes fail (``expired``)."""
    expired = 0
    async with in_transaction():
        charges = (
            await Charge.select_for_update(skip_locked=True)
            .filter(status=ChargeStatus.REQUIRES_CONFIRMATION, expires_at__lte=now)
            .limit(BATCH)
        )
        for charge in charges:
            await expire_target(charge, now)
            expired += 1
        subscriptions = (
            await Subscription.select_for_update(skip_locked=True)
            .filter(status=SubscriptionStatus.REQUIRES_CONFIRMATION, expires_at__lte=now)
            .limit(BATCH)
        )
        for subscription in subscriptions:
            await expire_target(subscription, now)
            expired += 1
        reserved = (
            await Charge.select_for_update(skip_locked=True)
            .filter(status=ChargeStatus.RESERVED, expires_at__lte=now)
            .limit(BATCH)
        )
        for charge in reserved:
            await release_reservation(charge, now=now)
            expired += 1
    return expired


async def release_reservation(charge: Charge, *, now: datetime) -> None:
    """A reserved charge canceled (by the aggregator, or expired): its amount no longer counts
    against the ID's and the line's limits of its month. The charge row is locked by the caller."""
    account = await SubscriberAccount.get(id=cast("str", charge.account_id))
    line = await Line.get(line_id=cast("str", charge.line_id))
    usage = await lock_usage(account, line, cast("str", charge.period))
    await add_usage(usage, -charge.amount)
    await end_charge(charge, ChargeStatus.CANCELED, now=now)


async def capture_reservation(charge: Charge, *, now: datetime) -> None:
    """A reserved charge confirmed by the aggregator: it succeeds and is billed like any other.
    Confirmed in a later month than reserved, it is billed in the month of its confirmation (the
    reserved month may be closed already), and its amount moves to that month's usage."""
    period = period_of(now)
    if charge.period != period:
        account = await SubscriberAccount.get(id=cast("str", charge.account_id))
        line = await Line.get(line_id=cast("str", charge.line_id))
        await add_usage(await lock_usage(account, line, cast("str", charge.period)), -charge.amount)
        await add_usage(await lock_usage(account, line, period), charge.amount)
        charge.period = period
    charge.move_to(ChargeStatus.SUCCEEDED)
    charge.billing_status = BillingStatus.UNBILLED
    charge.decided_at, charge.expires_at = now, None
    await charge.save(update_fields=["status", "billing_status", "period", "decided_at", "expires_at"])
    await Event.record("charge.succeeded", merchant_id=charge.merchant_id, obj=charge.to_api())


async def cancel_overdue_subscriptions(now: datetime) -> int:
    """Scheduler job: a ``past_due`` subscription is canceled once its month has ended."""
    period = period_of(now)
    async with in_transaction():
        overdue = await Subscription.select_for_update(skip_locked=True).filter(
            status=SubscriptionStatus.PAST_DUE, current_period__lt=period
        )
        for subscription in overdue:
            await end_subscription(subscription, now=now, reason="past_due")
    return len(overdue)
