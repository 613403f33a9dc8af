"""``/carrier-billing/v0.5``: createPayment, preparePayment, validatePayment, confirmPayment,
cancelPayment, retrievePayment and retrievePayments over ``models.operations.camara``."""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any

from aiohttp import web

from api.camara.bodies import (
    CreatePaymentBody,
    PhoneNumberBody,
    PreparePaymentBody,
    ValidatePaymentBody,
    check_sink,
    payment_request,
)
from api.camara.conventions import operation, parse
from api.http import json_response
from api.keys import SETTINGS
from billing.states import ChargeStatus
from models.camara import CamaraPayment
from models.charges import Charge
from models.lines import Line
from models.operations import camara
from models.operations.camara import PAYMENT_STATUSES, Caller, PaymentQuery, Refusal
from models.operations.oauth import consume_token_once

__all__ = ["page_headers", "payment_query", "payment_view", "raw_body", "routes", "stamp"]

routes = web.RouteTableDef()
PREFIX = "/carrier-billing/v0.5"
CREATE, READ, WRITE = (
    "carrier-billing:payments:create",
    "carrier-billing:payments:read",
    "carrier-billing:payments:write",
)
MAX_PER_PAGE = 100


def stamp(moment: datetime) -> str:
    """An RFC 3339 date-time with its time zone (``Z`` for UTC)."""
    return moment.isoformat().replace("+00:00", "Z")


async def payment_view(request: web.Request, charge: Charge, side: CamaraPayment) -> dict[str, Any]:
    """The ``Payment`` object: the charge in CAMARA's words, with what the aggregator sent."""
    line_id = charge.line_id or charge.expected_line_id
    line = await Line.get_or_none(line_id=line_id) if line_id and not side.phone_number else None
    phone = side.phone_number or (line.phone_number if line else None)
    amount: dict[str, Any] = {"chargingInformation": side.charging_information}
    if side.charging_metadata:
        amount["chargingMetaData"] = side.charging_metadata
    if side.payment_details:
        amount["paymentDetails"] = side.payment_details
    transaction: dict[str, Any] = {
        "paymentAmount": amount,
        "referenceCode": side.reference_code,
        "resourceURL": f"{request.config_dict[SETTINGS].base_url}{PREFIX}/payments/{charge.id}",
        "serverReferenceCode": charge.id,
    }
    if phone:
        transaction["phoneNumber"] = phone
    if side.client_correlator is not None:
        transaction["clientCorrelator"] = side.client_correlator
    view: dict[str, Any] = {
        "paymentId": charge.id,
        "amountTransaction": transaction,
        "paymentStatus": camara.payment_status(charge),
        "paymentCreationDate": stamp(charge.created_at),
    }
    if charge.status == ChargeStatus.SUCCEEDED and charge.decided_at is not None:
        view["paymentDate"] = stamp(charge.decided_at)
    if side.sink:
        view["sink"] = side.sink
    return view


async def raw_body(request: web.Request) -> dict[str, Any]:
    """The body as sent (for the request's fingerprint); parsing has refused anything else."""
    try:
        raw = json.loads(await request.read())
    except ValueError:
        return {}
    return raw if isinstance(raw, dict) else {}


@routes.post("/payments")
@operation(CREATE)
async def create_payment(request: web.Request, caller: Caller) -> web.Response:
    """createPayment: a one-step payment under the subscriber's consent, decided at once."""
    body = await parse(request, CreatePaymentBody)
    settings = request.config_dict[SETTINGS]
    asked = payment_request(body, await raw_body(request), allow_insecure=settings.webhooks_allow_insecure)
    await check_sink(asked.sink, allow_insecure=settings.webhooks_allow_insecure)
    charge, _made = await camara.create_payment(
        caller,
        asked,
        base_url=settings.base_url,
        secret_key=settings.secret_key,
        consume=consume_token_once,
    )
    side = await CamaraPayment.get(charge_id=charge.id)
    view = await payment_view(request, charge, side)
    return json_response(view, status=201, headers={"Location": view["amountTransaction"]["resourceURL"]})


@routes.post("/payments/prepare")
@operation(CREATE)
async def prepare_payment(request: web.Request, caller: Caller) -> web.Response:
    """preparePayment: a two-step payment; the subscriber confirms it at its ``validationURL``."""
    body = await parse(request, PreparePaymentBody)
    settings = request.config_dict[SETTINGS]
    asked = payment_request(body, await raw_body(request), allow_insecure=settings.webhooks_allow_insecure)
    await check_sink(asked.sink, allow_insecure=settings.webhooks_allow_insecure)
    charge, _made = await camara.prepare_payment(
        caller, asked, base_url=settings.base_url, secret_key=settings.secret_key
    )
    side = await CamaraPayment.get(charge_id=charge.id)
    view = await payment_view(request, charge, side)
    if charge.status == ChargeStatus.REQUIRES_CONFIRMATION and charge.confirmation_url:
        view["validationInfo"] = {"action": "open", "validationURL": charge.confirmation_url}
    return json_response(view, status=201, headers={"Location": view["amountTransaction"]["resourceURL"]})


@routes.post("/payments/{payment_id}/validate")
@operation(WRITE)
async def validate_payment(request: web.Request, caller: Caller) -> web.Response:
    """validatePayment: a fixed line never validates by a one-time code (always refused)."""
    await parse(request, ValidatePaymentBody)
    await camara.validate_payment(caller, request.match_info["payment_id"])
    return web.Response(status=204)  # pragma: no cover - validate_payment always refuses


@routes.post("/payments/{payment_id}/confirm")
@operation(WRITE)
async def confirm_payment(request: web.Request, caller: Caller) -> web.Response:
    """confirmPayment: a reserved payment succeeds and is billed."""
    body = await parse(request, PhoneNumberBody)
    await camara.confirm_payment(caller, request.match_info["payment_id"], phone_number=body.phoneNumber)
    return web.Response(status=202)


@routes.post("/payments/{payment_id}/cancel")
@operation(WRITE)
async def cancel_payment(request: web.Request, caller: Caller) -> web.Response:
    """cancelPayment: a payment not yet confirmed is cancelled (a reservation given back)."""
    body = await parse(request, PhoneNumberBody)
    await camara.cancel_payment(caller, request.match_info["payment_id"], phone_number=body.phoneNumber)
    return web.Response(status=202)


# "prepare" is no payment's id: /payments/prepare answers for its POST alone (405 Allow: POST).
@routes.get("/payments/{payment_id:(?!prepare$)[^{}/]+}")
@operation(READ)
async def retrieve_payment(request: web.Request, caller: Caller) -> web.Response:
    """RetrievePayment."""
    charge, side = await camara.find_payment(caller, request.match_info["payment_id"])
    return json_response(await payment_view(request, charge, side))


def _int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or int(raw) < 1:
        raise Refusal(400, "INVALID_ARGUMENT", f"{name} must be a whole number from 1.")
    return int(raw)


def _moment(request: web.Request, name: str) -> datetime | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        moment = datetime.fromisoformat(raw.replace("Z", "+00:00").replace(" ", "+"))
    except ValueError:
        raise Refusal(400, "INVALID_ARGUMENT", f"{name} must be an RFC 3339 date-time.") from None
    if moment.tzinfo is None:
        raise Refusal(400, "INVALID_ARGUMENT", f"{name} must have a time zone.")
    return moment


def payment_query(request: web.Request, *, prefix: str = "payment") -> PaymentQuery:
    """RetrievePayments' query parameters, checked."""
    codes = "CARRIER_BILLING" if prefix == "payment" else "CARRIER_BILLING_REFUND"
    known = {"page", "perPage", f"{prefix}CreationDate.gte", f"{prefix}CreationDate.lte", "order"}
    known |= {f"{prefix}Status", "merchantIdentifier"}
    unknown = sorted(set(request.query) - known)
    if unknown:
        raise Refusal(400, "INVALID_ARGUMENT", f"Unknown query parameter: {unknown[0]}.")
    per_page = _int(request, "perPage", 10)
    if per_page > MAX_PER_PAGE:
        raise Refusal(400, f"{codes}.TOO_MANY_MATCHING_RECORDS", f"perPage may be at most {MAX_PER_PAGE}.")
    start, end = _moment(request, f"{prefix}CreationDate.gte"), _moment(request, f"{prefix}CreationDate.lte")
    if start is not None and end is not None and start > end:
        raise Refusal(400, f"{codes}.INVALID_DATE_RANGE", "The creation date range ends before it starts.")
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise Refusal(400, "INVALID_ARGUMENT", "order must be asc or desc.")
    statuses = [part for value in request.query.getall(f"{prefix}Status", []) for part in value.split(",")]
    names = set(PAYMENT_STATUSES.values()) if prefix == "payment" else {"processing", "denied", "succeeded"}
    if any(status not in names for status in statuses):
        raise Refusal(400, "INVALID_ARGUMENT", f"{prefix}Status must be one of {', '.join(sorted(names))}.")
    return PaymentQuery(
        page=_int(request, "page", 1),
        per_page=per_page,
        created_from=start,
        created_to=end,
        ascending=order == "asc",
        statuses=statuses,
        merchant_identifier=request.query.get("merchantIdentifier"),
    )


def page_headers(query: PaymentQuery, total: int, last_key: str | None) -> dict[str, str]:
    """``X-Total-Count`` and ``Content-Last-Key`` of a page; a page past the last is refused."""
    pages = max(1, math.ceil(total / query.per_page))
    if query.page > pages:
        raise Refusal(400, "OUT_OF_RANGE", f"There are {pages} pages of {query.per_page}.")
    headers = {"X-Total-Count": str(total)}
    if last_key is not None:
        headers["Content-Last-Key"] = last_key
    return headers


@routes.get("/payments")
@operation(READ)
async def retrieve_payments(request: web.Request, caller: Caller) -> web.Response:
    """retrievePayments: the caller's payments, a page at a time."""
    query = payment_query(request)
    page = await camara.list_payments(caller, query)
    views = [await payment_view(request, charge, side) for charge, side in page.payments]
    headers = page_headers(query, page.total, views[-1]["paymentId"] if views else None)
    return json_response(views, headers=headers)
