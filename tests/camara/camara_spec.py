"""CAMARA's own YAMLs, read at run time: operations by ``operationId``, schemas to validate
answers against, minimal valid request bodies and values that break a schema.

Nothing of the CAMARA folder is copied here: every path, schema and operation comes from the
YAMLs found by :func:`camara_dir`.
"""

from __future__ import annotations

import copy
import os
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

REPO = Path(__file__).resolve().parents[2]
YAMLS = {"carrier-billing": "carrier-billing.yaml", "carrier-billing-refund": "carrier-billing-refund.yaml"}
# Whole yen: every amount the harness sends is JPY (product.md §13, issue 15 §3).
CURRENCY = "JPY"
AMOUNT = 110
REFUND_AMOUNT = 10


def candidate_dirs() -> list[Path]:
    """Where the CAMARA folder is looked for, in order: ``MATOMETE_CAMARA_DIR`` alone when it is
    set (a run may name another copy, or none), else beside the repository (CI clones it to a
    temporary directory with shared/ beside it), else the workplace's own shared/."""
    if os.environ.get("MATOMETE_CAMARA_DIR"):
        return [Path(os.environ["MATOMETE_CAMARA_DIR"])]
    return [REPO.parent / "shared/camara/carrier-billing-r3.2", Path("/work/shared/camara/carrier-billing-r3.2")]


def camara_dir() -> Path | None:
    """The first candidate holding both ``Test_definitions`` and ``API_definitions``; None if none."""
    for candidate in candidate_dirs():
        if (candidate / "Test_definitions").is_dir() and (candidate / "API_definitions").is_dir():
            return candidate
    return None


def feature_files() -> list[Path]:
    """The feature files of the folder, sorted (none when it is absent)."""
    folder = camara_dir()
    return sorted((folder / "Test_definitions").glob("*.feature")) if folder else []


@dataclass(frozen=True)
class Operation:
    """One operation of a YAML: where it lives and what its request body is."""

    api: str
    operation_id: str
    method: str
    path: str  # the full path, the server's base path included: /carrier-billing/v0.5/payments/{paymentId}
    body_schema: str | None  # e.g. "#/components/schemas/CreatePayment"
    scopes: tuple[str, ...]


@cache
def document(api: str) -> dict[str, Any]:
    """One YAML, parsed."""
    folder = camara_dir()
    assert folder is not None, "the CAMARA folder is absent"
    with (folder / "API_definitions" / YAMLS[api]).open(encoding="utf-8") as file:
        return dict(yaml.safe_load(file))


def _base_path(doc: dict[str, Any]) -> str:
    url = str(doc["servers"][0]["url"])
    return url.split("}", 1)[1] if url.startswith("{") else "/" + url.split("/", 3)[3]


@cache
def operations() -> dict[str, Operation]:
    """Every operation of both YAMLs by its ``operationId``."""
    found: dict[str, Operation] = {}
    for api in YAMLS:
        doc = document(api)
        base = _base_path(doc)
        for path, item in doc["paths"].items():
            for method, operation in item.items():
                if not isinstance(operation, dict) or "operationId" not in operation:
                    continue
                schema = (
                    operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
                )
                scopes = tuple(
                    scope for security in operation.get("security", []) for scope in security.get("openId", [])
                )
                found[operation["operationId"]] = Operation(
                    api, operation["operationId"], method.upper(), base + path, schema.get("$ref"), scopes
                )
    return found


def response_has_content(operation: Operation, status: int) -> bool:
    """Whether the YAML gives ``operation``'s ``status`` answer a body (True when it does not say)."""
    doc = document(operation.api)
    base = _base_path(doc)
    declared = doc["paths"][operation.path.removeprefix(base)][operation.method.lower()].get("responses", {})
    response = declared.get(str(status))
    if response is None:
        return True
    if "$ref" in response:
        response = resolve(operation.api, response["$ref"])
    return bool(response.get("content"))


def operation_for_resource(resource: str, preferred: str) -> Operation | None:
    """The operation whose full path is ``resource`` (None when the feature names a path no YAML
    has): ``preferred`` (the feature file's own operation) among several on one path."""
    found = [op for op in operations().values() if op.path == resource]
    return next((op for op in found if op.operation_id == preferred), found[0] if found else None)


@cache
def registry() -> Registry:
    """Both YAMLs as resources that ``$ref`` resolves in."""
    resources = [
        (f"urn:camara:{api}", Resource.from_contents(document(api), default_specification=DRAFT4)) for api in YAMLS
    ]
    return Registry().with_resources(resources)


def schema_ref(api: str, pointer: str) -> dict[str, Any]:
    """A schema that is ``pointer`` (``/components/schemas/X`` or ``#/components/...``) in ``api``'s YAML."""
    return {"$ref": f"urn:camara:{api}#/{pointer.lstrip('#').lstrip('/')}"}


def schema_errors(api: str, pointer: str, instance: Any) -> list[str]:
    """What is wrong with ``instance`` against the schema at ``pointer`` (empty when it complies)."""
    validator = OAS30Validator(schema_ref(api, pointer), registry=registry(), format_checker=oas30_format_checker)
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def resolve(api: str, pointer: str) -> dict[str, Any]:
    """The schema at ``pointer``, its own ``$ref``/``allOf`` merged into one object (properties and types)."""
    node: Any = document(api)
    for part in pointer.lstrip("#").strip("/").split("/"):
        node = node[part]
    node = dict(node)
    if "$ref" in node:
        return resolve(api, node["$ref"])
    merged: dict[str, Any] = {key: value for key, value in node.items() if key != "allOf"}
    for part in node.get("allOf", []):
        sub = resolve(api, part["$ref"]) if "$ref" in part else part
        merged.setdefault("properties", {}).update(sub.get("properties", {}))
        merged.setdefault("type", sub.get("type"))
    return merged


def query_names(operation: Operation) -> set[str]:
    """The names of ``operation``'s query parameters."""
    doc = document(operation.api)
    declared = doc["paths"][operation.path.removeprefix(_base_path(doc))][operation.method.lower()]
    names = set()
    for parameter in declared.get("parameters", []):
        resolved = resolve(operation.api, parameter["$ref"]) if "$ref" in parameter else parameter
        if resolved.get("in") == "query":
            names.add(resolved["name"])
    return names


def alias_problems() -> list[str]:
    """What is wrong with manifest.ALIASES against the YAMLs (empty: every alias maps a name no
    schema has to the one the schema has)."""

    def props(api: str, schema: str) -> set[str]:
        return set(resolve(api, f"/components/schemas/{schema}").get("properties", {}))

    cb, refund = "carrier-billing", "carrier-billing-refund"
    checks = {
        "validationInfo is BodyAmountReservationTransactionForReserve's, validatioInfo nobody's": (
            "validationInfo" in props(cb, "BodyAmountReservationTransactionForReserve")
            and "validatioInfo" not in props(cb, "BodyAmountReservationTransactionForReserve")
        ),
        "PhoneNumber has phoneNumber, not phonenumber": props(cb, "PhoneNumber") == {"phoneNumber"},
        "phoneNumber and clientCorrelator are in amountTransaction, not at the top": (
            {"phoneNumber", "clientCorrelator"} <= props(cb, "AmountTransactionInput")
            and {"phoneNumber", "clientCorrelator"} <= props(cb, "AmountReservationTransactionForReserveInput")
            and not {"phoneNumber", "clientCorrelator"} & props(cb, "CreatePayment")
            and not {"phoneNumber", "clientCorrelator"} & props(cb, "BodyAmountReservationTransactionForReserveInput")
        ),
        "chargingInformation.amount, no chargingInformationAmount": (
            "chargingInformation" in props(cb, "PaymentAmountForCharge")
            and "chargingInformationAmount" not in props(cb, "PaymentAmountForCharge")
            and "amount" in props(cb, "ChargingInformation")
        ),
        "chargingMetaData, not chargingMetadata": (
            "chargingMetaData" in props(cb, "PaymentAmountForCharge")
            and "chargingMetaData" in props(refund, "RefundAmountPartialRefund")
        ),
        "retrieveRefunds filters by refundStatus, not paymentStatus": (
            "refundStatus" in query_names(operations()["retrieveRefunds"])
            and "paymentStatus" not in query_names(operations()["retrieveRefunds"])
        ),
        "createRefund is at /payments/{paymentId}/refunds; no operation is at /refunds": (
            operations()["createRefund"].path.endswith("/payments/{paymentId}/refunds")
            and not any(op.path.endswith("v0.3/refunds") for op in operations().values())
        ),
    }
    return [claim for claim, holds in checks.items() if not holds]


def unique(prefix: str) -> str:
    """A value no other case uses (clientCorrelator, referenceCode, ...)."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def x_correlator() -> str:
    """A value that complies with ``#/components/schemas/XCorrelator``."""
    return str(uuid.uuid4())


def charging_information(amount: int, description: str = "CAMARA conformance") -> dict[str, Any]:
    """Required ChargingInformation, whole JPY."""
    return {"amount": amount, "currency": CURRENCY, "description": description}


def default_body(operation_id: str, *, amount: int = AMOUNT) -> dict[str, Any] | None:
    """A minimal request body that complies with the operation's schema (None: it takes no body).

    Payments are net JPY amounts (``isTaxIncluded`` absent means net, product.md §13); each body
    has its own ``clientCorrelator`` and ``referenceCode`` so that cases never collide.
    """
    if operation_id in ("createPayment", "preparePayment"):
        return {
            "amountTransaction": {
                "clientCorrelator": unique("cc"),
                "paymentAmount": {"chargingInformation": charging_information(amount)},
                "referenceCode": unique("ref-pay"),
            }
        }
    if operation_id == "createRefund":
        # A partial refund is the default: it is the type whose required information says most.
        return {"type": "partial", "amountTransaction": refund_transaction("partial")}
    if operation_id == "validatePayment":
        return {"authorizationId": unique("auth"), "code": "000000"}
    if operation_id in ("confirmPayment", "cancelPayment"):
        return {}  # PhoneNumber: every property optional; a 3-legged token identifies the line
    return None


def refund_transaction(refund_type: str) -> dict[str, Any]:
    """Required ``amountTransaction`` of a refund of ``refund_type``."""
    amount = {} if refund_type == "total" else {"chargingInformation": charging_information(REFUND_AMOUNT, "返金")}
    return {"clientCorrelator": unique("cc-ref"), "refundAmount": amount, "referenceCode": unique("ref-refund")}


def required_information(operation_id: str, path: str, body: dict[str, Any]) -> Any:
    """The value with required information only for ``path`` of ``operation_id``'s body."""
    if operation_id == "createRefund" and path == "$.amountTransaction":
        return refund_transaction(str(body.get("type", "partial")))
    fresh = default_body(operation_id) or {}
    value = fresh
    for part in path.removeprefix("$.").split("."):
        value = value[part]
    return copy.deepcopy(value)


def valid_value(path: str, operation_id: str) -> Any:
    """A valid value for a property the feature names (by its last name)."""
    name = path.rsplit(".", 1)[-1]
    values: dict[str, Any] = {
        "taxAmount": 10,
        "merchantIdentifier": unique("merchant"),
        "clientCorrelator": unique("cc"),
        "referenceCode": unique("ref"),
        "reason": "お客様のご要望による返金",
        "authorizationId": unique("auth"),
        "code": "000000",
        "type": "partial" if operation_id == "createRefund" else "total",
    }
    return copy.deepcopy(values.get(name, unique("value")))


def payment_details(amount: int) -> list[dict[str, Any]]:
    """PaymentDetails whose items add up to ``amount``."""
    return [{"id": unique("item"), "amount": amount, "currency": CURRENCY, "description": "動画 1本"}]


def sink_credential() -> dict[str, Any]:
    """A valid ACCESSTOKEN sink credential."""
    return {
        "credentialType": "ACCESSTOKEN",
        "accessToken": unique("sink-token"),
        "accessTokenExpiresUtc": "2099-12-31T23:59:59Z",
        "accessTokenType": "bearer",
    }


# A reserved top-level domain: never resolves, so no notification can leave this machine.
SINK = "https://sink.camara.test/events"

WRONG_TYPE: dict[str, Any] = {"string": 12345, "object": "not-an-object", "array": "not-an-array", "number": "x"}


def violation(api: str, schema_pointer: str, path: str) -> Any:
    """A value for ``path`` that does not comply with the schema at ``schema_pointer``: the wrong
    JSON type for the property the pointer's schema gives it (or for the schema itself)."""
    schema = resolve(api, schema_pointer)
    name = path.rsplit(".", 1)[-1]
    prop = schema.get("properties", {}).get(name)
    if prop is None:
        prop = schema
    elif "$ref" in prop or "allOf" in prop:
        prop = resolve(api, prop["$ref"]) if "$ref" in prop else {"type": "object"}
    # The wrong type, never a mere pattern break: a sink of the wrong pattern is the distinct
    # INVALID_SINK case (400.06), and this one expects INVALID_ARGUMENT.
    return WRONG_TYPE.get(prop.get("type") or "object", "x")
