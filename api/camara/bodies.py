"""Request bodies of the CAMARA operations as the YAMLs define them (pydantic): types are not
coerced, properties the YAML does not know are ignored (its schemas allow them), and Matomete's
own rules on top: amounts in whole yen of ``JPY`` only, a sink over https, an access-token sink
credential."""

from __future__ import annotations

import ipaddress
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import AfterValidator, ConfigDict, Field

from api.http import Body
from models.operations.camara import PaymentRequest, Refusal
from models.operations.webhooks import MAX_URL_LENGTH, URL, UnsafeDestination, check_destination

__all__ = [
    "E164",
    "CamaraBody",
    "ChargingInformation",
    "ChargingMetaData",
    "CreatePaymentBody",
    "PhoneNumberBody",
    "PreparePaymentBody",
    "Text",
    "ValidatePaymentBody",
    "check_sink",
    "payment_request",
    "sink_of",
    "whole_yen",
]

E164 = r"^\+[1-9][0-9]{4,14}$"


def _thousandths(value: float) -> float:
    """CAMARA's ``multipleOf: 0.001`` (pydantic's own check fails on binary fractions: 330 % 0.001)."""
    if abs(value * 1000 - round(value * 1000)) > 1e-6:
        raise ValueError("must be a multiple of 0.001")
    return value


def _hundredths(value: float) -> float:
    if abs(value * 100 - round(value * 100)) > 1e-6:
        raise ValueError("must be a multiple of 0.01")
    return value


Amount = Annotated[float | int, Field(ge=0.001), AfterValidator(_thousandths)]
TaxAmount = Annotated[float | int, Field(ge=0), AfterValidator(_thousandths)]
Text = Annotated[str, Field(max_length=500)]


class CamaraBody(Body):
    """The project's request body (strict types, no control characters in any text), but for
    unknown properties: allowed and ignored, as the YAML's schemas allow them."""

    model_config = ConfigDict(strict=True, extra="ignore")


class ChargingInformation(CamaraBody):
    """``ChargingInformation``."""

    amount: Amount
    currency: Annotated[str, Field(max_length=3)]
    description: Annotated[str, Field(min_length=1, max_length=500)]
    isTaxIncluded: bool = False  # noqa: N815 - CAMARA's name
    taxAmount: TaxAmount | None = None  # noqa: N815


class ChargingMetaData(CamaraBody):
    """``ChargingMetaData``: the real merchant behind the aggregator."""

    merchantName: Text | None = None  # noqa: N815
    merchantIdentifier: Text | None = None  # noqa: N815
    fee: Annotated[float | int, AfterValidator(_hundredths)] | None = None
    purchaseCategoryCode: Text | None = None  # noqa: N815
    channel: Text | None = None
    serviceId: Text | None = None  # noqa: N815
    productId: Text | None = None  # noqa: N815


class PaymentItem(CamaraBody):
    """``PaymentItem``."""

    id: Text
    amount: Amount
    currency: Annotated[str, Field(max_length=3)]
    description: Text
    isTaxIncluded: bool = False  # noqa: N815
    taxAmount: TaxAmount | None = None  # noqa: N815


class PaymentAmount(CamaraBody):
    """``PaymentAmountForCharge`` / ``PaymentAmountForReserve``."""

    chargingInformation: ChargingInformation  # noqa: N815
    chargingMetaData: ChargingMetaData | None = None  # noqa: N815
    paymentDetails: Annotated[list[PaymentItem], Field(min_length=1, max_length=100)] | None = None  # noqa: N815


class AmountTransactionInput(CamaraBody):
    """``AmountTransactionInput`` / ``AmountReservationTransactionForReserveInput``."""

    phoneNumber: Annotated[str, Field(pattern=E164)] | None = None  # noqa: N815
    clientCorrelator: Annotated[str, Field(min_length=1, max_length=256)] | None = None  # noqa: N815
    paymentAmount: PaymentAmount  # noqa: N815
    referenceCode: Annotated[str, Field(min_length=1, max_length=256)]  # noqa: N815


class CreatePaymentBody(CamaraBody):
    """``CreatePayment`` (the sink and its credential checked by ``_sink``)."""

    amountTransaction: AmountTransactionInput  # noqa: N815
    sink: Any = None
    sinkCredential: Any = None  # noqa: N815


class PreparePaymentBody(CreatePaymentBody):
    """``BodyAmountReservationTransactionForReserveInput``."""


class PhoneNumberBody(CamaraBody):
    """``PhoneNumber`` (confirm and cancel)."""

    phoneNumber: Annotated[str, Field(pattern=E164)] | None = None  # noqa: N815


class ValidatePaymentBody(CamaraBody):
    """``ValidatePayment``."""

    authorizationId: Annotated[str, Field(max_length=256)]  # noqa: N815
    code: Annotated[str, Field(max_length=64)]


class AccessTokenCredential(CamaraBody):
    """``AccessTokenCredential``, the only sink credential Matomete uses."""

    credentialType: Literal["ACCESSTOKEN"]  # noqa: N815
    accessToken: Annotated[str, Field(min_length=1, max_length=4096)]  # noqa: N815
    accessTokenExpiresUtc: datetime  # noqa: N815
    accessTokenType: Literal["bearer"]  # noqa: N815


def _loopback(url: str) -> bool:
    """An http URL to this machine (a test or ``matomete up`` receiving its own notifications)."""
    try:
        host = urlsplit(url).hostname or ""
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


CREDENTIAL_TYPES = ("PLAIN", "ACCESSTOKEN", "REFRESHTOKEN")


def sink_of(sink: Any, credential: Any, *, allow_insecure: bool = False) -> tuple[str | None, dict[str, Any] | None]:
    """The sink (an https URL: else 400 ``INVALID_SINK``; an http one to a loopback address too
    when ``allow_insecure``, as for merchants' endpoints) and its credential (``ACCESSTOKEN``
    only: else ``INVALID_CREDENTIAL``; a token type other than ``bearer``: ``INVALID_TOKEN``).
    Either of the wrong JSON type, or a credential of a type CAMARA does not define, breaks the
    schema itself: 400 ``INVALID_ARGUMENT``."""
    if sink is not None and not isinstance(sink, str):
        raise Refusal(400, "INVALID_ARGUMENT", "sink must be a string (an https URL).")
    if credential is not None and (
        not isinstance(credential, dict) or credential.get("credentialType") not in CREDENTIAL_TYPES
    ):
        raise Refusal(
            400, "INVALID_ARGUMENT", f"sinkCredential must be an object with a credentialType of {CREDENTIAL_TYPES}."
        )
    if sink is not None and (
        len(sink) > MAX_URL_LENGTH
        or not URL.fullmatch(sink)
        or not (sink.startswith("https://") or (allow_insecure and sink.startswith("http://") and _loopback(sink)))
    ):
        raise Refusal(400, "INVALID_SINK", "The sink must be an https URL.")
    if credential is None:
        return sink, None
    if credential.get("credentialType") != "ACCESSTOKEN":
        raise Refusal(400, "INVALID_CREDENTIAL", "Only a sink credential of type ACCESSTOKEN is supported.")
    if credential.get("accessTokenType") != "bearer":
        raise Refusal(400, "INVALID_TOKEN", "Only an access token of type bearer is supported.")
    try:
        parsed = AccessTokenCredential.model_validate(credential, strict=False)
    except ValueError:
        raise Refusal(400, "INVALID_ARGUMENT", "The sink credential is incomplete or malformed.") from None
    if parsed.accessTokenExpiresUtc.tzinfo is None:
        raise Refusal(400, "INVALID_ARGUMENT", "accessTokenExpiresUtc must have a time zone.")
    return sink, parsed.model_dump(mode="json")


async def check_sink(sink: str | None, *, allow_insecure: bool) -> None:
    """The webhook engine's destination checks on a sink (no loopback, private or metadata
    address unless ``allow_insecure``): 400 ``INVALID_SINK`` otherwise."""
    if sink is None:
        return
    try:
        await check_destination(sink, allow_insecure=allow_insecure)
    except UnsafeDestination:
        raise Refusal(400, "INVALID_SINK", "The sink must be an https URL the platform may call.") from None


def whole_yen(amount: float, what: str) -> int:
    """``amount`` as whole yen; a fraction is a 400 (JPY has none)."""
    if amount != int(amount):
        raise Refusal(400, "INVALID_ARGUMENT", f"{what} must be a whole number of yen (JPY has no fractions).")
    return int(amount)


def payment_request(body: CreatePaymentBody, raw: dict[str, Any], *, allow_insecure: bool = False) -> PaymentRequest:
    """The operation's request: whole yen of JPY only; the sink and its credential checked
    (``check_sink`` makes the engine's address checks on the sink, which need a DNS lookup)."""
    transaction = body.amountTransaction
    information = transaction.paymentAmount.chargingInformation
    if information.currency != "JPY":
        raise Refusal(400, "INVALID_ARGUMENT", "Only the currency JPY is supported.")
    amount = whole_yen(information.amount, "amount")
    for item in transaction.paymentAmount.paymentDetails or []:
        if item.currency != "JPY":
            raise Refusal(400, "INVALID_ARGUMENT", "Only the currency JPY is supported (paymentDetails).")
        whole_yen(item.amount, "paymentDetails amount")
    sink, credential = sink_of(body.sink, body.sinkCredential, allow_insecure=allow_insecure)
    metadata = transaction.paymentAmount.chargingMetaData
    return PaymentRequest(
        amount=amount,
        currency=information.currency,
        description=information.description,
        tax_included=information.isTaxIncluded,
        charging_information=information.model_dump(exclude_none=True),
        reference_code=transaction.referenceCode,
        client_correlator=transaction.clientCorrelator,
        phone_number=transaction.phoneNumber,
        charging_metadata=metadata.model_dump(exclude_none=True) if metadata else None,
        payment_details=(
            [item.model_dump(exclude_none=True) for item in transaction.paymentAmount.paymentDetails]
            if transaction.paymentAmount.paymentDetails
            else None
        ),
        sink=sink,
        sink_credential=credential,
        body=raw,
    )
