"""Merchant payouts (精算): one per merchant and period, and the statement lines behind it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from models.base import State, id_factory

if TYPE_CHECKING:
    from models.invoices import InvoiceItem
    from models.merchants import Merchant

__all__ = ["Payout", "PayoutLine", "PayoutStatus"]


class PayoutStatus(State):
    """A payout is ``scheduled`` until finance records the transfer as ``paid``."""

    SCHEDULED = "scheduled"
    PAID = "paid"


class Payout(Model):
    """What the carrier pays one merchant for one period: collected − fee − adjustments."""

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("po"))
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="payouts", on_delete=fields.RESTRICT
    )
    period = fields.CharField(max_length=7)
    billed = fields.BigIntField()
    lines = fields.IntField()
    fee = fields.BigIntField()
    fee_rule = fields.CharField(max_length=16)
    setup_fee = fields.BigIntField(default=0)
    collected = fields.BigIntField()
    adjustments = fields.BigIntField(default=0)
    carried_forward = fields.BigIntField(default=0)
    net = fields.BigIntField()
    scheduled_date = fields.DateField()
    status = fields.CharEnumField(PayoutStatus, max_length=16, default=PayoutStatus.SCHEDULED)
    paid_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    if TYPE_CHECKING:
        merchant_id: str

    class Meta:
        table = "payouts"
        unique_together = (("merchant_id", "period"),)

    def to_api(self) -> dict[str, Any]:
        """The payout object (ops and merchant APIs, and its events)."""
        return {
            "id": self.id,
            "object": "payout",
            "merchant_id": self.merchant_id,
            "period": self.period,
            "billed": self.billed,
            "lines": self.lines,
            "fee": self.fee,
            "fee_rule": self.fee_rule,
            "setup_fee": self.setup_fee,
            "collected": self.collected,
            "adjustments": self.adjustments,
            "carried_forward": self.carried_forward,
            "net": self.net,
            "scheduled_date": self.scheduled_date.isoformat(),
            "status": self.status.value,
            "paid_at": int(self.paid_at.timestamp()) if self.paid_at else None,
            "created": int(self.created_at.timestamp()),
        }


class PayoutLine(Model):
    """One statement line: a collected item, a refund adjustment, the fee."""

    id = fields.BigIntField(primary_key=True)
    payout: fields.ForeignKeyRelation[Payout] = fields.ForeignKeyField(
        "models.Payout", related_name="statement", on_delete=fields.RESTRICT
    )
    kind = fields.CharField(max_length=24)
    item: fields.ForeignKeyNullableRelation[InvoiceItem] = fields.ForeignKeyField(
        "models.InvoiceItem", related_name="payout_lines", null=True, on_delete=fields.RESTRICT
    )
    description = fields.CharField(max_length=500)
    amount = fields.BigIntField()

    class Meta:
        table = "payout_lines"
        unique_together = (("payout_id", "item_id", "kind"),)
