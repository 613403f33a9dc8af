"""CAMARA refunds (product.md §13): a CAMARA refund IS a refund of the charge the payment is,
made by the same ``refund_charge`` as ``/v1`` (so the bill, the credit on the next bill and
the merchant's payout follow §3, §5 and §7), with what the aggregator sent kept beside it.
Refunds are synchronous: each is ``succeeded`` when answered."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, cast

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from billing.periods import JST
from billing.states import BillingStatus, ChargeStatus
from billing.tax import price_of_net, rate_on
from models.audit_log import Actor
from models.camara import CamaraPayment, CamaraRefund
from models.charges import Charge, Refund
from models.lines import Line, LineStatus
from models.merchants import Merchant, MerchantStatus
from models.operations.camara import (
    Caller,
    PaymentQuery,
    Refusal,
    earlier_request,
    find_payment,
    fingerprint,
    payment_status,
)
from models.operations.camara_sinks import notify_refund
from models.operations.charges import refund_charge
from models.passwords import seal_password

__all__ = [
    "RefundPage",
    "RefundRequest",
    "create_refund",
    "find_refund",
    "list_refunds",
    "refund_type",
    "remaining_amount",
]

CODE = "CARRIER_BILLING_REFUND"


@dataclass(frozen=True, kw_only=True)
class RefundRequest:
    """A createRefund body, parsed: ``amount`` in whole yen as sent (None: a total refund)."""

    total: bool
    reference_code: str
    amount: int | None = None
    tax_included: bool = False
    refund_amount: dict[str, Any] = field(default_factory=dict)
    refund_details: list[dict[str, Any]] | None = None
    client_correlator: str | None = None
    reason: str | None = None
    sink: str | None = None
    sink_credential: dict[str, Any] | None = None
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """The request's hash: the same clientCorrelator with the same body is a replay."""
        return fingerprint(self.body)


def refund_type(side: CamaraRefund) -> str:
    """``partial`` when an amount was asked for, else ``total``."""
    return "partial" if "chargingInformation" in (side.refund_amount or {}) else "total"


async def _replayed(caller: Caller, request: RefundRequest) -> Refund | None:
    """The refund a retried request made already; refused as ``earlier_request`` says."""
    earlier = await earlier_request(
        CamaraRefund,
        caller,
        correlator=request.client_correlator,
        hashed=request.fingerprint,
        reference=request.reference_code,
    )
    return await Refund.get(id=earlier.refund_id) if earlier is not None else None


async def _eligible(charge: Charge, payment: CamaraPayment) -> None:
    """Refused unless the payment may be refunded now (product.md §3 refunds, in CAMARA's words)."""
    if charge.status != ChargeStatus.SUCCEEDED:
        raise Refusal(
            422, f"{CODE}.INVALID_PAYMENT_STATUS", f"A {payment_status(charge)} payment has nothing to refund."
        )
    merchant = await Merchant.get(id=charge.merchant_id)
    if merchant.status != MerchantStatus.ACTIVE:
        raise Refusal(403, f"{CODE}.REFUND_DENIED", "This merchant may not refund at present.")
    line = await Line.get(line_id=cast("str", charge.line_id))
    billed = charge.billing_status != BillingStatus.UNBILLED
    if charge.billing_status == BillingStatus.UNCOLLECTIBLE or (billed and line.status == LineStatus.TERMINATED):
        raise Refusal(
            403,
            f"{CODE}.PAYMENT_NOT_ELIGIBLE_FOR_REFUND",
            "The payment was billed to a line that can no longer be credited, or was never collected.",
        )
    if charge.refunded_amount >= charge.amount:
        raise Refusal(403, f"{CODE}.PAYMENT_NOT_ELIGIBLE_FOR_REFUND", "The payment is refunded in full already.")
    _ = payment


def _yen_asked(charge: Charge, payment: CamaraPayment, request: RefundRequest) -> int:
    """The tax-included yen a partial refund gives back, in the payment's own terms."""
    paid_tax_included = bool(payment.charging_information.get("isTaxIncluded", False))
    if request.tax_included != paid_tax_included:
        raise Refusal(
            422,
            f"{CODE}.TAXES_MANAGEMENT_MISMATCH",
            f"The payment's amount was {'tax included' if paid_tax_included else 'net'}; so must the refund's be.",
        )
    amount = cast("int", request.amount)
    given = amount if paid_tax_included else price_of_net(amount, rate_on(charge.created_at.astimezone(JST).date()))
    if given > charge.amount - charge.refunded_amount:
        raise Refusal(
            422,
            f"{CODE}.UNAUTHORIZED_AMOUNT",
            f"The amount is above the {charge.amount - charge.refunded_amount} yen not yet refunded.",
        )
    return given


def _check_details(payment: CamaraPayment, request: RefundRequest) -> None:
    if not request.refund_details:
        return
    items = {str(item.get("id")): item for item in payment.payment_details or []}
    for detail in request.refund_details:
        item = items.get(str(detail.get("paymentItemId")))
        if (
            item is None
            or detail.get("amount", 0) > item.get("amount", 0)
            or detail.get("currency") != item.get("currency")
        ):
            raise Refusal(
                422, f"{CODE}.REFUND_DETAILS_MISMATCH", "refundDetails do not match the payment's paymentDetails."
            )


async def create_refund(
    caller: Caller, payment_id: str, request: RefundRequest, *, secret_key: str, request_id: str | None
) -> tuple[Refund, bool]:
    """A refund of the caller's payment: the rest of it (``total``) or an amount (``partial``).
    Answers the refund and whether it was made now (False: a replay)."""
    async with in_transaction():
        charge, payment = await find_payment(caller, payment_id, lock=True)
        replay = await _replayed(caller, request)
        if replay is not None:
            return replay, False
        await _eligible(charge, payment)
        given = None if request.total else _yen_asked(charge, payment, request)
        _check_details(payment, request)
        refund = await refund_charge(
            charge.merchant_id,
            charge.id,
            amount=given,
            reason=request.reason[:500] if request.reason else None,
            actor=Actor(f"oauth_client:{caller.client_id}", request_id),
        )
        try:
            side = await CamaraRefund.create(
                refund_id=refund.id,
                client_id=caller.client_id,
                client_correlator=request.client_correlator,
                request_hash=request.fingerprint,
                reference_code=request.reference_code,
                refund_amount=request.refund_amount,
                refund_details=request.refund_details,
                merchant_identifier=(request.refund_amount.get("chargingMetaData") or {}).get("merchantIdentifier"),
                charging_metadata=request.refund_amount.get("chargingMetaData"),
                sink=request.sink,
                sealed_sink_credential=(
                    seal_password(json.dumps(request.sink_credential), secret_key) if request.sink_credential else None
                ),
                created_at=refund.created_at,
            )
        except IntegrityError as error:
            raise Refusal(
                409, "ALREADY_EXISTS", "A refund with this referenceCode or clientCorrelator exists."
            ) from error
        await notify_refund(side)  # refund-completed to its sink, in the refund's transaction
    return refund, True


async def find_refund(caller: Caller, payment_id: str, refund_id: str) -> tuple[Refund, CamaraRefund]:
    """The caller's refund ``refund_id`` of its payment ``payment_id``; else 404."""
    await find_payment(caller, payment_id)
    side = (
        await CamaraRefund.get_or_none(refund_id=refund_id, client_id=caller.client_id)
        if len(refund_id) <= 32
        else None
    )
    refund = await Refund.get_or_none(id=refund_id, charge_id=payment_id) if side is not None else None
    if refund is None or side is None:
        raise Refusal(404, "NOT_FOUND", "No such refund.")
    return refund, side


@dataclass(frozen=True)
class RefundPage:
    """One page of a payment's refunds and how many match in all."""

    refunds: list[tuple[Refund, CamaraRefund]]
    total: int


async def list_refunds(caller: Caller, payment_id: str, query: PaymentQuery) -> RefundPage:
    """The caller's refunds of its payment ``payment_id`` (all are ``succeeded``: they are synchronous)."""
    await find_payment(caller, payment_id)
    selection = CamaraRefund.filter(client_id=caller.client_id, refund__charge_id=payment_id)
    if query.statuses and "succeeded" not in query.statuses:
        return RefundPage([], 0)
    if query.created_from is not None:
        selection = selection.filter(created_at__gte=query.created_from)
    if query.created_to is not None:
        selection = selection.filter(created_at__lte=query.created_to)
    if query.merchant_identifier is not None:
        selection = selection.filter(merchant_identifier=query.merchant_identifier)
    total = await selection.count()
    order = ("created_at", "id") if query.ascending else ("-created_at", "-id")
    rows = await selection.order_by(*order).offset((query.page - 1) * query.per_page).limit(query.per_page)
    refunds = {refund.id: refund for refund in await Refund.filter(id__in=[row.refund_id for row in rows])}
    return RefundPage([(refunds[row.refund_id], row) for row in rows], total)


async def remaining_amount(caller: Caller, payment_id: str) -> tuple[Charge, int]:
    """The payment and the yen (tax included) not yet refunded; nothing of a payment that did not succeed."""
    charge, _payment = await find_payment(caller, payment_id)
    if charge.status != ChargeStatus.SUCCEEDED:
        return charge, 0
    return charge, charge.amount - charge.refunded_amount
