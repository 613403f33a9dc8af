"""Queue ``auth``: deciding a subscriber's confirmation (product.md §4).

``verify_purchase`` runs once per sign-in on a confirmation page. It locks the attempt and the
charge, checks the state machine (a redelivered message finds the charge already decided and
does nothing), verifies the password, gathers the facts with the usage rows locked, lets
``billing.purchases.decide_purchase`` decide, and writes the decision with its events.
"""

from __future__ import annotations

import dramatiq
import structlog
from tortoise.transactions import in_transaction

from billing.periods import period_of
from billing.purchases import PurchaseFacts, decide_purchase
from models.accounts import AccountStatus, SubscriberAccount
from models.charges import Charge, ChargeStatus, ConfirmationAttempt, FailureCode
from models.clock import clock
from models.lines import Line, LineStatus
from models.merchants import Merchant
from models.passwords import unseal_password, verify_password
from models.purchasing import address_in_open_session, lock_usage, merchant_active, record_decision
from queues import ACTOR_OPTIONS, worker_settings

__all__ = ["verify_purchase"]

log = structlog.get_logger("matomete.workers.auth")


@dramatiq.actor(queue_name="auth", **ACTOR_OPTIONS)
async def verify_purchase(attempt_id: str) -> None:
    """Decide the charge a sign-in was for; a second delivery of the same attempt is a no-op."""
    async with in_transaction():
        attempt = await ConfirmationAttempt.select_for_update().get_or_none(id=attempt_id)
        if attempt is None or attempt.decided_at is not None:
            return
        charge = await Charge.select_for_update().get(id=attempt.charge_id)
        now = await clock.now()
        if charge.status != ChargeStatus.PROCESSING:
            attempt.decided_at, attempt.sealed_password = now, ""  # wiped once decided
            await attempt.save(update_fields=["decided_at", "sealed_password"])
            return
        account = await SubscriberAccount.select_for_update().get_or_none(
            login_id=attempt.login_id, status=AccountStatus.ACTIVE
        )
        password = unseal_password(attempt.sealed_password or "", worker_settings().secret_key)
        password_ok = (
            account is not None and password is not None and await verify_password(account.password_hash, password)
        )
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
                address_in_open_session=await address_in_open_session(line, attempt.client_address),
                merchant_active=merchant_active(merchant),
                account_spent=usage.account.amount,
                account_limit=account.monthly_limit,
                line_spent=usage.line.amount,
                line_limit=line.monthly_limit,
            )
        decision = decide_purchase(facts)
        if account is not None:
            account.failed_attempts, account.locked_until = decision.failed_attempts, decision.locked_until
            await account.save(update_fields=["failed_attempts", "locked_until"])
        await record_decision(charge, decision, now=now, account=account, line=line, usage=usage)
        attempt.decided_at, attempt.sealed_password = now, ""  # wiped once decided
        attempt.failure_code = FailureCode(decision.failure_code) if decision.failure_code else None  # type: ignore[assignment]
        await attempt.save(update_fields=["decided_at", "sealed_password", "failure_code"])
    log.info("purchase_decided", charge_id=charge.id, failure_code=decision.failure_code)
