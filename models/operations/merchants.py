"""Merchants as the carrier signs them up: contract, bank account, fee plan and API keys.

An API key is stored as a SHA-256 digest (it is 256 random bits, not a password) and answered
once, when it is issued; so is the return-signing secret.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from billing.errors import NotFound, Unprocessable
from billing.zengin import UnknownBank, check_bank_branch
from models.audit_log import Actor, audit
from models.base import fits_id_column
from models.clock import clock
from models.merchants import ApiKey, BankAccount, FeePlan, IdempotencyKey, Merchant, MerchantStatus, MerchantUser
from models.payouts import Payout
from models.sql import execute
from models.statements import from_row

__all__ = [
    "API_KEY_PREFIX",
    "BankDetails",
    "Claim",
    "FeeTerms",
    "LiveKey",
    "add_api_key",
    "api_key_record",
    "create_merchant",
    "find_merchant",
    "hash_api_key",
    "idempotency_lock_id",
    "issue_api_key",
    "merchant_details",
    "note_key_used",
    "revoke_api_key",
    "update_merchant",
]

HOLDER_KANA_WIDTH = 30  # 受取人名 in a Zengin 総合振込 record, and the column

API_KEY_PREFIX = "sk_live_"
# "Last used" is kept to the minute: a busy key costs one write a minute, not one a request.
KEY_USE_RESOLUTION = timedelta(seconds=60)


@dataclass(frozen=True, kw_only=True)
class BankDetails:
    """Where a merchant's payouts go (kana already in Zengin form)."""

    bank_code: str
    branch_code: str
    account_type: str
    account_number: str
    holder_kana: str


@dataclass(frozen=True, kw_only=True)
class FeeTerms:
    """A fee plan from ``effective_from`` (product.md §7)."""

    rate: Decimal
    threshold: int
    per_line_amount: Decimal
    effective_from: str


@dataclass(frozen=True)
class MerchantDetails:
    """A merchant as the console shows it: its contract, keys, users and latest payouts."""

    merchant: Merchant
    fee_plans: list[FeePlan]
    bank_account: BankAccount | None
    api_keys: list[ApiKey]
    users: list[MerchantUser]
    payouts: list[Payout]


def _why(reason: str | None) -> dict[str, str]:
    """The reason a person gave, for the audit entry (none from the ops token)."""
    return {"reason": reason} if reason else {}


def hash_api_key(key: str) -> str:
    """The stored form of an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True)
class Claim:
    """An ``Idempotency-Key`` claimed by the request's transaction (``claimed`` False: another
    transaction holds it) and its stored row, if any."""

    claimed: bool
    stored: IdempotencyKey | None


@dataclass(frozen=True)
class LiveKey:
    """A live API key's record, the merchant it signs for, and the claim asked for with it."""

    record: ApiKey
    merchant: Merchant
    claim: Claim | None = None


# The claim's advisory lock id, in SQL: the first 8 bytes of SHA-256 of "idempotency", the
# merchant id and the key, NUL-separated, as a signed 64-bit integer (``idempotency_lock_id``).
_LOCK_ID_SQL = (
    "('x' || encode(substring(sha256('idempotency'::bytea || '\\x00'::bytea || convert_to(k.merchant_id, 'UTF8') "
    "|| '\\x00'::bytea || convert_to(%(key)s, 'UTF8')) FROM 1 FOR 8), 'hex'))::bit(64)::bigint"
)


def idempotency_lock_id(merchant_id: str, key: str) -> int:
    """The advisory lock's 64-bit id for one merchant's key (a collision only costs a 409)."""
    digest = hashlib.sha256(f"idempotency\0{merchant_id}\0{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@cache
def _live_key_query(*, claiming: bool) -> str:
    """The key and its merchant in one fixed, prepared statement (every API request runs it);
    ``claiming``, also the claim of an idempotency key (``key``) and its row."""
    selected = [f'k."{column}" AS "k_{column}"' for column in sorted(ApiKey._meta.db_fields)]
    selected += [f'm."{column}" AS "m_{column}"' for column in sorted(Merchant._meta.db_fields)]
    joined = ""
    if claiming:
        selected += [f'i."{column}" AS "i_{column}"' for column in sorted(IdempotencyKey._meta.db_fields)]
        selected.append(f"pg_try_advisory_xact_lock({_LOCK_ID_SQL}) AS claimed")
        joined = " LEFT JOIN idempotency_keys AS i ON i.merchant_id = k.merchant_id AND i.key = %(key)s"
    return (  # the column names are the models' own; the values are parameters
        f"SELECT {', '.join(selected)} FROM api_keys AS k "  # noqa: S608
        f"JOIN merchants AS m ON m.id = k.merchant_id{joined} WHERE k.key_hash = %(key_hash)s AND k.revoked_at IS NULL"
    )


async def api_key_record(key: str, *, claiming: str | None = None) -> LiveKey | None:
    """The live key record ``key`` stands for, if any, with its merchant (one query). With
    ``claiming`` (PostgreSQL, inside the request's transaction), the same statement claims that
    idempotency key for the transaction and reads its stored row: one round trip, not two."""
    found = await execute(
        _live_key_query(claiming=claiming is not None), {"key_hash": hash_api_key(key), "key": claiming}
    )
    if not found:
        return None
    row = found[0]
    claim = None
    if claiming is not None:
        stored = from_row(IdempotencyKey, row, "i_") if row["i_id"] is not None else None
        claim = Claim(bool(row["claimed"]), stored)
    return LiveKey(from_row(ApiKey, row, "k_"), from_row(Merchant, row, "m_"), claim)


async def note_key_used(record: ApiKey) -> bool:
    """Note that ``record`` (just read) signed a request, at most once a minute: True when this
    call wrote. One conditional UPDATE, so concurrent requests with the same key write once."""
    now = await clock.now()
    stale = now - KEY_USE_RESOLUTION
    if record.last_used_at is not None and record.last_used_at >= stale:
        return False  # noted within the minute: no query at all
    written = await ApiKey.filter(Q(last_used_at=None) | Q(last_used_at__lt=stale), id=record.id).update(
        last_used_at=now
    )
    return written > 0


async def find_merchant(merchant_id: str, *, lock: bool = False) -> Merchant:
    """The merchant ``merchant_id``; ``NotFound`` otherwise."""
    query = Merchant.select_for_update() if lock else Merchant
    merchant = await query.get_or_none(id=merchant_id) if fits_id_column(merchant_id) else None
    if merchant is None:
        raise NotFound(f"No merchant {merchant_id}.", param="id")
    return merchant


async def merchant_details(merchant_id: str, *, limit: int) -> MerchantDetails:
    """The merchant ``merchant_id`` with its fee plans, bank account, and at most ``limit`` each
    of its API keys and users (newest first) and payouts (latest period first); ``NotFound``
    otherwise."""
    merchant = await find_merchant(merchant_id)
    return MerchantDetails(
        merchant=merchant,
        fee_plans=await FeePlan.filter(merchant_id=merchant.id).order_by("-effective_from").limit(limit),
        bank_account=await BankAccount.get_or_none(merchant_id=merchant.id),
        api_keys=await ApiKey.filter(merchant_id=merchant.id).order_by("-created_at", "-id").limit(limit),
        users=await MerchantUser.filter(merchant_id=merchant.id).order_by("-created_at", "-id").limit(limit),
        payouts=await Payout.filter(merchant_id=merchant.id).order_by("-period").limit(limit),
    )


async def issue_api_key(merchant: Merchant) -> tuple[ApiKey, str]:
    """A new live key for ``merchant``: the record and the key itself (shown once); call it in
    the transaction of the change that asked for it."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    record = await ApiKey.create(
        merchant=merchant,
        prefix=key[: len(API_KEY_PREFIX) + 4],
        key_hash=hash_api_key(key),
        created_at=await clock.now(),
    )
    return record, key


async def create_merchant(  # noqa: PLR0913 - one keyword per part of the contract
    *,
    name: str,
    name_kana: str,
    bank: BankDetails,
    fee: FeeTerms,
    setup_fee: int,
    max_charge_amount: int,
    actor: Actor,
) -> tuple[Merchant, str, str]:
    """A new merchant with its bank account, fee plan, first API key and return-signing secret:
    (merchant, api key, signing secret); the bank and branch are checked against the Zengin list
    and the holder's name against the width of a Zengin record (422: well-formed, refused by rule)."""
    try:
        check_bank_branch(bank.bank_code, bank.branch_code)
    except UnknownBank as error:
        raise Unprocessable(str(error), param=f"bank_account.{error.field}", code="bank_unknown") from None
    if len(bank.holder_kana) > HOLDER_KANA_WIDTH:
        raise Unprocessable(
            f"holder_kana is {len(bank.holder_kana)} Zengin characters once converted; at most {HOLDER_KANA_WIDTH}.",
            param="bank_account.holder_kana",
            code="holder_kana_too_long",
        )
    signing_secret = secrets.token_hex(32)
    now = await clock.now()
    async with in_transaction():
        merchant = await Merchant.create(
            name=name,
            name_kana=name_kana,
            status=MerchantStatus.ACTIVE,
            return_signing_secret=signing_secret,
            max_charge_amount=max_charge_amount,
            setup_fee=setup_fee,
            created_at=now,
        )
        await BankAccount.create(
            merchant=merchant,
            bank_code=bank.bank_code,
            branch_code=bank.branch_code,
            account_type=bank.account_type,
            account_number=bank.account_number.zfill(7),
            holder_kana=bank.holder_kana,
            updated_at=now,
        )
        await FeePlan.create(
            merchant=merchant,
            effective_from=fee.effective_from,
            rate=fee.rate,
            threshold=fee.threshold,
            per_line_amount=fee.per_line_amount,
        )
        _, key = await issue_api_key(merchant)
        await audit(actor, "merchant.create", "merchant", merchant.id, name=name)
    return merchant, key, signing_secret


async def update_merchant(
    merchant_id: str, changes: dict[str, Any], *, actor: Actor, reason: str | None = None
) -> Merchant:
    """Suspend or reactivate, rename, or change the per-charge maximum; ``reason``, when a person
    gives one, goes into the audit entry."""
    async with in_transaction():
        merchant = await find_merchant(merchant_id, lock=True)
        for name, value in changes.items():
            setattr(merchant, name, MerchantStatus(value) if name == "status" else value)
        await merchant.save()
        await audit(actor, "merchant.update", "merchant", merchant.id, **changes, **_why(reason))
    return merchant


async def add_api_key(merchant_id: str, *, actor: Actor) -> tuple[ApiKey, str]:
    """A further live key; the merchant's other keys keep working."""
    async with in_transaction():
        merchant = await find_merchant(merchant_id, lock=True)
        record, key = await issue_api_key(merchant)
        await audit(actor, "api_key.issue", "merchant", merchant.id, key_id=record.id)
    return record, key


async def revoke_api_key(merchant_id: str, key_id: str, *, actor: Actor, reason: str | None = None) -> ApiKey:
    """The key stops working at once; revoking a revoked key changes nothing."""
    async with in_transaction():
        merchant = await find_merchant(merchant_id)
        record = await ApiKey.select_for_update().get_or_none(id=key_id, merchant_id=merchant.id)
        if record is None:
            raise NotFound("No such API key on this merchant.", param="key_id")
        if record.revoked_at is None:
            record.revoked_at = await clock.now()
            await record.save(update_fields=["revoked_at"])
            await audit(actor, "api_key.revoke", "merchant", merchant.id, key_id=record.id, **_why(reason))
    return record
