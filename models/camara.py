"""What a CAMARA Carrier Billing payment or refund carries beyond the charge or refund it is
(product.md §13): the aggregator client that made it, its idempotency keys (``clientCorrelator``
and ``referenceCode``, each unique per client), the charging information as sent, the real
merchant behind the aggregator (``chargingMetaData``), ``paymentDetails`` and the sink its
notifications go to. The money is the charge's and the refund's own rows: these tables only
let the CAMARA routers answer in CAMARA's words.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from models.charges import Charge, Refund

__all__ = ["CamaraPayment", "CamaraRefund"]


class CamaraPayment(Model):
    """One CAMARA payment: the charge of the same id, as an aggregator client made it."""

    id = fields.BigIntField(primary_key=True)
    charge: fields.OneToOneRelation[Charge] = fields.OneToOneField(
        "models.Charge", related_name="camara", on_delete=fields.RESTRICT
    )
    client_id = fields.CharField(max_length=32)
    # The OAuth subject the payment was made under: a pairwise subscriber id, or the client's.
    subject = fields.CharField(max_length=64)
    client_correlator = fields.CharField(max_length=256, null=True)
    # The request's fingerprint: the same clientCorrelator with the same body is a replay.
    request_hash = fields.CharField(max_length=64)
    reference_code = fields.CharField(max_length=256)
    phone_number = fields.CharField(max_length=16, null=True)
    charging_information: dict[str, Any] = fields.JSONField()
    charging_metadata: dict[str, Any] | None = fields.JSONField(null=True)
    merchant_identifier = fields.CharField(max_length=256, null=True)
    payment_details: list[Any] | None = fields.JSONField(null=True)
    sink = fields.CharField(max_length=2048, null=True)
    # The sink's credential, sealed with the secret key (it is a bearer token of the aggregator's).
    sealed_sink_credential = fields.TextField(null=True)
    created_at = fields.DatetimeField()

    if TYPE_CHECKING:
        charge_id: str

    class Meta:
        table = "camara_payments"
        unique_together = (("client_id", "reference_code"), ("client_id", "client_correlator"))
        indexes = (("client_id", "created_at"),)


class CamaraRefund(Model):
    """One CAMARA refund: the refund of the same id, as an aggregator client asked for it."""

    id = fields.BigIntField(primary_key=True)
    refund: fields.OneToOneRelation[Refund] = fields.OneToOneField(
        "models.Refund", related_name="camara", on_delete=fields.RESTRICT
    )
    client_id = fields.CharField(max_length=32)
    client_correlator = fields.CharField(max_length=256, null=True)
    request_hash = fields.CharField(max_length=64)
    reference_code = fields.CharField(max_length=256)
    refund_amount: dict[str, Any] | None = fields.JSONField(null=True)
    refund_details: list[Any] | None = fields.JSONField(null=True)
    merchant_identifier = fields.CharField(max_length=256, null=True)
    charging_metadata: dict[str, Any] | None = fields.JSONField(null=True)
    sink = fields.CharField(max_length=2048, null=True)
    sealed_sink_credential = fields.TextField(null=True)
    created_at = fields.DatetimeField()

    if TYPE_CHECKING:
        refund_id: str

    class Meta:
        table = "camara_refunds"
        unique_together = (("client_id", "reference_code"), ("client_id", "client_correlator"))
