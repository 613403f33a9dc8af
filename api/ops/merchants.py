"""Merchants as the carrier signs them up: contract, bank account, fee plan and API keys.

The API key and the return-signing secret are shown once, in the answer that made them.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, WithJsonSchema

from api.http import Body, json_response
from api.ops.table import operator, ops_routes
from billing.zengin import KANA_INPUT_PATTERN, to_zengin_kana
from models.merchants import DEFAULT_MAX_CHARGE, ApiKey, BankAccount, FeePlan, Merchant
from models.operations import merchants, site_users

__all__: list[str] = []
FIRST_PERIOD = "2000-01"
# billing.sign_in.EMAIL, without the control characters every body refuses.
EMAIL_TEXT = r"^[^@\s\x00-\x1f\x7f-\x9f]{1,64}@[^@\s\x00-\x1f\x7f-\x9f]+\.[^@\s.\x00-\x1f\x7f-\x9f]{2,}$"
# Text with at least one character that is not a space (a name is stripped before it is kept).
VISIBLE_TEXT = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


def _zengin_name(value: str) -> str:
    try:
        return to_zengin_kana(value)
    except ValueError as error:
        raise ValueError(str(error)) from None


def _kana(max_length: int) -> Any:
    return Field(
        min_length=1,
        max_length=max_length,
        description="Kana or ASCII, stored in the Zengin character set (half-width, upper case)",
        json_schema_extra={"pattern": KANA_INPUT_PATTERN},
    )


Kana = Annotated[str, _kana(40), AfterValidator(_zengin_name)]
# Money with at most so many decimals: a JSON number or a decimal string of the documented
# pattern. A number is a binary float (0.0003 may arrive as 0.00030000000000000003), so it is
# read to 10 places first; the range and the places are then checked on the exact decimal.
RATE_TEXT = r"^(0(\.\d{1,4})?|1(\.0{1,4})?)$"
PER_LINE_TEXT = r"^(\d{1,5}(\.\d{1,2})?|100000(\.0{1,2})?)$"


def _decimal(low: int, high: int, places: int, text: str) -> Any:
    def read(value: Any) -> Any:
        if isinstance(value, float):
            return Decimal(str(round(value, 10)))
        if isinstance(value, int) and not isinstance(value, bool):
            return Decimal(value)
        if isinstance(value, str):
            if not re.fullmatch(text, value):
                raise ValueError(f"must be a number from {low} to {high} with at most {places} decimal places")
            return Decimal(value)
        return value

    schema = {
        "anyOf": [
            {"type": "number", "minimum": low, "maximum": high, "multipleOf": 10**-places},
            {"type": "string", "pattern": text},
        ],
        "description": f"From {low} to {high}, at most {places} decimal places",
    }
    return (BeforeValidator(read), WithJsonSchema(schema))


class BankAccountIn(Body):
    """A Japanese bank account; the bank and branch codes must be on the Zengin code list
    (zengin-code), or the answer is 422 naming the code."""

    bank_code: Annotated[str, Field(pattern=r"^\d{4}$", description="A bank on the Zengin code list")]
    branch_code: Annotated[str, Field(pattern=r"^\d{3}$", description="A branch of that bank on the Zengin code list")]
    account_type: Literal["ordinary", "current"]
    account_number: Annotated[str, Field(pattern=r"^\d{1,7}$")]
    holder_kana: Annotated[str, _kana(30), AfterValidator(_zengin_name)]


class FeePlanIn(Body):
    """The fee: ``rate`` of billed, or ``per_line_amount`` per line under ``threshold`` yen per line."""

    rate: Annotated[Decimal, Field(ge=0, le=1, max_digits=6, decimal_places=4), *_decimal(0, 1, 4, RATE_TEXT)] = (
        Decimal("0.05")
    )
    threshold: Annotated[int, Field(ge=0, le=1_000_000)] = 600
    per_line_amount: Annotated[
        Decimal, Field(ge=0, le=100_000, max_digits=10, decimal_places=2), *_decimal(0, 100_000, 2, PER_LINE_TEXT)
    ] = Decimal("31.5")
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


@ops_routes.route(
    "POST",
    "/merchants",
    summary="Create a merchant",
    body=MerchantCreate,
    response=MerchantOut,
    status=201,
    errors=(400, 401, 422),
)
async def create_merchant(request: web.Request, body: MerchantCreate) -> web.Response:
    """A new merchant with its bank account, fee plan, first API key and return-signing secret."""
    plan = body.fee_plan or FeePlanIn()
    merchant, key, signing_secret = await merchants.create_merchant(
        name=body.name,
        name_kana=body.name_kana,
        bank=merchants.BankDetails(**body.bank_account.model_dump()),
        fee=merchants.FeeTerms(**plan.model_dump()),
        setup_fee=body.setup_fee,
        max_charge_amount=body.max_charge_amount,
        actor=operator(request),
    )
    return json_response(await _merchant_view(merchant, api_key=key, return_signing_secret=signing_secret), status=201)


@ops_routes.route("GET", "/merchants/{id}", summary="Retrieve a merchant", response=MerchantOut)
async def get_merchant(request: web.Request) -> web.Response:
    """One merchant (without its secrets)."""
    return json_response(await _merchant_view(await merchants.find_merchant(request.match_info["id"])))


@ops_routes.route("PATCH", "/merchants/{id}", summary="Update a merchant", body=MerchantUpdate, response=MerchantOut)
async def update_merchant(request: web.Request, body: MerchantUpdate) -> web.Response:
    """Suspend or reactivate, rename, or change the per-charge maximum."""
    changes = body.model_dump(exclude_none=True)
    merchant = await merchants.update_merchant(request.match_info["id"], changes, actor=operator(request))
    return json_response(await _merchant_view(merchant))


@ops_routes.route("POST", "/merchants/{id}/api_keys", summary="Issue another API key", response=ApiKeyOut, status=201)
async def create_api_key(request: web.Request) -> web.Response:
    """A further live key; the merchant's other keys keep working."""
    record, key = await merchants.add_api_key(request.match_info["id"], actor=operator(request))
    return json_response(_key_view(record, key), status=201)


@ops_routes.route("GET", "/merchants/{id}/api_keys", summary="List API keys")
async def list_api_keys(request: web.Request) -> web.Response:
    """Every key of the merchant, live and revoked (never the keys themselves)."""
    merchant = await merchants.find_merchant(request.match_info["id"])
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
    record = await merchants.revoke_api_key(
        request.match_info["id"], request.match_info["key_id"], actor=operator(request)
    )
    return json_response(_key_view(record))


class MerchantUserCreate(Body):
    """A staff member of the merchant for the data management site."""

    email: Annotated[str, Field(min_length=3, max_length=254, json_schema_extra={"pattern": EMAIL_TEXT})]
    name: Annotated[str, Field(min_length=1, max_length=200, json_schema_extra={"pattern": VISIBLE_TEXT})]
    role: Literal["admin", "developer", "viewer"]


class MerchantUserOut(BaseModel):
    """A merchant user; ``initial_password`` only in the answer that made it."""

    id: str
    email: str
    name: str
    role: str
    initial_password: str | None = None


@ops_routes.route(
    "POST",
    "/merchants/{id}/users",
    summary="Add a user of the merchant data management site",
    body=MerchantUserCreate,
    response=MerchantUserOut,
    status=201,
    errors=(400, 401, 404, 409),
)
async def create_merchant_user(request: web.Request, body: MerchantUserCreate) -> web.Response:
    """The user, with a first password shown once (stored only as an argon2id hash)."""
    user, password = await site_users.create_merchant_user(
        request.match_info["id"], email=body.email, name=body.name, role=body.role, actor=operator(request)
    )
    view = {"id": user.id, "email": user.email, "name": user.name, "role": user.role, "initial_password": password}
    return json_response(view, status=201)
