"""Subscriptions (月額課金): confirmed once, charged again on the 1st of each month (JST).

Each month's charge is a ``Charge`` with ``subscription`` set and ``renewal_period`` the month,
unique together, so a renewal happens at most once however often the scheduler asks.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

from billing.states import SubscriptionStatus, advance
from models.base import id_factory

if TYPE_CHECKING:
    from models.accounts import SubscriberAccount
    from models.lines import Line
    from models.merchants import Merchant

__all__ = ["Subscription", "SubscriptionStatus"]


class Subscription(Model):
    """A monthly charge of a fixed amount that one subscriber agreed to once."""

    id = fields.CharField(max_length=32, primary_key=True, default=id_factory("sub"))
    merchant: fields.ForeignKeyRelation[Merchant] = fields.ForeignKeyField(
        "models.Merchant", related_name="subscriptions", on_delete=fields.RESTRICT
    )
    if TYPE_CHECKING:
        merchant_id: str
        account_id: str | None
        line_id: str | None
    account: fields.ForeignKeyNullableRelation[SubscriberAccount] = fields.ForeignKeyField(
        "models.SubscriberAccount", related_name="subscriptions", null=True, on_delete=fields.RESTRICT
    )
    line: fields.ForeignKeyNullableRelation[Line] = fields.ForeignKeyField(
        "models.Line", related_name="subscriptions", null=True, on_delete=fields.RESTRICT
    )
    amount = fields.BigIntField()
    description = fields.CharField(max_length=500)
    merchant_reference = fields.CharField(max_length=255, null=True)
    metadata: dict[str, Any] = fields.JSONField(default=dict)
    return_url = fields.CharField(max_length=2048, null=True)
    confirmation_token = fields.CharField(max_length=64, null=True, unique=True)
    confirmation_url = fields.CharField(max_length=2048, null=True)
    status = fields.CharEnumField(SubscriptionStatus, max_length=24, default=SubscriptionStatus.REQUIRES_CONFIRMATION)
    current_period = fields.CharField(max_length=7, null=True)
    expires_at = fields.DatetimeField(null=True)
    canceled_at = fields.DatetimeField(null=True)
    cancel_reason = fields.CharField(max_length=32, null=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "subscriptions"
        indexes = (
            ("merchant_id", "created_at"),
            ("status", "current_period"),
            ("line_id", "status"),
            # The merchant site's status filter, newest first, reads a page by index.
            ("merchant_id", "status", "created_at"),
        )

    def move_to(self, target: SubscriptionStatus) -> None:
        """Change the status through the state machine (``IllegalTransition`` otherwise)."""
        self.status = advance(self.status, target)

    def to_api(self) -> dict[str, Any]:
        """The subscription object of the merchant API (and of its events)."""
        return {
            "id": self.id,
            "object": "subscription",
            "status": self.status.value,
            "amount": self.amount,
            "currency": "jpy",
            "description": self.description,
            "merchant_reference": self.merchant_reference,
            "metadata": self.metadata,
            "confirmation_url": self.confirmation_url,
            "current_period": self.current_period,
            "canceled_at": _epoch(self.canceled_at),
            "created": _epoch(self.created_at),
        }


def _epoch(moment: datetime | None) -> int | None:
    """API timestamps are Unix seconds, as merchants' libraries expect."""
    return None if moment is None else int(moment.timestamp())
