"""Merchants (有料サービス提供企業): their API keys, fee plans, bank account and staff users,
and the idempotency keys that make each of their POSTs happen at most once.

API keys are stored as a SHA-256 digest (they are long random strings, so a slow hash adds
nothing); the key itself is shown once, when it is issued.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from models.base import State, id_factory

__all__ = [
    "ApiKey",
    "BankAccount",
    "FeePlan",
    "IdempotencyKey",
    "Merchant",
    "MerchantStatus",
    "MerchantUser",
]

DEFAULT_MAX_CHARGE = 50_000


class MerchantStatus(State):
    """A suspended merchant's purchases fail with ``merchant_inactive``."""

    ACTIVE = "active"
    SUSPENDED = "suspended"


class Merchant(Model):
    """A company that charges subscribers through the carrier."""

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("mer"))
    name = fields.CharField(max_length=200)
    name_kana = fields.CharField(max_length=200)
    status = fields.CharEnumField(MerchantStatus, max_length=16, default=MerchantStatus.ACTIVE)
    return_signing_secret = fields.CharField(max_length=128)
    max_charge_amount = fields.BigIntField(default=DEFAULT_MAX_CHARGE)
    setup_fee = fields.BigIntField(default=0)
    # An admin may require every user of the merchant to sign in with a TOTP second step.
    require_totp = fields.BooleanField(default=False, db_default=False)
    created_at = fields.DatetimeField()

    class Meta:
        table = "merchants"


class ApiKey(Model):
    """A secret key of a merchant: several may be live at once, each revocable."""

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("key"))
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="api_keys", on_delete=fields.RESTRICT
    )
    prefix = fields.CharField(max_length=16)
    key_hash = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField()
    revoked_at = fields.DatetimeField(null=True)
    # Written at most once a minute per key (``models.operations.merchants.note_key_used``).
    last_used_at = fields.DatetimeField(null=True)

    class Meta:
        table = "api_keys"


class FeePlan(Model):
    """The fee of a merchant from ``effective_from`` on: ``rate`` of billed, or ``per_line_amount``
    per line when billed per line is under ``threshold`` (product.md §7)."""

    id = fields.BigIntField(primary_key=True)
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="fee_plans", on_delete=fields.RESTRICT
    )
    effective_from = fields.CharField(max_length=7)
    rate = fields.DecimalField(max_digits=6, decimal_places=4)
    threshold = fields.BigIntField()
    per_line_amount = fields.DecimalField(max_digits=10, decimal_places=2)

    class Meta:
        table = "fee_plans"
        unique_together = (("merchant_id", "effective_from"),)


class BankAccount(Model):
    """Where the payouts of a merchant go (a Zengin 総合振込 data record)."""

    id = fields.BigIntField(primary_key=True)
    merchant: fields.OneToOneRelation[Merchant] = fields.OneToOneField(
        "models.Merchant", related_name="bank_account", on_delete=fields.RESTRICT
    )
    bank_code = fields.CharField(max_length=4)
    branch_code = fields.CharField(max_length=3)
    account_type = fields.CharField(max_length=8)
    account_number = fields.CharField(max_length=7)
    holder_kana = fields.CharField(max_length=30)
    updated_at = fields.DatetimeField()

    class Meta:
        table = "bank_accounts"


class MerchantUser(Model):
    """A staff member of a merchant who signs in to the data management site ``/merchant``."""

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("muser"))
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="users", on_delete=fields.RESTRICT
    )
    email = fields.CharField(max_length=254, unique=True)
    name = fields.CharField(max_length=200)
    role = fields.CharField(max_length=16)
    password_hash = fields.CharField(max_length=255)
    active = fields.BooleanField(default=True)
    failed_attempts = fields.SmallIntField(default=0, db_default=0)
    locked_until = fields.DatetimeField(null=True)
    # Base32 RFC 6238 secret; ``totp_enabled`` once the user has proved a code from it.
    totp_secret = fields.CharField(max_length=64, null=True)
    totp_enabled = fields.BooleanField(default=False, db_default=False)
    last_sign_in_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    if TYPE_CHECKING:
        merchant_id: str

    class Meta:
        table = "merchant_users"


class IdempotencyKey(Model):
    """One ``Idempotency-Key`` of one merchant: the request it stood for and, once done, the
    response to replay. The unique key is what makes two concurrent requests unable to both win."""

    id = fields.BigIntField(primary_key=True)
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="idempotency_keys", on_delete=fields.RESTRICT
    )
    key = fields.CharField(max_length=255)
    request_fingerprint = fields.CharField(max_length=64)
    response_status = fields.SmallIntField(null=True)
    response_body = fields.TextField(null=True)
    created_at = fields.DatetimeField()
    completed_at = fields.DatetimeField(null=True)

    class Meta:
        table = "idempotency_keys"
        unique_together = (("merchant_id", "key"),)
