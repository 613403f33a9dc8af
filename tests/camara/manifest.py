"""Every CAMARA case the conformance run does not run, with its reason; the features' typos the
harness reads past; and the scenarios whose environment differs from the default.

Keys are scenario tags (without ``@``); an outline row is ``tag[column=value]``, or the bare tag
for all its rows. Reasons are one of:

- ``contradicts <tag>``: one of a pair of scenarios that expect different answers to the same request;
- ``undefined code <CODE>``: the feature expects an error code neither YAML defines;
- ``otp``: validatePayment's one-time password, which a fixed line does not use (the subscriber
  confirms on the validation page instead);
- ``policy: ...``: a deliberate product decision (product.md §13).
"""

from __future__ import annotations

UNNECESSARY = "UNNECESSARY_IDENTIFIER: a phoneNumber with a 3-legged token is refused"

MANIFEST: dict[str, str] = {
    # --- pairs that contradict each other: the one the platform keeps is named
    "create_payment_13_async_behaviour": "contradicts create_payment_12_sync_behaviour (payments are synchronous)",
    "prepare_payment_12_sync_behaviour_without_validation_info": (
        "contradicts prepare_payment_13_sync_behaviour_with_validation_info (every prepared payment is confirmed "
        "by its subscriber on the validation page)"
    ),
    "prepare_payment_14_async_behaviour": (
        "contradicts prepare_payment_13_sync_behaviour_with_validation_info (answered pending_validation)"
    ),
    "create_refund_12_async_behaviour": "contradicts create_refund_11_sync_behaviour (refunds are synchronous)",
    "create_payment_10_amountTransaction_phoneNumber_three_legged": (
        f"contradicts create_payment_C02.03_unnecessary_phone_number ({UNNECESSARY})"
    ),
    "prepare_payment_10_amountTransaction_phoneNumber_three_legged": (
        f"contradicts prepare_payment_C02.03_unnecessary_phone_number ({UNNECESSARY})"
    ),
    "confirm_payment_02_phoneNumber_three_legged": (
        f"contradicts confirm_payment_C02.03_unnecessary_phone_number ({UNNECESSARY})"
    ),
    "cancel_payment_02_phoneNumber_three_legged": (
        f"contradicts cancel_payment_C02.03_unnecessary_phone_number ({UNNECESSARY})"
    ),
    "confirm_payment_400.02_empty_request_body": (
        "contradicts confirm_payment_01_generic_success_scenario and confirm_payment_C02.04_missing_phone_number "
        "({} complies with PhoneNumber, whose properties are all optional: 202 with a 3-legged token, "
        "422 MISSING_IDENTIFIER with a 2-legged one)"
    ),
    "cancel_payment_400.02_empty_request_body": (
        "contradicts cancel_payment_01_generic_success_scenario and cancel_payment_C02.04_missing_phone_number "
        "({} complies with PhoneNumber, whose properties are all optional: 202 with a 3-legged token, "
        "422 MISSING_IDENTIFIER with a 2-legged one)"
    ),
    "retrieve_payment_remaining_amount_02_total_refund_in_progress": (
        "contradicts create_refund_11_sync_behaviour (a refund is never in progress: refunds are synchronous)"
    ),
    "retrieve_payment_remaining_amount_05_partial_refund_in_progress": (
        "contradicts create_refund_11_sync_behaviour (a refund is never in progress: refunds are synchronous)"
    ),
    # --- codes the YAMLs do not define
    "create_payment_422.01_phoneNumber_required": "undefined code CARRIER_BILLING.PHONE_NUMBER_REQUIRED",
    "prepare_payment_422.01_phoneNumber_required": "undefined code CARRIER_BILLING.PHONE_NUMBER_REQUIRED",
    "confirm_payment_422.01_phoneNumber_required": "undefined code CARRIER_BILLING.PHONE_NUMBER_REQUIRED",
    "cancel_payment_422.01_phoneNumber_required": "undefined code CARRIER_BILLING.PHONE_NUMBER_REQUIRED",
    "create_payment_422.02_accumulated_threshold_amount_overpassed": (
        "undefined code CARRIER_BILLING.AMOUNT_THRESHOLD_OVERPASSED"
    ),
    "prepare_payment_422.02_accumulated_threshold_amount_overpassed": (
        "undefined code CARRIER_BILLING.AMOUNT_THRESHOLD_OVERPASSED"
    ),
    "create_refund_422.02_accumulated_threshold_amount_overpassed": (
        "undefined code CARRIER_BILLING_REFUND.AMOUNT_THRESHOLD_OVERPASSED"
    ),
    "retrieve_payments_400.02_out_of_range": "undefined code CARRIER_BILLING.OUT_OF_RANGE",
    "retrieve_refunds_400.02_out_of_range": "undefined code CARRIER_BILLING_REFUND.OUT_OF_RANGE",
    # --- validatePayment's OTP
    "validate_payment_01_generic_success_scenario": "otp",
    "validate_payment_400.05_invalid_code": "otp",
    "validate_payment_400.06_exceeding_validation_attempts": "otp",
    # --- product decisions
    "create_payment_11_amountTransaction_phoneNumber_two_legged": (
        "policy: a two-legged createPayment has no subscriber consent and is refused with 403 "
        "PERMISSION_DENIED (product.md §13)"
    ),
}

# Cases the platform does not pass yet, by the main engineer's decision only ("not built yet: ...").
# Reported as skipped with that reason. Empty: failures are reported as failures.
PENDING: dict[str, str] = {}

# The features' typos and misnamed paths, read as the YAMLs spell them; each checked against the
# YAML schema of its operation. Printed with the run's summary.
ALIASES: dict[str, str] = {
    "$.validatioInfo -> $.validationInfo": "prepare_payment_12/13: no schema has validatioInfo",
    "$.phonenumber -> $.phoneNumber": "confirm_payment_02/03 (and cancel): PhoneNumber's property is phoneNumber",
    "$.phoneNumber, $.clientCorrelator -> $.amountTransaction.* (createPayment, preparePayment)": (
        "CreatePayment and BodyAmountReservationTransactionForReserveInput have them only inside amountTransaction"
    ),
    "chargingInformationAmount -> chargingInformation.amount": (
        "create/prepare 422.02: PaymentAmountForCharge/Reserve have chargingInformation.amount"
    ),
    "chargingMetadata -> chargingMetaData": "retrieve_payments_10, retrieve_refunds_10: the schema's spelling",
    "retrieveRefunds query paymentStatus -> refundStatus": "retrieve_refunds_09: retrieveRefunds has refundStatus",
    "createRefund resource /refunds -> /payments/{paymentId}/refunds": (
        "createRefund's Background names a path no YAML has; the operation is looked up by operationId"
    ),
}

# Scenarios whose environment differs from the default (a case's own client of the shared
# merchant, its own eligible line and ID, and a 3-legged "valid access token"):
# - ``denied``: "a business context exists to deny the payment": the case's client belongs to a
#   merchant of its own, suspended just before the request (after the reservation, for confirm);
#   the platform refuses a suspended merchant's payments with 403 CARRIER_BILLING.PAYMENT_DENIED.
# - ``refunded_in_full``: "a business context exists to not consider the payment eligible for the
#   refund": the payment is refunded in full (a total refund) just before the request.
# - ``two_legged``: the scenario's title says "in 2-legged access mode" while its steps ask for
#   "a valid access token": its request carries a two-legged one (what it seeded, three-legged).
CONTEXTS: dict[str, str] = {
    "create_payment_403.02_payment_denied": "denied",
    "prepare_payment_403.02_payment_denied": "denied",
    "confirm_payment_403.02_payment_denied": "denied",
    "create_refund_403.02_refund_denied": "denied",
    "create_refund_403.03_payment_not_eligible_for_refund": "refunded_in_full",
    "prepare_payment_11_amountTransaction_phoneNumber_two_legged": "two_legged",
    "confirm_payment_03_phoneNumber_two_legged": "two_legged",
    "cancel_payment_03_phoneNumber_two_legged": "two_legged",
}


def reason_for(tag: str, example: dict[str, str]) -> str | None:
    """Why the case of ``tag`` (and outline row ``example``) is not run; None when it is."""
    row = ",".join(f"{key}={value}" for key, value in example.items())
    for table in (MANIFEST, PENDING):
        for key in (f"{tag}[{row}]", tag):
            if key in table:
                return table[key]
    return None
