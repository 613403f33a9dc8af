"""Charges (都度課金), their refunds, and the monthly usage rows that keep limits atomic.

A charge is created by a merchant in ``requires_confirmation``, moves to ``processing`` when the
subscriber signs in, and the auth worker decides ``succeeded`` or ``failed``. A succeeded charge
then moves through billing (``billing_status``). A subscription's renewal is a charge too, at
most one per subscription and month (``renewal_period``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tortoise import fields
from tortoise.models import Model

from billing.states import BillingStatus, ChargeStatus, advance
from models.base import State, id_factory

if TYPE_CHECKING:
    from models.accounts import SubscriberAccount
    from models.lines import Line
    from models.merchants import Merchant
    from models.payouts import Payout
    from models.subscriptions import Subscription

__all__ = [
    "CHARGE_API_FIELDS",
    "AccountUsage",
    "ApiField",
    "BillingStatus",
    "Charge",
    "ChargeStatus",
    "ConfirmationAttempt",
    "FailureCode",
    "LineUsage",
    "Refund",
]


class FailureCode(State):
    """Why a charge failed; the first failing check of product.md §4 wins."""

    INVALID_CREDENTIALS = "invalid_credentials"
    ACCOUNT_LOCKED = "account_locked"
    LINE_MISMATCH = "line_mismatch"
    LINE_INACTIVE = "line_inactive"
    LINE_INELIGIBLE = "line_ineligible"
    LIMIT_EXCEEDED = "limit_exceeded"
    MERCHANT_INACTIVE = "merchant_inactive"
    EXPIRED = "expired"


class Charge(Model):
    """One purchase of one subscriber from one merchant, in whole yen, tax included."""

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("ch"))
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="charges", on_delete=fields.RESTRICT
    )
    subscription: fields.ForeignKeyNullableRelation[Subscription] = fields.ForeignKeyField(
        "models.Subscription", related_name="charges", null=True, on_delete=fields.RESTRICT
    )
    renewal_period = fields.CharField(max_length=7, null=True)
    account: fields.ForeignKeyNullableRelation[SubscriberAccount] = fields.ForeignKeyField(
        "models.SubscriberAccount", related_name="charges", null=True, on_delete=fields.RESTRICT
    )
    line: fields.ForeignKeyNullableRelation[Line] = fields.ForeignKeyField(
        "models.Line", related_name="charges", null=True, on_delete=fields.RESTRICT
    )
    amount = fields.BigIntField()
    currency = fields.CharField(max_length=3, default="jpy")
    description = fields.CharField(max_length=500)
    merchant_reference = fields.CharField(max_length=255, null=True)
    metadata: dict[str, Any] = fields.JSONField(default=dict)
    return_url = fields.CharField(max_length=2048, null=True)
    confirmation_token = fields.CharField(max_length=64, null=True, unique=True)
    confirmation_url = fields.CharField(max_length=2048, null=True)
    status = fields.CharEnumField(ChargeStatus, max_length=24, default=ChargeStatus.REQUIRES_CONFIRMATION)
    failure_code = fields.CharEnumField(FailureCode, max_length=24, null=True)
    client_address = fields.CharField(max_length=64, null=True)
    period = fields.CharField(max_length=7, null=True)
    billing_status = fields.CharEnumField(BillingStatus, max_length=16, null=True)
    refunded_amount = fields.BigIntField(default=0)
    payout: fields.ForeignKeyNullableRelation[Payout] = fields.ForeignKeyField(
        "models.Payout", related_name="charges", null=True, on_delete=fields.RESTRICT
    )
    created_at = fields.DatetimeField()
    expires_at = fields.DatetimeField(null=True)
    decided_at = fields.DatetimeField(null=True)
    # A two-step purchase (CAMARA preparePayment): the subscriber's confirmation reserves it,
    # the aggregator's confirmation makes it succeed.
    two_step = fields.BooleanField(default=False, db_default=False)
    # Only an ID of this line may confirm it (a payment prepared for a line's phone number or
    # under a subscriber's token).
    expected_line: fields.ForeignKeyNullableRelation[Line] = fields.ForeignKeyField(
        "models.Line", related_name="expected_charges", null=True, on_delete=fields.RESTRICT, db_constraint=True
    )

    if TYPE_CHECKING:
        merchant_id: str
        subscription_id: str | None
        account_id: str | None
        line_id: str | None
        payout_id: str | None
        expected_line_id: str | None

    class Meta:
        table = "charges"
        unique_together = (("subscription_id", "renewal_period"),)
        # (line_id, period): the month close finds each batch's charges by line range and period.
        indexes = (
            ("merchant_id", "created_at"),
            ("status", "expires_at"),
            ("period", "billing_status"),
            ("line_id", "period"),
            # The merchant site's purchase filters, newest first, read a page by index.
            ("merchant_id", "status", "created_at"),
            ("merchant_id", "billing_status", "created_at"),
        )

    def move_to(self, target: ChargeStatus, *, failure_code: FailureCode | None = None) -> None:
        """Change the status through the state machine (``IllegalTransition`` otherwise); the
        failure code goes with it (None unless failed)."""
        self.status = advance(self.status, target)
        self.failure_code = failure_code  # type: ignore[assignment]  # Tortoise types nullable enums as non-null

    def to_api(self) -> dict[str, Any]:
        """The charge object of the merchant API (and of its events), field by field as
        ``CHARGE_API_FIELDS`` declares it."""
        return {field.name: field.read(self) for field in CHARGE_API_FIELDS}


@dataclass(frozen=True)
class ApiField:
    """One field of the charge object: its ``name`` in the API, the model ``attribute`` it
    shows (``None`` for the constant ``value``) and how it is shown (``kind``): ``plain``,
    ``enum`` (its value, or null), ``json`` (a JSON column) or ``epoch`` (whole seconds)."""

    name: str
    attribute: str | None
    kind: Literal["plain", "enum", "json", "epoch", "constant"] = "plain"
    value: str | None = None

    def read(self, charge: Charge) -> Any:
        """The field's value for ``charge``, as the API shows it."""
        if self.attribute is None:
            return self.value
        value = getattr(charge, self.attribute)
        if self.kind == "enum":
            return value.value if value is not None else None
        if self.kind == "epoch":
            return int(value.timestamp())
        return value


# The charge object, once: ``Charge.to_api`` reads it, and so does the month close's SQL that
# writes the ``charge.billed`` snapshots (models/close_sql.py). A new field is added here only.
CHARGE_API_FIELDS: tuple[ApiField, ...] = (
    ApiField("id", "id"),
    ApiField("object", None, "constant", "charge"),
    ApiField("status", "status", "enum"),
    ApiField("amount", "amount"),
    ApiField("currency", "currency"),
    ApiField("description", "description"),
    ApiField("merchant_reference", "merchant_reference"),
    ApiField("metadata", "metadata", "json"),
    ApiField("return_url", "return_url"),
    ApiField("confirmation_url", "confirmation_url"),
    ApiField("failure_code", "failure_code", "enum"),
    ApiField("billing_status", "billing_status", "enum"),
    ApiField("subscription", "subscription_id"),
    ApiField("refunded_amount", "refunded_amount"),
    ApiField("payout_id", "payout_id"),
    ApiField("period", "period"),
    ApiField("created", "created_at", "epoch"),
)


class ConfirmationAttempt(Model):
    """One sign-in on a confirmation page, waiting for the auth worker.

    The password travels to the worker sealed (encrypted with a key derived from
    ``MATOMETE_SECRET_KEY``) in this row, never in a message, and is wiped once decided.
    """

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("att"))
    charge: fields.ForeignKeyRelation[Charge] = fields.ForeignKeyField(
        "models.Charge", related_name="attempts", on_delete=fields.RESTRICT
    )
    login_id = fields.CharField(max_length=64)
    sealed_password = fields.TextField(null=True)
    client_address = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()
    decided_at = fields.DatetimeField(null=True)
    failure_code = fields.CharEnumField(FailureCode, max_length=24, null=True)

    if TYPE_CHECKING:
        charge_id: str

    class Meta:
        table = "confirmation_attempts"


class Refund(Model):
    """Money given back on a succeeded charge: before billing it lowers the bill, after billing
    it is a credit item on the line's next invoice and an adjustment on the merchant's payout."""

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("re"))
    charge: fields.ForeignKeyRelation[Charge] = fields.ForeignKeyField(
        "models.Charge", related_name="refunds", on_delete=fields.RESTRICT
    )
    amount = fields.BigIntField()
    reason = fields.CharField(max_length=500, null=True)
    status = fields.CharField(max_length=16, default="succeeded")
    credited = fields.BooleanField(default=False)
    created_at = fields.DatetimeField()

    class Meta:
        table = "refunds"
        # A charge's refunds; the close finds the few not yet credited among all the refunds ever made.
        indexes = (("charge_id",), ("credited", "charge_id"))

    def to_api(self) -> dict[str, Any]:
        """The refund object of the merchant API (and of its ``refund.credited`` event)."""
        return {
            "id": self.id,
            "object": "refund",
            "charge": self.charge_id,  # type: ignore[attr-defined]
            "amount": self.amount,
            "reason": self.reason,
            "status": self.status,
            "created": int(self.created_at.timestamp()),
        }


class AccountUsage(Model):
    """What one ID spent in one month, locked while a purchase is decided (atomic limits)."""

    id = fields.BigIntField(primary_key=True)
    account: fields.ForeignKeyRelation[SubscriberAccount] = fields.ForeignKeyField(
        "models.SubscriberAccount", related_name="usage", on_delete=fields.RESTRICT
    )
    period = fields.CharField(max_length=7)
    amount = fields.BigIntField(default=0)

    class Meta:
        table = "account_usage"
        unique_together = (("account_id", "period"),)


class LineUsage(Model):
    """What all IDs of one line spent in one month, locked with ``AccountUsage``."""

    id = fields.BigIntField(primary_key=True)
    line: fields.ForeignKeyRelation[Line] = fields.ForeignKeyField(
        "models.Line", related_name="usage", on_delete=fields.RESTRICT
    )
    period = fields.CharField(max_length=7)
    amount = fields.BigIntField(default=0)

    class Meta:
        table = "line_usage"
        unique_together = (("line_id", "period"),)
