"""CAMARA Carrier Billing payments and refunds (product.md §13) over the same charges, refunds,
decisions and limits as ``/v1``: a CAMARA payment IS a charge of the aggregator client's
merchant, and a CAMARA refund IS a refund.

Who pays comes from the access token: a three-legged token names the subscriber ID that signed
in (and its line); a two-legged one names only the client, and then the request must name the
line by its ``phoneNumber``. Every refusal is a ``Refusal`` carrying CAMARA's own status and code;
nothing is written when one is raised before the operation's transaction commits.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from billing.periods import JST, period_of
from billing.purchases import decide_renewal
from billing.states import ChargeStatus
from billing.tax import price_of_net, rate_on
from models.accounts import AccountStatus, SubscriberAccount
from models.base import fits_id_column
from models.camara import CamaraPayment, CamaraRefund
from models.charges import Charge, FailureCode
from models.clock import clock
from models.lines import Line, LineStatus
from models.merchants import Merchant, MerchantStatus
from models.operations.camara_sinks import ensure_sink
from models.operations.charges import PurchaseRequest, awaiting_confirmation, end_charge
from models.operations.purchases import (
    capture_reservation,
    consented_facts,
    lock_usage,
    record_decision,
    release_reservation,
)
from models.passwords import seal_password
from models.statements import insert

__all__ = [
    "PAYMENT_STATUSES",
    "Caller",
    "PaymentPage",
    "PaymentQuery",
    "PaymentRequest",
    "Refusal",
    "cancel_payment",
    "confirm_payment",
    "create_payment",
    "earlier_request",
    "find_payment",
    "fingerprint",
    "list_payments",
    "payment_status",
    "prepare_payment",
    "validate_payment",
]

CONSENT_TYPE = "carrier_billing_payment"
# CAMARA's words for a charge's statuses.
PAYMENT_STATUSES: dict[ChargeStatus, str] = {
    ChargeStatus.REQUIRES_CONFIRMATION: "pending_validation",
    ChargeStatus.PROCESSING: "processing",
    ChargeStatus.RESERVED: "reserved",
    ChargeStatus.SUCCEEDED: "succeeded",
    ChargeStatus.FAILED: "denied",
    ChargeStatus.CANCELED: "cancelled",
}


class Refusal(Exception):
    """A CAMARA error answer: HTTP ``status``, CAMARA ``code`` and a message for people."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True, kw_only=True)
class Caller:
    """Who calls, from the access token: the aggregator client, its merchant and, for a
    three-legged token, the subscriber ID that signed in and its line."""

    client_id: str
    merchant_id: str
    subject: str
    account_id: str | None = None
    line_id: str | None = None
    authorization_details: tuple[dict[str, Any], ...] = ()
    token_id: str = ""
    scopes: frozenset[str] = frozenset()

    @property
    def three_legged(self) -> bool:
        """The token names a subscriber."""
        return self.account_id is not None


@dataclass(frozen=True, kw_only=True)
class PaymentRequest:
    """A createPayment or preparePayment body, parsed: ``amount`` in whole yen as sent,
    ``tax_included`` as sent (false or absent: a net amount)."""

    amount: int
    currency: str
    description: str
    tax_included: bool
    charging_information: dict[str, Any]
    reference_code: str
    client_correlator: str | None = None
    phone_number: str | None = None
    charging_metadata: dict[str, Any] | None = None
    payment_details: list[Any] | None = None
    sink: str | None = None
    sink_credential: dict[str, Any] | None = None
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        """The request's hash: the same clientCorrelator with the same body is a replay."""
        return fingerprint(self.body)


def fingerprint(body: dict[str, Any]) -> str:
    """A request body's hash, whatever the order of its keys."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def earlier_request(
    model: type[CamaraPayment | CamaraRefund], caller: Caller, *, correlator: str | None, hashed: str, reference: str
) -> Any:
    """The side row a retried request made already (the same clientCorrelator and body), or None;
    a clientCorrelator used for another request is 400, a referenceCode used before 409."""
    kind = "payment" if model is CamaraPayment else "refund"
    if correlator is not None:
        earlier = await model.get_or_none(client_id=caller.client_id, client_correlator=correlator)
        if earlier is not None:
            if earlier.request_hash != hashed:
                raise Refusal(400, "INVALID_ARGUMENT", f"This clientCorrelator was used for another {kind} request.")
            return earlier
    if await model.exists(client_id=caller.client_id, reference_code=reference):
        raise Refusal(409, "ALREADY_EXISTS", f"A {kind} with this referenceCode exists already.")
    return None


def payment_status(charge: Charge) -> str:
    """The charge's status in CAMARA's words; one not confirmed in time is ``cancelled`` (nobody
    denied it)."""
    if charge.status == ChargeStatus.FAILED and charge.failure_code == FailureCode.EXPIRED:
        return "cancelled"
    return PAYMENT_STATUSES[charge.status]


async def _line_of(caller: Caller, phone_number: str | None) -> Line:
    """The line that pays: the token's subscriber's, or (two-legged) the one ``phone_number``
    names; refused as CAMARA's identifier rules say, or when the line cannot buy."""
    if caller.three_legged:
        if phone_number is not None:
            raise Refusal(422, "UNNECESSARY_IDENTIFIER", "The phone number is already identified by the access token.")
        line = await Line.get(line_id=cast("str", caller.line_id))
    else:
        if phone_number is None:
            raise Refusal(422, "MISSING_IDENTIFIER", "The phone number cannot be identified from the access token.")
        found = await Line.get_or_none(phone_number=phone_number)
        if found is None:
            raise Refusal(404, "IDENTIFIER_NOT_FOUND", "No line has this phone number.")
        line = found
    if line.status != LineStatus.ACTIVE or not line.eligible:
        raise Refusal(422, "SERVICE_NOT_APPLICABLE", "Carrier billing is not available for this line.")
    return line


async def _merchant(caller: Caller) -> Merchant:
    merchant = await Merchant.get(id=caller.merchant_id)
    if merchant.status != MerchantStatus.ACTIVE:
        raise Refusal(403, "CARRIER_BILLING.PAYMENT_DENIED", "This merchant may not charge at present.")
    return merchant


async def _price(request: PaymentRequest, merchant: Merchant) -> int:
    """The tax-included yen the subscriber pays, within the merchant's maximum."""
    price = (
        request.amount
        if request.tax_included
        else price_of_net(request.amount, rate_on((await clock.now()).astimezone(JST).date()))
    )
    if price > merchant.max_charge_amount:
        raise Refusal(
            422,
            "CARRIER_BILLING.UNAUTHORIZED_AMOUNT",
            f"The amount is above this merchant's maximum of {merchant.max_charge_amount} yen (tax included).",
        )
    return price


async def _replayed(caller: Caller, request: PaymentRequest) -> Charge | None:
    """The payment a retried request made already; refused as ``earlier_request`` says."""
    earlier = await earlier_request(
        CamaraPayment,
        caller,
        correlator=request.client_correlator,
        hashed=request.fingerprint,
        reference=request.reference_code,
    )
    return await Charge.get(id=earlier.charge_id) if earlier is not None else None


async def _record(caller: Caller, request: PaymentRequest, charge: Charge, *, secret_key: str) -> None:
    """The CAMARA side of a new payment; a concurrent twin (same keys) is refused as a repeat."""
    try:
        await CamaraPayment.create(
            charge_id=charge.id,
            client_id=caller.client_id,
            subject=caller.subject,
            client_correlator=request.client_correlator,
            request_hash=request.fingerprint,
            reference_code=request.reference_code,
            phone_number=request.phone_number,
            charging_information=request.charging_information,
            charging_metadata=request.charging_metadata,
            merchant_identifier=(request.charging_metadata or {}).get("merchantIdentifier"),
            payment_details=request.payment_details,
            sink=request.sink,
            sealed_sink_credential=(
                seal_password(json.dumps(request.sink_credential), secret_key) if request.sink_credential else None
            ),
            created_at=charge.created_at,
        )
    except IntegrityError as error:
        raise Refusal(409, "ALREADY_EXISTS", "A payment with this referenceCode or clientCorrelator exists.") from error
    if request.sink is not None:
        await ensure_sink(caller.merchant_id, request.sink)


def _purchase(request: PaymentRequest, price: int) -> PurchaseRequest:
    metadata = request.charging_metadata or {}
    description = request.description
    if metadata.get("merchantName"):
        description = f"{description} ({metadata['merchantName']})"
    return PurchaseRequest(
        amount=price,
        description=description[:500],
        return_url=None,
        merchant_reference=request.reference_code[:255],
        metadata={key: str(value)[:500] for key, value in metadata.items()},
    )


async def _payer(caller: Caller, request: PaymentRequest, *, consent_needed: bool) -> tuple[Line, Merchant, int]:
    """The line that pays, the merchant paid and the tax-included price, or the refusal: the line
    first (a phone number's line may be named, and refused), then the subscriber's consent when a
    one-step payment needs it (a two-legged token has none), the merchant, the amount."""
    line = await _line_of(caller, request.phone_number)
    if consent_needed and not caller.three_legged:
        raise Refusal(403, "PERMISSION_DENIED", "A one-step payment needs the subscriber's consent (a 3-legged token).")
    merchant = await _merchant(caller)
    return line, merchant, await _price(request, merchant)


async def prepare_payment(
    caller: Caller, request: PaymentRequest, *, base_url: str, secret_key: str
) -> tuple[Charge, bool]:
    """A two-step payment waiting for the subscriber's confirmation on its validation page (the
    confirmation page; an ID of the paying line signs in). Answers the charge and whether it was
    made now (False: a replay of the same request)."""
    line, merchant, price = await _payer(caller, request, consent_needed=False)
    async with in_transaction():
        replay = await _replayed(caller, request)
        if replay is not None:
            return replay, False
        fields = await awaiting_confirmation(merchant, _purchase(request, price), base_url=base_url)
        charge = await insert(Charge, **fields, two_step=True, expected_line_id=line.line_id)
        await _record(caller, request, charge, secret_key=secret_key)
    return charge, True


def _consented(caller: Caller, request: PaymentRequest, price: int) -> bool:
    """Whether the token carries the subscriber's consent to exactly this payment."""
    return any(
        detail.get("type") == CONSENT_TYPE
        and detail.get("amount") == price
        and str(detail.get("currency", "")).upper() == request.currency
        for detail in caller.authorization_details
    )


async def create_payment(
    caller: Caller, request: PaymentRequest, *, base_url: str, secret_key: str, consume: Any
) -> tuple[Charge, bool]:
    """A one-step payment, decided at once: only under a three-legged token whose
    ``authorization_details`` consent to this amount, once (``consume(token_id, charge_id)`` is
    the token's single use, in this transaction). Succeeded → the charge; denied → ``Refusal``
    (403 PAYMENT_DENIED, or 422 USER_AMOUNT_THRESHOLD_OVERPASSED over a limit), the denied charge
    kept for the record."""
    line, merchant, price = await _payer(caller, request, consent_needed=True)
    async with in_transaction():
        replay = await _replayed(caller, request)
        if replay is not None:
            return replay, False
        if not _consented(caller, request, price):
            raise Refusal(403, "PERMISSION_DENIED", "The access token does not consent to this amount.")
        fields = await awaiting_confirmation(merchant, _purchase(request, price), base_url=base_url)
        fields.update(confirmation_token=None, confirmation_url=None, expires_at=None)
        charge = await insert(Charge, **fields, status=ChargeStatus.PROCESSING, expected_line_id=line.line_id)
        await _record(caller, request, charge, secret_key=secret_key)
        if not await consume(caller.token_id, charge.id):
            raise Refusal(403, "PERMISSION_DENIED", "This access token has paid once already.")
        failure = await _decide_now(charge, cast("str", caller.account_id), line, merchant)
    if failure == FailureCode.LIMIT_EXCEEDED:
        raise Refusal(
            422, "CARRIER_BILLING.USER_AMOUNT_THRESHOLD_OVERPASSED", "The amount is above the subscriber's limit."
        )
    if failure is not None:
        raise Refusal(403, "CARRIER_BILLING.PAYMENT_DENIED", f"The payment was denied ({failure}).")
    return charge, True


async def _decide_now(charge: Charge, account_id: str, line: Line, merchant: Merchant) -> str | None:
    """Decide a consented payment as a renewal is decided: the line, the merchant and the limits
    (the password and the line check were the authorization's)."""
    account = await SubscriberAccount.select_for_update().get_or_none(id=account_id, status=AccountStatus.ACTIVE)
    now = await clock.now()
    if account is None:
        await end_charge(charge, ChargeStatus.FAILED, now=now, code=FailureCode.INVALID_CREDENTIALS)
        return FailureCode.INVALID_CREDENTIALS.value
    usage = await lock_usage(account, line, period_of(now))
    decision = decide_renewal(
        consented_facts(now, charge.amount, account=account, line=line, merchant=merchant, usage=usage)
    )
    await record_decision(charge, decision, now=now, account=account, line=line, usage=usage)
    return decision.failure_code


async def find_payment(caller: Caller, payment_id: str, *, lock: bool = False) -> tuple[Charge, CamaraPayment]:
    """The caller's payment ``payment_id`` (a three-legged caller sees only its line's); else 404."""
    side = (
        await CamaraPayment.get_or_none(charge_id=payment_id, client_id=caller.client_id)
        if fits_id_column(payment_id)
        else None
    )
    query: Any = Charge.select_for_update() if lock else Charge
    charge = await query.get_or_none(id=payment_id) if side is not None else None
    if charge is None or (caller.three_legged and caller.line_id not in (charge.line_id, charge.expected_line_id)):
        raise Refusal(404, "NOT_FOUND", "No such payment.")
    return charge, cast("CamaraPayment", side)


async def _second_step(caller: Caller, payment_id: str, phone_number: str | None) -> tuple[Charge, CamaraPayment]:
    """The payment a confirm or cancel is for, locked, under the identifier rules."""
    if caller.three_legged and phone_number is not None:
        raise Refusal(422, "UNNECESSARY_IDENTIFIER", "The phone number is already identified by the access token.")
    if not caller.three_legged and phone_number is None:
        raise Refusal(422, "MISSING_IDENTIFIER", "The phone number cannot be identified from the access token.")
    charge, side = await find_payment(caller, payment_id, lock=True)
    if phone_number is not None:
        line = await Line.get_or_none(phone_number=phone_number)
        if line is None or line.line_id not in (charge.line_id, charge.expected_line_id):
            raise Refusal(404, "IDENTIFIER_NOT_FOUND", "The phone number is not this payment's.")
    line = await Line.get_or_none(line_id=charge.line_id or charge.expected_line_id or "")
    if line is not None and (line.status != LineStatus.ACTIVE or not line.eligible):
        raise Refusal(422, "SERVICE_NOT_APPLICABLE", "Carrier billing is not available for this line.")
    return charge, side


def _refuse_settled(charge: Charge) -> None:
    status = payment_status(charge)
    if status == "succeeded":
        raise Refusal(409, "CARRIER_BILLING.PAYMENT_CONFIRMED", "The payment is confirmed already.")
    if status == "cancelled":
        raise Refusal(409, "CARRIER_BILLING.PAYMENT_CANCELLED", "The payment is cancelled.")


async def confirm_payment(caller: Caller, payment_id: str, *, phone_number: str | None) -> Charge:
    """The aggregator confirms a reserved payment: it succeeds and is billed."""
    async with in_transaction():
        charge, _side = await _second_step(caller, payment_id, phone_number)
        _refuse_settled(charge)
        if charge.status != ChargeStatus.RESERVED:
            raise Refusal(
                403,
                "CARRIER_BILLING.PAYMENT_DENIED",
                "The payment is not reserved: the subscriber has not confirmed it, or it was denied.",
            )
        merchant = await Merchant.get(id=charge.merchant_id)
        now = await clock.now()
        if merchant.status != MerchantStatus.ACTIVE:
            await release_reservation(charge, now=now)
            denied = True
        else:
            await capture_reservation(charge, now=now)
            denied = False
    if denied:
        raise Refusal(403, "CARRIER_BILLING.PAYMENT_DENIED", "This merchant may not charge at present.")
    return charge


async def cancel_payment(caller: Caller, payment_id: str, *, phone_number: str | None) -> Charge:
    """The aggregator cancels a payment not yet confirmed: a reservation is given back."""
    async with in_transaction():
        charge, _side = await _second_step(caller, payment_id, phone_number)
        _refuse_settled(charge)
        now = await clock.now()
        if charge.status == ChargeStatus.RESERVED:
            await release_reservation(charge, now=now)
        elif charge.status == ChargeStatus.REQUIRES_CONFIRMATION:
            await end_charge(charge, ChargeStatus.CANCELED, now=now)
        else:  # being decided, or denied
            raise Refusal(409, "ALREADY_EXISTS", f"A {payment_status(charge)} payment cannot be cancelled.")
    return charge


async def validate_payment(caller: Caller, payment_id: str) -> None:
    """A fixed line confirms on the validation page, never by a one-time code: no payment of
    Matomete has an ``authorizationId``, so every one given is invalid."""
    await find_payment(caller, payment_id)
    raise Refusal(
        400,
        "CARRIER_BILLING.INVALID_AUTHORIZATION_ID",
        "This payment is validated on its validationURL (the subscriber's confirmation), not by a code.",
    )


@dataclass(frozen=True, kw_only=True)
class PaymentQuery:
    """retrievePayments' filters."""

    page: int = 1
    per_page: int = 10
    created_from: datetime | None = None
    created_to: datetime | None = None
    ascending: bool = False
    statuses: Sequence[str] = ()
    merchant_identifier: str | None = None


@dataclass(frozen=True)
class PaymentPage:
    """One page of a client's payments and how many match in all."""

    payments: list[tuple[Charge, CamaraPayment]]
    total: int


def _charge_filters(statuses: Sequence[str]) -> dict[str, Any]:
    wanted = {status for status, name in PAYMENT_STATUSES.items() if name in statuses}
    return {"charge__status__in": [status.value for status in wanted]} if statuses else {}


async def list_payments(caller: Caller, query: PaymentQuery) -> PaymentPage:
    """The caller's payments (a three-legged caller: its line's only), newest first unless asked."""
    filters: dict[str, Any] = {"client_id": caller.client_id, **_charge_filters(query.statuses)}
    if query.created_from is not None:
        filters["created_at__gte"] = query.created_from
    if query.created_to is not None:
        filters["created_at__lte"] = query.created_to
    if query.merchant_identifier is not None:
        filters["merchant_identifier"] = query.merchant_identifier
    selection = CamaraPayment.filter(**filters)
    if caller.three_legged:
        selection = selection.filter(charge__expected_line_id=caller.line_id)
    total = await selection.count()
    order = ("created_at", "id") if query.ascending else ("-created_at", "-id")
    rows = await selection.order_by(*order).offset((query.page - 1) * query.per_page).limit(query.per_page)
    charges = {charge.id: charge for charge in await Charge.filter(id__in=[row.charge_id for row in rows])}
    return PaymentPage([(charges[row.charge_id], row) for row in rows], total)
