"""Merchants as the carrier signs them up: contract, bank account, fee plan and API keys.

The API key and the return-signing secret are shown once, in the answer that made them.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal

from aiohttp import web
from pydantic import AfterValidator, BaseModel, Field
from tortoise.transactions import in_transaction

from api.http import Body, json_response
from api.ops.table import audit, ops_routes
from billing.errors import InvalidRequest, NotFound
from billing.zengin import UnknownBank, check_bank_branch, to_zengin_kana
from models.clock import clock
from models.merchants import DEFAULT_MAX_CHARGE, ApiKey, BankAccount, FeePlan, Merchant, MerchantStatus

__all__ = ["hash_api_key", "issue_api_key"]

API_KEY_PREFIX = "sk_live_"
FIRST_PERIOD = "2000-01"


def _zengin_name(value: str) -> str:
    try:
        return to_zengin_kana(value)
    except ValueError as error:
        raise ValueError(str(error)) from None


Kana = Annotated[str, Field(min_length=1, max_length=40), AfterValidator(_zengin_name)]


class BankAccountIn(Body):
    """A Japanese bank account; codes are checked against the Zengin code list."""

    bank_code: Annotated[str, Field(pattern=r"^\d{4}$")]
    branch_code: Annotated[str, Field(pattern=r"^\d{3}$")]
    account_type: Literal["ordinary", "current"]
    account_number: Annotated[str, Field(pattern=r"^\d{1,7}$")]
    holder_kana: Annotated[str, Field(min_length=1, max_length=30), AfterValidator(_zengin_name)]


class FeePlanIn(Body):
    """The fee: ``rate`` of billed, or ``per_line_amount`` per line under ``threshold`` yen per line."""

    rate: Annotated[Decimal, Field(ge=0, le=1, max_digits=6, decimal_places=4)] = Decimal("0.05")
    threshold: Annotated[int, Field(ge=0, le=1_000_000)] = 600
    per_line_amount: Annotated[Decimal, Field(ge=0, le=100_000, max_digits=10, decimal_places=2)] = Decimal("31.5")
    effective_from: Annotated[str, Field(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")] = FIRST_PERIOD


class MerchantCreate(Body):
    """A merchant's contract with the carrier."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    name_kana: Kana
    bank_account: BankAccountIn
    fee_plan: FeePlanIn | None = None
    setup_fee: Annotated[int, Field(ge=0, le=100_000_000)] = 0
    max_charge_amount: Annotated[int, Field(ge=1, le=1_000_000)] = DEFAULT_MAX_CHARGE


class MerchantUpdate(Body):
    """Suspend or reactivate a merchant, or change its per-charge maximum."""

    status: Literal["active", "suspended"] | None = None
    max_charge_amount: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class MerchantOut(BaseModel):
    """A merchant; ``api_key`` and ``return_signing_secret`` only when just created."""

    id: str
    name: str
    name_kana: str
    status: Literal["active", "suspended"]
    max_charge_amount: int
    setup_fee: int
    bank_account: dict[str, str]
    fee_plans: list[dict[str, str]]
    created_at: datetime
    api_key: str | None = None
    return_signing_secret: str | None = None


class ApiKeyOut(BaseModel):
    """An API key's record; ``api_key`` (the secret) only when just issued."""

    id: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None
    api_key: str | None = None


def hash_api_key(key: str) -> str:
    """The stored form of an API key (SHA-256: the key is 256 random bits, not a password)."""
    return hashlib.sha256(key.encode()).hexdigest()


async def issue_api_key(merchant: Merchant) -> tuple[ApiKey, str]:
    """A new live key for ``merchant``: the record and the key itself (shown once)."""
    key = API_KEY_PREFIX + secrets.token_urlsafe(32)
    record = await ApiKey.create(
        merchant=merchant,
        prefix=key[: len(API_KEY_PREFIX) + 4],
        key_hash=hash_api_key(key),
        created_at=await clock.now(),
    )
    return record, key


def _key_view(record: ApiKey, key: str | None = None) -> dict[str, object]:
    view: dict[str, object] = {
        "id": record.id,
        "prefix": record.prefix,
        "created_at": record.created_at,
        "revoked_at": record.revoked_at,
    }
    if key is not None:
        view["api_key"] = key
    return view


async def _merchant_view(merchant: Merchant, **once: str) -> dict[str, object]:
    account = await BankAccount.get(merchant_id=merchant.id)
    plans = await FeePlan.filter(merchant_id=merchant.id).order_by("effective_from")
    return {
        "id": merchant.id,
        "name": merchant.name,
        "name_kana": merchant.name_kana,
        "status": merchant.status.value,
        "max_charge_amount": merchant.max_charge_amount,
        "setup_fee": merchant.setup_fee,
        "bank_account": {
            "bank_code": account.bank_code,
            "branch_code": account.branch_code,
            "account_type": account.account_type,
            "account_number": account.account_number,
            "holder_kana": account.holder_kana,
        },
        "fee_plans": [
            {
                "effective_from": p.effective_from,
                "rate": str(p.rate),
                "threshold": str(p.threshold),
                "per_line_amount": str(p.per_line_amount),
            }
            for p in plans
        ],
        "created_at": merchant.created_at,
        **once,
    }


async def _merchant(merchant_id: str, *, lock: bool = False) -> Merchant:
    query = Merchant.select_for_update() if lock else Merchant
    merchant = await query.get_or_none(id=merchant_id)
    if merchant is None:
        raise NotFound(f"No merchant {merchant_id}.", param="id")
    return merchant


@ops_routes.route(
    "POST",
    "/merchants",
    summary="Create a merchant",
    body=MerchantCreate,
    response=MerchantOut,
    status=201,
    errors=(400, 401),
)
async def create_merchant(request: web.Request, body: MerchantCreate) -> web.Response:
    """A new merchant with its bank account, fee plan, first API key and return-signing secret."""
    bank = body.bank_account
    try:
        check_bank_branch(bank.bank_code, bank.branch_code)
    except UnknownBank as error:
        raise InvalidRequest(str(error), param=f"bank_account.{error.field}") from None
    plan = body.fee_plan or FeePlanIn()
    signing_secret = secrets.token_hex(32)
    now = await clock.now()
    async with in_transaction():
        merchant = await Merchant.create(
            name=body.name,
            name_kana=body.name_kana,
            status=MerchantStatus.ACTIVE,
            return_signing_secret=signing_secret,
            max_charge_amount=body.max_charge_amount,
            setup_fee=body.setup_fee,
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
            effective_from=plan.effective_from,
            rate=plan.rate,
            threshold=plan.threshold,
            per_line_amount=plan.per_line_amount,
        )
        _, key = await issue_api_key(merchant)
        await audit(request, "merchant.create", "merchant", merchant.id, name=body.name)
        view = await _merchant_view(merchant, api_key=key, return_signing_secret=signing_secret)
    return json_response(view, status=201)


@ops_routes.route("GET", "/merchants/{id}", summary="Retrieve a merchant", response=MerchantOut)
async def get_merchant(request: web.Request) -> web.Response:
    """One merchant (without its secrets)."""
    return json_response(await _merchant_view(await _merchant(request.match_info["id"])))


@ops_routes.route("PATCH", "/merchants/{id}", summary="Update a merchant", body=MerchantUpdate, response=MerchantOut)
async def update_merchant(request: web.Request, body: MerchantUpdate) -> web.Response:
    """Suspend or reactivate, rename, or change the per-charge maximum."""
    changes = body.model_dump(exclude_none=True)
    async with in_transaction():
        merchant = await _merchant(request.match_info["id"], lock=True)
        for name, value in changes.items():
            setattr(merchant, name, MerchantStatus(value) if name == "status" else value)
        await merchant.save()
        await audit(request, "merchant.update", "merchant", merchant.id, **changes)
        view = await _merchant_view(merchant)
    return json_response(view)


@ops_routes.route("POST", "/merchants/{id}/api_keys", summary="Issue another API key", response=ApiKeyOut, status=201)
async def create_api_key(request: web.Request) -> web.Response:
    """A further live key; the merchant's other keys keep working."""
    async with in_transaction():
        merchant = await _merchant(request.match_info["id"], lock=True)
        record, key = await issue_api_key(merchant)
        await audit(request, "api_key.issue", "merchant", merchant.id, key_id=record.id)
    return json_response(_key_view(record, key), status=201)


@ops_routes.route("GET", "/merchants/{id}/api_keys", summary="List API keys")
async def list_api_keys(request: web.Request) -> web.Response:
    """Every key of the merchant, live and revoked (never the keys themselves)."""
    merchant = await _merchant(request.match_info["id"])
    records = await ApiKey.filter(merchant_id=merchant.id).order_by("created_at")
    return json_response({"object": "list", "data": [_key_view(r) for r in records], "has_more": False})


@ops_routes.route(
    "POST",
    "/merchants/{id}/api_keys/{key_id}/revoke",
    summary="Revoke an API key",
    response=ApiKeyOut,
    errors=(400, 401, 404, 409),
)
async def revoke_api_key(request: web.Request) -> web.Response:
    """The key stops working at once; revoking a revoked key changes nothing."""
    async with in_transaction():
        merchant = await _merchant(request.match_info["id"])
        record = await ApiKey.select_for_update().get_or_none(id=request.match_info["key_id"], merchant_id=merchant.id)
        if record is None:
            raise NotFound("No such API key on this merchant.", param="key_id")
        if record.revoked_at is None:
            record.revoked_at = await clock.now()
            await record.save(update_fields=["revoked_at"])
            await audit(request, "api_key.revoke", "merchant", merchant.id, key_id=record.id)
    return json_response(_key_view(record))
