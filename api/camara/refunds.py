"""``/carrier-billing-refund/v0.3``: createRefund, retrieveRefunds, retrieveRefund and
retrievePaymentRemainingAmount over ``models.operations.camara_refunds``."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import Field

from api.camara.bodies import CamaraBody, ChargingInformation, ChargingMetaData, Text, check_sink, sink_of, whole_yen
from api.camara.conventions import operation, parse
from api.camara.payments import page_headers, payment_query, raw_body, stamp
from api.http import json_response
from api.keys import REQUEST_ID, SETTINGS
from models.camara import CamaraRefund
from models.charges import Refund
from models.operations import camara_refunds
from models.operations.camara import Caller, Refusal
from models.operations.camara_refunds import RefundRequest, refund_type

__all__ = ["routes"]

routes = web.RouteTableDef()
CREATE, READ = "carrier-billing-refund:refunds:create", "carrier-billing-refund:refunds:read"


class RefundItem(CamaraBody):
    """``RefundItem``."""

    paymentItemId: Text  # noqa: N815
    amount: Annotated[float | int, Field(ge=0.001)]
    currency: Annotated[str, Field(max_length=3)]
    description: Text


class RefundAmount(CamaraBody):
    """``RefundAmountTotalRefund`` / ``RefundAmountPartialRefund`` (the amount only for a partial one)."""

    chargingInformation: ChargingInformation | None = None  # noqa: N815
    chargingMetaData: ChargingMetaData | None = None  # noqa: N815
    refundDetails: Annotated[list[RefundItem], Field(min_length=1, max_length=100)] | None = None  # noqa: N815


class RefundTransaction(CamaraBody):
    """``AmountTransactionTotalRefund`` / ``AmountTransactionPartialRefund``."""

    clientCorrelator: Annotated[str, Field(min_length=1, max_length=256)] | None = None  # noqa: N815
    refundAmount: RefundAmount  # noqa: N815
    referenceCode: Annotated[str, Field(min_length=1, max_length=256)]  # noqa: N815


class CreateRefundBody(CamaraBody):
    """``CreateTotalRefund`` | ``CreatePartialRefund``."""

    type: Literal["total", "partial"]
    amountTransaction: RefundTransaction  # noqa: N815
    reason: Text | None = None
    sink: Any = None
    sinkCredential: Any = None  # noqa: N815


def _request(body: CreateRefundBody, raw: dict[str, Any], *, allow_insecure: bool) -> RefundRequest:
    amount = body.amountTransaction.refundAmount
    information = amount.chargingInformation
    total = body.type == "total"
    if not total and information is None:
        raise Refusal(400, "INVALID_ARGUMENT", "A partial refund needs refundAmount.chargingInformation.")
    if information is not None and information.currency != "JPY":
        raise Refusal(400, "INVALID_ARGUMENT", "Only the currency JPY is supported.")
    for item in amount.refundDetails or []:
        if item.currency != "JPY":
            raise Refusal(400, "INVALID_ARGUMENT", "Only the currency JPY is supported (refundDetails).")
        whole_yen(item.amount, "refundDetails amount")
    sink, credential = sink_of(body.sink, body.sinkCredential, allow_insecure=allow_insecure)
    return RefundRequest(
        total=total,
        reference_code=body.amountTransaction.referenceCode,
        amount=None if total or information is None else whole_yen(information.amount, "amount"),
        tax_included=bool(information and information.isTaxIncluded),
        refund_amount=amount.model_dump(exclude_none=True) if not total else _total_amount(amount),
        refund_details=[item.model_dump(exclude_none=True) for item in amount.refundDetails]
        if amount.refundDetails and not total
        else None,
        client_correlator=body.amountTransaction.clientCorrelator,
        reason=body.reason,
        sink=sink,
        sink_credential=credential,
        body=raw,
    )


def _total_amount(amount: RefundAmount) -> dict[str, Any]:
    """A total refund keeps only its chargingMetaData (its amount is the payment's rest)."""
    return (
        {"chargingMetaData": amount.chargingMetaData.model_dump(exclude_none=True)} if amount.chargingMetaData else {}
    )


def refund_view(refund: Refund, side: CamaraRefund) -> dict[str, Any]:
    """The ``Refund`` object (``TotalRefund`` or ``PartialRefund``)."""
    transaction: dict[str, Any] = {"refundAmount": side.refund_amount or {}, "referenceCode": side.reference_code}
    if side.client_correlator is not None:
        transaction["clientCorrelator"] = side.client_correlator
    view: dict[str, Any] = {
        "refundId": refund.id,
        "refundStatus": "succeeded",
        "type": refund_type(side),
        "refundCreationDate": stamp(refund.created_at),
        "refundDate": stamp(refund.created_at),
        "amountTransaction": transaction,
    }
    if refund.reason:
        view["reason"] = refund.reason
    if side.sink:
        view["sink"] = side.sink
    return view


@routes.post("/payments/{payment_id}/refunds")
@operation(CREATE)
async def create_refund(request: web.Request, caller: Caller) -> web.Response:
    """createRefund: synchronous, ``succeeded`` when answered."""
    body = await parse(request, CreateRefundBody)
    settings = request.config_dict[SETTINGS]
    refund_request = _request(body, await raw_body(request), allow_insecure=settings.webhooks_allow_insecure)
    await check_sink(refund_request.sink, allow_insecure=settings.webhooks_allow_insecure)
    refund, _made = await camara_refunds.create_refund(
        caller,
        request.match_info["payment_id"],
        refund_request,
        secret_key=settings.secret_key,
        request_id=request.get(REQUEST_ID),
    )
    side = await CamaraRefund.get(refund_id=refund.id)
    return json_response(refund_view(refund, side), status=201)


@routes.get("/payments/{payment_id}/refunds/remaining-amount")
@operation(READ)
async def remaining_amount(request: web.Request, caller: Caller) -> web.Response:
    """retrievePaymentRemainingAmount: the yen not yet refunded, tax included."""
    _charge, amount = await camara_refunds.remaining_amount(caller, request.match_info["payment_id"])
    return json_response(
        {"amount": amount, "currency": "JPY", "description": "Amount not refunded so far", "isTaxIncluded": True}
    )


@routes.get("/payments/{payment_id}/refunds/{refund_id}")
@operation(READ)
async def retrieve_refund(request: web.Request, caller: Caller) -> web.Response:
    """RetrieveRefund."""
    refund, side = await camara_refunds.find_refund(
        caller, request.match_info["payment_id"], request.match_info["refund_id"]
    )
    return json_response(refund_view(refund, side))


@routes.get("/payments/{payment_id}/refunds")
@operation(READ)
async def retrieve_refunds(request: web.Request, caller: Caller) -> web.Response:
    """retrieveRefunds: the payment's refunds, a page at a time."""
    query = payment_query(request, prefix="refund")
    page = await camara_refunds.list_refunds(caller, request.match_info["payment_id"], query)
    views = [refund_view(refund, side) for refund, side in page.refunds]
    return json_response(views, headers=page_headers(query, page.total, views[-1]["refundId"] if views else None))
