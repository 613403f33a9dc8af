"""CAMARA Carrier Billing payments (product.md §13) end to end on the platform's own parts: a
registered aggregator client, its tokens, the subscriber's confirmation on the validation page,
the auth worker's decision, and the charge the payment is, seen at ``/v1``."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest.mock import ANY

import pytest

from camara_support import (
    BASE,
    PHONE,
    REFUND_SCOPES,
    SCOPES,
    Aggregator,
    fresh_reference,
    payment_body,
    register_aggregator,
    reserved,
)
from conftest import OpsClient, row_counts
from models.charges import AccountUsage, Charge
from models.events import Event
from settings import Settings
from tests_support import answer, at, settle


@pytest.fixture
async def aggregator(client: Any, ops: OpsClient, settings: Settings) -> Aggregator:
    """A shop whose line has a phone number, and an aggregator client of its merchant."""
    return await register_aggregator(client, ops, settings)


async def test_a_two_legged_payment_is_prepared_reserved_confirmed_and_is_a_charge(
    aggregator: Aggregator, worker: Any
) -> None:
    """Prepare by phone number → pending_validation; the line's ID confirms → reserved (counted in
    the month's usage); confirm → 202 and succeeded, a charge of the merchant at /v1 like any other."""
    headers = await aggregator.two_legged()
    prepared = await reserved(aggregator, headers, phoneNumber=PHONE)
    payment_id = prepared["paymentId"]
    assert prepared["amountTransaction"]["phoneNumber"] == PHONE
    read = await aggregator.client.get(f"{BASE}/payments/{payment_id}", headers=headers)
    assert (read.status, (await read.json())["paymentStatus"]) == (200, "reserved")
    assert read.headers["x-correlator"] == "c-1"
    assert sum(usage.amount for usage in await AccountUsage.all()) == 330
    confirm = await aggregator.client.post(
        f"{BASE}/payments/{payment_id}/confirm", json={"phoneNumber": PHONE}, headers=headers
    )
    assert confirm.status == 202, await confirm.text()
    read = await aggregator.client.get(f"{BASE}/payments/{payment_id}", headers=headers)
    body = await read.json()
    assert body["paymentStatus"] == "succeeded"
    assert "paymentDate" in body
    charge = await aggregator.client.get(f"/v1/charges/{payment_id}", headers=aggregator.shop.auth)
    seen = await charge.json()
    assert (seen["status"], seen["amount"], seen["billing_status"]) == ("succeeded", 330, "unbilled")
    again = await aggregator.client.post(
        f"{BASE}/payments/{payment_id}/confirm", json={"phoneNumber": PHONE}, headers=headers
    )
    assert (again.status, (await again.json())["code"]) == (409, "CARRIER_BILLING.PAYMENT_CONFIRMED")


async def test_cancelling_a_reservation_gives_its_amount_back_to_the_limits(
    aggregator: Aggregator, worker: Any
) -> None:
    """A reserved payment cancelled is ``cancelled`` and its month's usage is back to 0; cancelling again is 409."""
    headers = await aggregator.two_legged()
    prepared = await reserved(aggregator, headers, phoneNumber=PHONE)
    path = f"{BASE}/payments/{prepared['paymentId']}/cancel"
    response = await aggregator.client.post(path, json={"phoneNumber": PHONE}, headers=headers)
    assert response.status == 202, await response.text()
    assert sum(usage.amount for usage in await AccountUsage.all()) == 0
    again = await aggregator.client.post(path, json={"phoneNumber": PHONE}, headers=headers)
    assert (again.status, (await again.json())["code"]) == (409, "CARRIER_BILLING.PAYMENT_CANCELLED")


async def test_a_consented_one_step_payment_succeeds_once(aggregator: Aggregator) -> None:
    """A three-legged token consenting to 330 yen pays 330 once (201 succeeded); the same token again is 403."""
    headers = await aggregator.three_legged(consent=330)
    response = await aggregator.client.post(f"{BASE}/payments", json=payment_body(), headers=headers)
    assert response.status == 201, await response.text()
    created = await response.json()
    assert (created["paymentStatus"], created["amountTransaction"]["phoneNumber"]) == ("succeeded", PHONE)
    assert (await Charge.get(id=created["paymentId"])).status == "succeeded"
    before = await row_counts()
    response = await aggregator.client.post(f"{BASE}/payments", json=payment_body(), headers=headers)
    assert (response.status, (await response.json())["code"]) == (403, "PERMISSION_DENIED")
    assert await row_counts() == before


async def test_a_net_amount_is_charged_with_its_tax(aggregator: Aggregator) -> None:
    """300 yen with isTaxIncluded false is a 330-yen charge (10%); the consent is for what the subscriber pays."""
    headers = await aggregator.three_legged(consent=330)
    body = payment_body(300)
    body["amountTransaction"]["paymentAmount"]["chargingInformation"]["isTaxIncluded"] = False
    response = await aggregator.client.post(f"{BASE}/payments", json=body, headers=headers)
    assert response.status == 201, await response.text()
    created = await response.json()
    assert created["amountTransaction"]["paymentAmount"]["chargingInformation"]["amount"] == 300
    assert (await Charge.get(id=created["paymentId"])).amount == 330


@pytest.mark.parametrize(
    ("mutate", "status", "code"),
    [
        (
            lambda body: body["amountTransaction"]["paymentAmount"]["chargingInformation"].update(currency="EUR"),
            400,
            "INVALID_ARGUMENT",
        ),
        (
            lambda body: body["amountTransaction"]["paymentAmount"]["chargingInformation"].update(amount=330.5),
            400,
            "INVALID_ARGUMENT",
        ),
        (lambda body: body["amountTransaction"].pop("referenceCode"), 400, "INVALID_ARGUMENT"),
        (lambda body: body.update(sink="http://agg.example/sink"), 400, "INVALID_SINK"),
        (
            lambda body: body.update(sink="https://agg.example/s", sinkCredential={"credentialType": "PLAIN"}),
            400,
            "INVALID_CREDENTIAL",
        ),
        (lambda body: body["amountTransaction"].update(phoneNumber="+81399999999"), 404, "IDENTIFIER_NOT_FOUND"),
        (lambda body: body["amountTransaction"].pop("phoneNumber"), 422, "MISSING_IDENTIFIER"),
    ],
)
async def test_bad_prepare_requests_are_refused_in_camara_words_and_write_nothing(
    aggregator: Aggregator, mutate: Any, status: int, code: str
) -> None:
    """Each refusal is CAMARA's flat error with the x-correlator echoed, and no row is written."""
    headers = await aggregator.two_legged()
    body = payment_body(phoneNumber=PHONE)
    mutate(body)
    before = await row_counts()
    response = await aggregator.client.post(f"{BASE}/payments/prepare", json=body, headers=headers)
    error = await response.json()
    assert (response.status, error["status"], error["code"]) == (status, status, code), error
    assert error["message"]
    assert response.headers["x-correlator"] == "c-1"
    assert await row_counts() == before


async def test_tokens_are_checked_before_anything_else(aggregator: Aggregator) -> None:
    """No token, an expired one, or one without the scope: 401, 401, 403 in CAMARA's words."""
    path = f"{BASE}/payments"
    response = await aggregator.client.get(path)
    assert (response.status, (await response.json())["code"]) == (401, "UNAUTHENTICATED")
    expired = await aggregator.three_legged(lifetime=timedelta(minutes=-1))
    response = await aggregator.client.get(path, headers=expired)
    assert (response.status, (await response.json())["code"]) == (401, "UNAUTHENTICATED")
    read_only = await aggregator.two_legged("carrier-billing:payments:read")
    response = await aggregator.client.post(f"{path}/prepare", json=payment_body(phoneNumber=PHONE), headers=read_only)
    assert (response.status, (await response.json())["code"]) == (403, "PERMISSION_DENIED")


async def test_a_client_correlator_replays_the_same_request_and_refuses_another(aggregator: Aggregator) -> None:
    """The same body with the same clientCorrelator answers the same payment; another body with it is 400;
    a referenceCode used before is 409."""
    headers = await aggregator.two_legged()
    body = payment_body(phoneNumber=PHONE, clientCorrelator="corr-1")
    first = await (await aggregator.client.post(f"{BASE}/payments/prepare", json=body, headers=headers)).json()
    replay = await aggregator.client.post(f"{BASE}/payments/prepare", json=body, headers=headers)
    assert (replay.status, (await replay.json())["paymentId"]) == (201, first["paymentId"])
    other = payment_body(phoneNumber=PHONE, clientCorrelator="corr-1")
    response = await aggregator.client.post(f"{BASE}/payments/prepare", json=other, headers=headers)
    assert (response.status, (await response.json())["code"]) == (400, "INVALID_ARGUMENT")
    reused = payment_body(phoneNumber=PHONE)
    reused["amountTransaction"]["referenceCode"] = body["amountTransaction"]["referenceCode"]
    response = await aggregator.client.post(f"{BASE}/payments/prepare", json=reused, headers=headers)
    assert (response.status, (await response.json())["code"]) == (409, "ALREADY_EXISTS")
    assert await Charge.all().count() == 1


async def test_payments_are_listed_a_page_at_a_time(aggregator: Aggregator) -> None:
    """Three payments, perPage 2: X-Total-Count 3, newest first; asc reverses; perPage 1000 is refused."""
    headers = await aggregator.two_legged()
    made = []
    for _ in range(3):
        response = await aggregator.client.post(
            f"{BASE}/payments/prepare", json=payment_body(phoneNumber=PHONE), headers=headers
        )
        made.append((await response.json())["paymentId"])
    response = await aggregator.client.get(f"{BASE}/payments?perPage=2", headers=headers)
    page = await response.json()
    assert (response.status, response.headers["X-Total-Count"], len(page)) == (200, "3", 2)
    response = await aggregator.client.get(f"{BASE}/payments?order=asc&perPage=3", headers=headers)
    assert [payment["paymentId"] for payment in await response.json()] == made
    response = await aggregator.client.get(f"{BASE}/payments?perPage=1000", headers=headers)
    assert (await response.json())["code"] == "CARRIER_BILLING.TOO_MANY_MATCHING_RECORDS"


REFUNDS = "/carrier-billing-refund/v0.3"


def refund_body(kind: str = "total", amount: int | None = None, **extra: Any) -> dict[str, Any]:
    """A createRefund body: the rest of the payment (total) or ``amount`` yen tax included (partial)."""
    refund_amount: dict[str, Any] = {}
    if amount is not None:
        refund_amount["chargingInformation"] = {
            "amount": amount,
            "currency": "JPY",
            "description": "返金",
            "isTaxIncluded": True,
        }
    return {
        "type": kind,
        "amountTransaction": {"refundAmount": refund_amount, "referenceCode": fresh_reference("rf")},
        **extra,
    }


async def _paid(aggregator: Aggregator) -> str:
    headers = await aggregator.three_legged(consent=330)
    response = await aggregator.client.post(f"{BASE}/payments", json=payment_body(), headers=headers)
    assert response.status == 201, await response.text()
    return str((await response.json())["paymentId"])


async def test_refunds_are_refunds_of_the_charge_and_leave_the_rest(aggregator: Aggregator) -> None:
    """A partial refund of 100 leaves 230 (remaining-amount); a total refund gives back the 230; the
    charge at /v1 shows 330 refunded; a refund past the rest is 422 and a refund of a refunded payment 403."""
    payment_id = await _paid(aggregator)
    headers = await aggregator.two_legged(" ".join([*SCOPES, *REFUND_SCOPES]))
    path = f"{REFUNDS}/payments/{payment_id}/refunds"
    too_much = await aggregator.client.post(path, json=refund_body("partial", 331), headers=headers)
    assert (too_much.status, (await too_much.json())["code"]) == (422, "CARRIER_BILLING_REFUND.UNAUTHORIZED_AMOUNT")
    response = await aggregator.client.post(path, json=refund_body("partial", 100, reason="一部返金"), headers=headers)
    assert response.status == 201, await response.text()
    partial = await response.json()
    assert (partial["type"], partial["refundStatus"], partial["reason"]) == ("partial", "succeeded", "一部返金")
    rest = await (await aggregator.client.get(f"{path}/remaining-amount", headers=headers)).json()
    assert (rest["amount"], rest["currency"]) == (230, "JPY")
    response = await aggregator.client.post(path, json=refund_body(), headers=headers)
    assert (response.status, (await response.json())["type"]) == (201, "total")
    charge = await (await aggregator.client.get(f"/v1/charges/{payment_id}", headers=aggregator.shop.auth)).json()
    assert charge["refunded_amount"] == 330
    again = await aggregator.client.post(path, json=refund_body(), headers=headers)
    assert (again.status, (await again.json())["code"]) == (
        403,
        "CARRIER_BILLING_REFUND.PAYMENT_NOT_ELIGIBLE_FOR_REFUND",
    )
    listed = await aggregator.client.get(f"{path}?order=asc", headers=headers)
    assert listed.headers["X-Total-Count"] == "2"
    assert [refund["refundId"] for refund in await listed.json()] == [partial["refundId"], ANY]
    one = await aggregator.client.get(f"{path}/{partial['refundId']}", headers=headers)
    assert (one.status, (await one.json())["refundId"]) == (200, partial["refundId"])


async def test_refund_refusals_name_camara_codes_and_write_nothing(aggregator: Aggregator) -> None:
    """A net refund of a gross payment is 422 TAXES_MANAGEMENT_MISMATCH; refundDetails of a payment
    without paymentDetails 422 REFUND_DETAILS_MISMATCH; a pending payment 422 INVALID_PAYMENT_STATUS."""
    payment_id = await _paid(aggregator)
    headers = await aggregator.two_legged(" ".join([*SCOPES, *REFUND_SCOPES]))
    path = f"{REFUNDS}/payments/{payment_id}/refunds"
    before = await row_counts()
    net = refund_body("partial", 100)
    net["amountTransaction"]["refundAmount"]["chargingInformation"]["isTaxIncluded"] = False
    response = await aggregator.client.post(path, json=net, headers=headers)
    assert (await response.json())["code"] == "CARRIER_BILLING_REFUND.TAXES_MANAGEMENT_MISMATCH"
    detailed = refund_body("partial", 100)
    detailed["amountTransaction"]["refundAmount"]["refundDetails"] = [
        {"paymentItemId": "x", "amount": 100, "currency": "JPY", "description": "x"}
    ]
    response = await aggregator.client.post(path, json=detailed, headers=headers)
    assert (await response.json())["code"] == "CARRIER_BILLING_REFUND.REFUND_DETAILS_MISMATCH"
    response = await aggregator.client.post(
        f"{BASE}/payments/prepare", json=payment_body(phoneNumber=PHONE), headers=headers
    )
    pending = (await response.json())["paymentId"]
    after_prepare = await row_counts()
    response = await aggregator.client.post(
        f"{REFUNDS}/payments/{pending}/refunds", json=refund_body(), headers=headers
    )
    assert (await response.json())["code"] == "CARRIER_BILLING_REFUND.INVALID_PAYMENT_STATUS"
    assert await row_counts() == after_prepare
    assert before["refunds"] == after_prepare["refunds"] == 0


async def test_the_validation_page_names_the_real_merchant_via_the_aggregator(
    aggregator: Aggregator, worker: Any
) -> None:
    """chargingMetaData.merchantName is shown as the merchant, "via" the aggregator's contracted
    merchant; once reserved the page says the payment is confirmed, to be completed by the shop."""
    headers = await aggregator.two_legged()
    metadata = {"merchantName": "ゲーム工房"}
    body = payment_body(phoneNumber=PHONE)
    body["amountTransaction"]["paymentAmount"]["chargingMetaData"] = metadata
    response = await aggregator.client.post(f"{BASE}/payments/prepare", json=body, headers=headers)
    url = (await response.json())["validationInfo"]["validationURL"]
    path = url.removeprefix(aggregator.settings.base_url)
    page = await (await aggregator.client.get(path, headers={"Accept-Language": "ja"})).text()
    assert "ゲーム工房（ストリーム動画株式会社 経由）" in page
    shop = aggregator.shop
    assert (await answer(aggregator.client, url, login_id=shop.login_id, password=shop.password)).status == 303

    async def reserved() -> bool:
        return await Charge.filter(status="reserved").exists()

    await settle(aggregator.settings, reserved)
    done = await (await aggregator.client.get(path, headers={"Accept-Language": "ja"})).text()
    assert "お支払いを承認しました" in done


async def test_a_reservation_nobody_confirms_expires_cancelled_and_gives_its_amount_back(
    aggregator: Aggregator, worker: Any
) -> None:
    """24 hours after the subscriber's confirmation the scheduler cancels a reservation the aggregator
    left alone (``charge.canceled``), its usage goes back to 0, and confirming it then is 409 cancelled."""
    await at(aggregator.settings, "2030-11-10T10:00:00+09:00")
    headers = await aggregator.two_legged()
    prepared = await reserved(aggregator, headers, phoneNumber=PHONE)
    assert sum(usage.amount for usage in await AccountUsage.all()) == 330
    await at(aggregator.settings, "2030-11-11T09:59:00+09:00")
    assert (await Charge.get(id=prepared["paymentId"])).status == "reserved"
    await at(aggregator.settings, "2030-11-11T10:01:00+09:00")
    assert (await Charge.get(id=prepared["paymentId"])).status == "canceled"
    assert sum(usage.amount for usage in await AccountUsage.all()) == 0
    assert await Event.filter(type="charge.canceled").count() == 1
    headers = await aggregator.two_legged()  # the clock moved a day: the first token has expired
    response = await aggregator.client.post(
        f"{BASE}/payments/{prepared['paymentId']}/confirm", json={"phoneNumber": PHONE}, headers=headers
    )
    assert (response.status, (await response.json())["code"]) == (409, "CARRIER_BILLING.PAYMENT_CANCELLED")
