"""Generic step definitions for every step text of CAMARA's carrier-billing feature files.

A :class:`Case` holds one scenario's request (operation, headers, path and query parameters, a
JSON body built by JSONPath) and its answer. Tokens are minted when the request is sent, so a
three-legged createPayment token carries the final body's amount as its consent. Each case has
its own OAuth client and its own line and subscriber ID, so nothing is truncated between cases.
What a case needs to exist (payments, reservations, refunds) it makes through the CAMARA API
itself, the subscriber confirming on the validation page as a browser would.

Where a feature is ambiguous the YAML and product.md §13 decide; each such reading is noted
where it is made (and manifest.CONTEXTS lists the scenarios whose environment differs).
"""

from __future__ import annotations

import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import camara_oauth
import camara_spec
import pytest
import requests
from camara_platform import Platform, Subscriber
from jsonpath_ng import parse as jsonpath
from manifest import ALIASES, CONTEXTS
from pytest_bdd import given, parsers, then, when

MISSING = object()  # "the request body is not included"
ABSENT_PHONE = "+819000000000"  # E.164, and no line has it (the harness numbers lines +8150...)
CASE_LIMIT = 20_000  # yen a month: every case's line and ID
DENIED_AMOUNT = 30_000  # over CASE_LIMIT, under the merchant's maximum: a payment kept as denied
Q = r'"(?P<{}>[^"]*)"'


def q(name: str) -> str:
    """A quoted step argument named ``name``."""
    return Q.format(name)


def step_re(text: str) -> Any:
    """A regular-expression step parser of the whole ``text``."""
    return parsers.re("^" + text + "$")


# --- aliases (manifest.ALIASES lists them with the reason; each use is counted for the summary)

ALIAS_USES: dict[str, int] = {}
NOTES: set[str] = set()  # where the harness followed the YAML over a feature, printed with the summary


def _used(key: str) -> None:
    ALIAS_USES[key] = ALIAS_USES.get(key, 0) + 1


def body_path(path: str, operation_id: str) -> str:
    """``path`` as the YAML spells it (the features' typos mapped, manifest.ALIASES)."""
    for wrong, right in (
        ("$.validatioInfo", "$.validationInfo"),
        ("$.phonenumber", "$.phoneNumber"),
        ("chargingInformationAmount", "chargingInformation.amount"),
        ("chargingMetadata", "chargingMetaData"),
    ):
        if wrong in path:
            path = path.replace(wrong, right)
            _used(next(alias for alias in ALIASES if alias.startswith(f"{wrong} ->")))
    if operation_id in ("createPayment", "preparePayment") and path in ("$.phoneNumber", "$.clientCorrelator"):
        path = "$.amountTransaction." + path.removeprefix("$.")
        _used(next(alias for alias in ALIASES if alias.startswith("$.phoneNumber, $.clientCorrelator")))
    return path


def query_name(name: str, operation_id: str) -> str:
    """A query parameter as the YAML names it."""
    if operation_id == "retrieveRefunds" and name == "paymentStatus":
        _used(next(alias for alias in ALIASES if alias.startswith("retrieveRefunds query")))
        return "refundStatus"
    return name


# --- JSONPath on plain JSON values


def _parts(path: str) -> list[str | int]:
    tokens = re.findall(r"[^.\[\]]+|\[\d+\]", path.removeprefix("$").lstrip("."))
    return [int(token[1:-1]) if token.startswith("[") else token for token in tokens]


def json_get(document: Any, path: str) -> list[Any]:
    """Every value at ``path`` (JSONPath) in ``document``."""
    return [match.value for match in jsonpath(path).find(document)]


def json_set(document: dict[str, Any], path: str, value: Any) -> None:
    """Set ``path`` (``$.a.b`` or ``$.a[0].b``) to ``value``, creating objects on the way."""
    parts = _parts(path)
    node: Any = document
    for part in parts[:-1]:
        if isinstance(part, int):
            node = node[part]
        else:
            if not isinstance(node.get(part), dict | list):
                node[part] = {}
            node = node[part]
    node[parts[-1]] = value


def json_remove(document: Any, path: str) -> None:
    """Remove ``path`` from ``document`` when it is there."""
    parts = _parts(path)
    node = document
    for part in parts[:-1]:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return
    if isinstance(node, dict):
        node.pop(parts[-1], None)


def relative_time(value: str, now: datetime | None = None) -> str:
    """``NOW``, ``NOW - 7 days`` ... (``now``: the platform's clock) as an RFC 3339 instant;
    anything else as it is."""
    match = re.fullmatch(r"NOW(?:\s*-\s*(\d+)\s*days?)?", value.strip())
    if not match:
        return value
    moment = (now or datetime.now(UTC)) - timedelta(days=int(match.group(1) or 0))
    # Milliseconds: whatever was seeded before this step is before NOW, whatever the platform rounds.
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def instant(value: str) -> datetime:
    """An RFC 3339 value as an aware datetime."""
    return datetime.fromisoformat(relative_time(value))


class Case:
    """One scenario: what it will send, what it seeded and what came back."""

    def __init__(self, platform: Platform, tag: str, feature_operation: str) -> None:
        self.platform = platform
        self.tag = tag
        self.feature_operation = feature_operation
        self.context = CONTEXTS.get(tag, "")
        self.operation: camara_spec.Operation | None = None
        self.headers: dict[str, str] = {}
        self.auth: str | None = None  # the kind of token the Authorization header gets
        self.body: Any = None  # None until a step sets it; MISSING: no body at all
        self.raw_body: str | None = None
        self.path_params: dict[str, str] = {}
        self.query: dict[str, str] = {}
        self.query_now: datetime | None = None  # the platform's NOW of the query's dates
        self.threshold = False
        self._subscriber: Subscriber | None = None
        self._client: Any = None
        self._merchant_id: str | None = None
        self.payment: dict[str, Any] | None = None  # "that payment"
        self.refund: dict[str, Any] | None = None
        self.payments: list[dict[str, Any]] = []  # seeded, as the platform answered them
        self.refunds: list[dict[str, Any]] = []
        self.merchant_identifier: str | None = None
        self.response: requests.Response | None = None
        self.sent_headers: dict[str, str] = {}
        self.sent_body: Any = None

    # --- who

    @property
    def operation_id(self) -> str:
        """The operation the case targets."""
        assert self.operation is not None, "no resource was given"
        return self.operation.operation_id

    @property
    def subscriber(self) -> Subscriber:
        """The case's own line and ID (made on first use; a denied or ineligible one when the
        scenario's context says so)."""
        if self._subscriber is None:
            if self.context == "ineligible":
                # An ADSL line without Flets.net may not use the service (product.md §2).
                self._subscriber = self.platform.new_subscriber(line_type="adsl", monthly_limit=CASE_LIMIT)
            else:
                self._subscriber = self.platform.new_subscriber(monthly_limit=CASE_LIMIT)
        return self._subscriber

    @property
    def client(self) -> Any:
        """The case's own OAuth client (of its own merchant for the 429 cases)."""
        if self._client is None:
            if (self.threshold or self.context == "denied") and self._merchant_id is None:
                self._merchant_id = self.platform.new_merchant()
            self._client = self.platform.new_client(self._merchant_id)
        return self._client

    def token(self, kind: str, operation_id: str, body: Any) -> str:
        """An access token of ``kind`` for a request of ``operation_id`` with ``body``."""
        issuer = self.platform.base_url
        if kind == "valid" and self.context == "two_legged" and operation_id == self.operation_id:
            kind = "two_legged"  # the scenario's own request, under the 2-legged token its title names
        three_legged = kind != "two_legged"
        login = self.subscriber.login_id if three_legged else None
        consent = "consent" if operation_id == "createPayment" and three_legged else ()
        scopes = None
        if kind == "no_scope":
            # Every CAMARA scope but the ones the YAML requires of this operation: the wrong scopes.
            required = camara_spec.operations()[operation_id].scopes
            scopes = tuple(scope for scope in camara_oauth.camara_scopes() if scope not in required)
        lifetime = camara_oauth.EXPIRED if kind == "expired" else camara_oauth.LIFETIME
        token = self.platform.run(
            camara_oauth.mint(
                self.client,
                issuer=issuer,
                login_id=login,
                scopes=scopes,
                authorization_details=consent,
                body=body,
                lifetime=lifetime,
            )
        )
        if kind == "invalid":
            head, _, signature = token.rpartition(".")
            return f"{head}.{signature[::-1]}x" if head else token + "x"
        return token

    # --- sending

    def url_path(self, operation: camara_spec.Operation) -> str:
        """The operation's path with the case's path parameters in it."""
        path = operation.path
        for name, value in self.path_params.items():
            path = path.replace("{" + name + "}", value)
        return path

    def prepare_request(self, operation: camara_spec.Operation) -> tuple[dict[str, str], bytes | None]:
        """The headers (token minted now) and body bytes of the request."""
        headers = dict(self.headers)
        if self.auth is not None:
            headers["Authorization"] = "Bearer " + self.token(self.auth, operation.operation_id, self.body)
        if self.raw_body is not None:
            data: bytes | None = self.raw_body.encode()
        elif self.body is MISSING or self.body is None:
            data = None
        else:
            data = json.dumps(self.body, ensure_ascii=False).encode()
        return headers, data

    def send(self, operation_id: str, times: int = 1) -> None:
        """Send the request ``times`` times (after reaching the rate limit, when asked); keep the last answer."""
        operation = camara_spec.operations()[operation_id]
        self.operation = operation
        self.apply_context_before_send()
        headers, data = self.prepare_request(operation)
        path = self.url_path(operation)

        def once() -> requests.Response:
            return self.platform.send(operation.method, path, headers=headers, query=self.query, data=data)

        if self.threshold:
            camara_oauth.reach_rate_limit(lambda: once().status_code)
        for _ in range(times):
            self.response = once()
        self.sent_headers = headers
        self.sent_body = self.body

    def apply_context_before_send(self) -> None:
        """What a scenario's context (manifest.CONTEXTS) changes just before its request."""
        if self.context == "refunded_in_full":
            # Not eligible: the payment was refunded in full already.
            status, answer = self.create_refund(self.succeeded_payment(), "total")
            assert status == 201, f"seeding a total refund answered {status}: {answer}"
        if self.context == "denied":
            # Denied by business: the case's own merchant (the aggregator) is suspended, after
            # whatever the case seeded (for confirmPayment, the reservation).
            self.client  # noqa: B018 - made now, of the case's own merchant
            status, body = self.platform.ops("PATCH", f"/ops/v1/merchants/{self._merchant_id}", {"status": "suspended"})
            assert status == 200, body

    @property
    def answer(self) -> Any:
        """The response body as JSON (None when it is not JSON)."""
        assert self.response is not None, "no request was sent"
        try:
            return self.response.json()
        except ValueError:
            return None

    # --- seeding through the CAMARA API itself

    def call(self, operation_id: str, body: Any = None, *, params: dict[str, str] | None = None) -> Any:
        """A CAMARA call as the case's own client for its own subscriber (three-legged); the JSON."""
        operation = camara_spec.operations()[operation_id]
        path = operation.path
        for name, value in (params or {}).items():
            path = path.replace("{" + name + "}", value)
        data = None if body is None else json.dumps(body, ensure_ascii=False).encode()
        # No retry on 429: the run's limit is per minute and per case's client, which no seeding
        # reaches (camara_oauth.RATE_LIMITS); a 429 here fails the seeding's assertion, as it should.
        headers = {
            "Content-Type": "application/json",
            "x-correlator": camara_spec.x_correlator(),
            "Authorization": "Bearer " + self.token("valid", operation_id, body),
        }
        response = self.platform.send(operation.method, path, headers=headers, query={}, data=data)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    def create_payment(self, *, amount: int = camara_spec.AMOUNT, details: bool = True, **extra: Any) -> dict[str, Any]:
        """A one-step payment (``succeeded``, or ``denied`` over the ID's limit); the answer."""
        body = camara_spec.default_body("createPayment", amount=amount)
        assert body is not None
        if details:
            body["amountTransaction"]["paymentAmount"]["paymentDetails"] = camara_spec.payment_details(amount)
        for path, value in extra.items():
            json_set(body, path, value)
        status, answer = self.call("createPayment", body)
        if status in (403, 422) and amount == DENIED_AMOUNT:
            # Denied over the ID's limit: the answer is an error, the payment is kept as denied and
            # the listing knows it by its referenceCode.
            denied = {"paymentStatus": "denied", "amountTransaction": body["amountTransaction"]}
            self.payments.append(denied)
            return denied
        assert status == 201, f"seeding createPayment answered {status}: {answer}"
        answer.setdefault("amountTransaction", {}).setdefault(
            "paymentAmount", body["amountTransaction"]["paymentAmount"]
        )
        self.payments.append(answer)
        return dict(answer)

    def prepare_payment(self, **extra: Any) -> dict[str, Any]:
        """A two-step payment waiting for its subscriber (``pending_validation``); the answer."""
        body = camara_spec.default_body("preparePayment")
        assert body is not None
        for path, value in extra.items():
            json_set(body, path, value)
        status, answer = self.call("preparePayment", body)
        assert status == 201, f"seeding preparePayment answered {status}: {answer}"
        self.payments.append(answer)
        return dict(answer)

    def reserved_payment(self) -> dict[str, Any]:
        """A prepared payment its subscriber confirmed on the validation page (``reserved``)."""
        prepared = self.prepare_payment()
        url = (prepared.get("validationInfo") or {}).get("validationURL")
        assert url, f"preparePayment gave no validationInfo.validationURL: {prepared}"
        status = self.platform.subscriber_confirms(url, self.subscriber)
        assert status in (200, 302, 303), f"the validation page's form answered {status}"
        return self.wait_for(prepared, "reserved")

    def wait_for(self, payment: dict[str, Any], status: str, deadline: float = 15) -> dict[str, Any]:
        """``payment`` once retrievePayment shows ``status``."""
        end = time.monotonic() + deadline
        while True:
            code, current = self.call("retrievePayment", params={"paymentId": payment["paymentId"]})
            if code == 200 and current.get("paymentStatus") == status:
                self.payments[self.payments.index(payment)] = current
                return dict(current)
            assert time.monotonic() < end, f"payment {payment['paymentId']} never became {status}: {code} {current}"
            time.sleep(0.05)

    def finish(self, payment: dict[str, Any], operation_id: str, status: str) -> dict[str, Any]:
        """A reserved payment confirmed (``succeeded``) or cancelled by the merchant."""
        code, answer = self.call(operation_id, {}, params={"paymentId": payment["paymentId"]})
        assert code in (200, 202, 204), f"seeding {operation_id} answered {code}: {answer}"
        return self.wait_for(payment, status)

    def create_refund(
        self, payment: dict[str, Any], refund_type: str = "partial", **extra: Any
    ) -> tuple[int, dict[str, Any]]:
        """A refund of ``payment``; ``(status, answer)`` (kept when created)."""
        body: dict[str, Any] = {"type": refund_type, "amountTransaction": camara_spec.refund_transaction(refund_type)}
        for path, value in extra.items():
            json_set(body, path, value)
        status, answer = self.call("createRefund", body, params={"paymentId": payment["paymentId"]})
        if status == 201:
            self.refunds.append(answer)
        return status, answer

    def succeeded_payment(self) -> dict[str, Any]:
        """``that payment``: one created succeeded (with one paymentDetails item) for this case."""
        if self.payment is None:
            self.payment = self.create_payment()
        return self.payment


@pytest.fixture
def case(request: pytest.FixtureRequest, camara_platform: Platform) -> Case:
    """The scenario's request state."""
    return Case(camara_platform, request.node.camara_tag, request.node.camara_operation)


# ===================================================================== request: resource, headers


@given(step_re(f"the resource {q('resource')}"))
def resource(case: Case, resource: str) -> None:
    """The operation at ``resource`` (looked up again by operationId when the request is sent)."""
    case.operation = camara_spec.operation_for_resource(resource, case.feature_operation)
    if case.operation is None and resource == "/carrier-billing-refund/v0.3/refunds":
        # createRefund's Background names a path no YAML has; the operation is createRefund.
        _used(next(alias for alias in ALIASES if alias.startswith("createRefund resource")))
        case.operation = camara_spec.operations()["createRefund"]
    assert case.operation is not None, f"no operation of the YAMLs is at {resource}"


@given(step_re(f"the header {q('name')} is set to {q('value')}"))
def header_set(case: Case, name: str, value: str) -> None:
    """A header with a literal value."""
    case.headers[name] = value


@given(step_re(f"the header {q('name')} is removed"))
def header_removed(case: Case, name: str) -> None:
    """No such header (for Authorization: no token at all)."""
    case.headers.pop(name, None)
    if name.lower() == "authorization":
        case.auth = None


@given(step_re(f"the header {q('name')} complies with the schema at {q('schema')}"))
def header_compliant(case: Case, name: str, schema: str) -> None:
    """A header value that complies with ``schema`` (an x-correlator)."""
    value = camara_spec.x_correlator()
    assert not camara_spec.schema_errors(case.operation.api if case.operation else "carrier-billing", schema, value)
    case.headers[name] = value


@given(step_re(f"the header {q('name')} does not comply with the schema at {q('schema')}"))
def header_not_compliant(case: Case, name: str, schema: str) -> None:
    """A header value outside ``schema``'s pattern (spaces and ``!`` are outside it)."""
    value = "not a valid correlator!"
    assert camara_spec.schema_errors(case.operation.api if case.operation else "carrier-billing", schema, value)
    case.headers[name] = value


TOKEN_KINDS = {
    "a valid access token": "valid",
    "a valid access token identifying a phone number": "valid",
    "a valid access token associated for a phone number with payments requested": "valid",
    "a valid access token associated for a phone number with refunds requested": "valid",
    "a valid access token which does not identify a single phone number": "two_legged",
    "a valid access token not emitted for a specific phone number": "two_legged",
    "an expired access token": "expired",
    "an invalid access token": "invalid",
    "an access token without the required scope": "no_scope",
}


@given(step_re(r"(?:the )?header \"Authorization\" is set to (?P<kind>(?:a|an) [^\"]+)"))
def authorization(case: Case, kind: str) -> None:
    """The kind of token the request carries; minted when it is sent."""
    assert kind in TOKEN_KINDS, f"unknown token kind: {kind}"
    case.auth = TOKEN_KINDS[kind]


# ===================================================================== request: body


@given("the request body is set by default to a request body compliant with the schema")
def body_default(case: Case) -> None:
    """A minimal valid body of the case's operation."""
    case.body = camara_spec.default_body(case.operation_id)


@given("the request body is set to a valid request body")
def body_valid(case: Case) -> None:
    """Keep the valid body built so far (a fresh default one if there is none)."""
    if case.body is None or case.body is MISSING:
        case.body = camara_spec.default_body(case.operation_id)


@given("the request body is not included")
def body_missing(case: Case) -> None:
    """No body at all."""
    case.body = MISSING


@given(step_re(f"the request body is set to {q('raw')}"))
def body_raw(case: Case, raw: str) -> None:
    """A literal body (``{}``)."""
    case.body = json.loads(raw)


def _body(case: Case) -> dict[str, Any]:
    if not isinstance(case.body, dict):
        case.body = camara_spec.default_body(case.operation_id) or {}
    return case.body


@given(
    step_re(f"the request body property ?{q('path')} is set with valid required information(?: for this refund type)?")
)
def body_required_information(case: Case, path: str) -> None:
    """``path`` holds its required information only."""
    path = body_path(path, case.operation_id)
    json_set(_body(case), path, camara_spec.required_information(case.operation_id, path, _body(case)))


@given(step_re(f"the request body property {q('path')} is set (?:to|with) a valid value"))
def body_valid_value(case: Case, path: str) -> None:
    """A valid value for ``path`` (a phone number: the case line's)."""
    path = body_path(path, case.operation_id)
    if path.endswith("phoneNumber"):
        json_set(_body(case), path, case.subscriber.phone_number)
    else:
        json_set(_body(case), path, camara_spec.valid_value(path, case.operation_id))


@given(step_re(f"the request body property {q('path')} is set to true"))
def body_true(case: Case, path: str) -> None:
    """``path`` is true. A refund's gross amount refunds a gross payment: the refund-eligible
    payment is then one whose amount was tax included (the platform refuses a mix, 422.04)."""
    path = body_path(path, case.operation_id)
    json_set(_body(case), path, True)  # noqa: FBT003 - a JSON value
    if case.operation_id == "createRefund" and path.endswith("chargingInformation.isTaxIncluded"):
        case.payment = case.create_payment(
            **{"$.amountTransaction.paymentAmount.chargingInformation.isTaxIncluded": True}
        )
        case.path_params["paymentId"] = case.payment["paymentId"]


@given(step_re(f"the request body property {q('path')} is set to false OR not set"))
def body_false_or_absent(case: Case, path: str) -> None:
    """``path`` absent (isTaxIncluded absent means a net amount)."""
    json_remove(_body(case), body_path(path, case.operation_id))


@given(step_re(f"the request body property {q('path')} is set to {q('value')}"))
def body_literal(case: Case, path: str, value: str) -> None:
    """``path`` is the literal string ``value``; changing a refund's type brings that type's amount."""
    path = body_path(path, case.operation_id)
    json_set(_body(case), path, value)
    if case.operation_id == "createRefund" and path == "$.type":
        json_set(_body(case), "$.amountTransaction", camara_spec.refund_transaction(value))


@given(
    step_re(
        f"the request body property {q('path')} is set to a valid value which is the same as associated to access token"
    )
)
def body_phone_of_token(case: Case, path: str) -> None:
    """The phone number of the line the token identifies."""
    json_set(_body(case), body_path(path, case.operation_id), case.subscriber.phone_number)


@given(step_re(f"the request body property {q('path')} is set to a valid phone number"))
def body_phone(case: Case, path: str) -> None:
    """The case line's phone number."""
    json_set(_body(case), body_path(path, case.operation_id), case.subscriber.phone_number)


@given(
    step_re(
        f"the request body property {q('path')} is compliant with the schema but does not identify a valid phone number"
    )
)
def body_unknown_phone(case: Case, path: str) -> None:
    """An E.164 number no line has."""
    json_set(_body(case), body_path(path, case.operation_id), ABSENT_PHONE)


@given(step_re(f'the request body property {q("path")} does not comply with the OAS schema at "?(?P<schema>[^"]+)"?'))
def body_not_compliant(case: Case, path: str, schema: str) -> None:
    """A value of ``path`` that breaks ``schema`` (checked against the YAML before it is sent)."""
    path = body_path(path, case.operation_id)
    value = camara_spec.violation(case.operation.api, schema, path)  # type: ignore[union-attr]
    json_set(_body(case), path, value)
    if case.operation and case.operation.body_schema:
        assert camara_spec.schema_errors(case.operation.api, case.operation.body_schema, case.body), (
            f"{path}={value!r} should break {case.operation.body_schema}"
        )


@given(step_re(f"the request body property {q('path')} (?:is not included|is missing)"))
def body_remove(case: Case, path: str) -> None:
    """``path`` removed."""
    json_remove(_body(case), body_path(path, case.operation_id))


@given(step_re(f"the request body property {q('path')} is set with a valid (?:HTTPS )?URL"))
def body_sink(case: Case, path: str) -> None:
    """An https sink (on a reserved domain; the harness runs no webhook delivery)."""
    json_set(_body(case), body_path(path, case.operation_id), camara_spec.SINK)


@given(
    step_re(
        f"the request body property {q('path')} is set to a valid"
        f" credential with property {q('prop')} set to {q('value')}"
    )
)
def body_sink_credential(case: Case, path: str, prop: str, value: str) -> None:
    """A valid sink credential of ``value``'s type (and a sink for it)."""
    credential = camara_spec.sink_credential()
    json_set(credential, "$." + prop.rsplit(".", 1)[-1], value)
    json_set(_body(case), body_path(path, case.operation_id), credential)
    _body(case).setdefault("sink", camara_spec.SINK)


@given(step_re(f"the request body array property {q('path')} is set with valid information"))
def body_details(case: Case, path: str) -> None:
    """PaymentDetails adding up to the amount, or refundDetails naming the payment's item."""
    path = body_path(path, case.operation_id)
    if path.endswith("refundDetails"):
        item = case.succeeded_payment()["amountTransaction"]["paymentAmount"]["paymentDetails"][0]
        info = _body(case)["amountTransaction"]["refundAmount"]["chargingInformation"]
        json_set(
            _body(case),
            path,
            [
                {
                    "paymentItemId": item["id"],
                    "amount": info["amount"],
                    "currency": info["currency"],
                    "description": "返金",
                }
            ],
        )
    else:
        amount = json_get(_body(case), "$.amountTransaction.paymentAmount.chargingInformation.amount")
        json_set(_body(case), path, camara_spec.payment_details(int(amount[0]) if amount else camara_spec.AMOUNT))


@given(
    step_re(
        f"the request body property includes property {q('path')} with a"
        f" value already use in a non-completed (?P<kind>payment|refund)"
    )
)
def body_correlator_in_use(case: Case, path: str, kind: str) -> None:
    """The clientCorrelator of a pending payment (or of a refund) of this client, on another request."""
    path = body_path(path, case.operation_id)
    correlator = camara_spec.unique("cc-used")
    if kind == "payment":
        case.prepare_payment(**{"$.amountTransaction.clientCorrelator": correlator})
    else:
        case.create_refund(case.succeeded_payment(), **{"$.amountTransaction.clientCorrelator": correlator})
    json_set(_body(case), path, correlator)


@given(
    step_re(
        f"the request body property {q('path')} is set to a value"
        f" already use in another (?P<kind>payment|refund) request"
    )
)
def body_reference_in_use(case: Case, path: str, kind: str) -> None:
    """The referenceCode of a payment (or refund) this client already made."""
    path = body_path(path, case.operation_id)
    reference = camara_spec.unique("ref-used")
    if kind == "refund":
        case.create_refund(case.succeeded_payment(), **{"$.amountTransaction.referenceCode": reference})
    elif case.operation_id == "preparePayment":
        case.prepare_payment(**{"$.amountTransaction.referenceCode": reference})
    else:
        case.create_payment(**{"$.amountTransaction.referenceCode": reference})
    json_set(_body(case), path, reference)


@given(
    step_re(
        f"the request body property includes property {q('path')} (?:which is not set to an url|with an HTTP endpoint)"
    )
)
def body_bad_sink(case: Case, path: str) -> None:
    """A sink that is a string but not an https URL."""
    value = (
        "http://sink.camara.test/events"
        if "HTTP endpoint" in case.tag or case.operation_id == "createRefund"
        else "not-an-url"
    )
    json_set(_body(case), body_path(path, case.operation_id), value)


@given(step_re(f"the request body property includes property {q('path')} whose value is not {q('value')}"))
def body_bad_credential(case: Case, path: str, value: str) -> None:
    """A sink credential whose ``path`` is another allowed (or no allowed) value than ``value``."""
    credential = camara_spec.sink_credential()
    name = path.rsplit(".", 1)[-1]
    credential[name] = {"ACCESSTOKEN": "PLAIN", "bearer": "mac"}.get(value, "other")
    if credential["credentialType"] == "PLAIN":
        credential.update(identifier="aggregator", secret="s3cret")
    _body(case)["sinkCredential"] = credential
    _body(case).setdefault("sink", camara_spec.SINK)


@given(step_re(f"the request body property includes property {q('path')} with a non-existing value in the environment"))
def body_unknown_value(case: Case, path: str) -> None:
    """A value nothing in the platform has."""
    json_set(_body(case), body_path(path, case.operation_id), camara_spec.unique("unknown"))


@given(step_re(f"the request body property {q('path')} exceeds the value allowed by the regulation"))
def body_over_maximum(case: Case, path: str) -> None:
    """One yen over the merchant's maximum for one payment."""
    json_set(_body(case), body_path(path, case.operation_id), case.platform.merchant_max + 1)


@given(
    step_re(
        f"the request body property {q('path')} exceeds the accumulated"
        f" threshold amount value allowed by the regulation(?: for refunds)?"
    )
)
def body_over_accumulated(case: Case, path: str) -> None:
    """More than the month's limit of the case's ID and line (each payment itself allowed)."""
    json_set(_body(case), body_path(path, case.operation_id), CASE_LIMIT + 1)


@given(
    step_re(
        f"the request body property {q('path')} exceeds the value of the"
        f" related payment OR exceeds the value allowed by the regulation"
    )
)
def body_refund_over_payment(case: Case, path: str) -> None:
    """More than the related payment's amount."""
    paid = case.succeeded_payment()["amountTransaction"]["paymentAmount"]["chargingInformation"]["amount"]
    json_set(_body(case), body_path(path, case.operation_id), int(paid) + 1_000)


@given(step_re(f"the request body property {q('path')} is different than the value used for related payment"))
def body_other_tax_mode(case: Case, path: str) -> None:
    """The other tax mode than the payment's."""
    paid = case.succeeded_payment()["amountTransaction"]["paymentAmount"]["chargingInformation"]
    json_set(_body(case), body_path(path, case.operation_id), not paid.get("isTaxIncluded", False))


@given(
    step_re(
        f"the request body property {q('path')} is not consistent"
        f" with the value of {q('other')} used for related payment"
    )
)
def body_inconsistent_details(case: Case, path: str, other: str) -> None:
    """RefundDetails naming an item the payment does not have."""
    case.succeeded_payment()
    item = {"paymentItemId": camara_spec.unique("no-item"), "amount": 1, "currency": "JPY", "description": "返金"}
    json_set(_body(case), body_path(path, case.operation_id), [item])


# ===================================================================== request: path and query


@given(
    step_re(
        r"the path parameter \"(?P<name>[^\"]+)\" is set to a valid"
        r" (?:value|value in the environment|refund-eligible payment value)"
    )
)
def path_valid(case: Case, name: str) -> None:
    """A payment (or refund) in the state the operation needs, created for this case."""
    operation_id = case.operation_id
    if name == "refundId":
        status, refund = case.create_refund(case.succeeded_payment())
        assert status == 201, f"seeding createRefund answered {status}: {refund}"
        case.refund = refund
        case.path_params[name] = refund["refundId"]
        return
    if operation_id in ("confirmPayment", "cancelPayment"):
        case.payment = case.reserved_payment()
    elif operation_id == "validatePayment":
        case.payment = case.prepare_payment()
    else:
        case.succeeded_payment()
    assert case.payment is not None
    case.path_params[name] = case.payment["paymentId"]


@given(
    step_re(
        f"the path parameter {q('name')} is compliant with the schema but"
        f" does not identify a valid (?:payment|refund) in the environment"
    )
)
def path_unknown(case: Case, name: str) -> None:
    """An identifier nothing has."""
    case.path_params[name] = camara_spec.unique("unknown")


@given(
    step_re(f"the path param {q('name')} is set to a valid value of an already (?P<state>confirmed|cancelled) payment")
)
def path_finished(case: Case, name: str, state: str) -> None:
    """A payment the merchant already confirmed (``succeeded``) or cancelled."""
    reserved = case.reserved_payment()
    if state == "confirmed":
        case.payment = case.finish(reserved, "confirmPayment", "succeeded")
    else:
        case.payment = case.finish(reserved, "cancelPayment", "cancelled")
    case.path_params[name] = case.payment["paymentId"]


@given(
    step_re(f"the path parameter {q('name')} is set to a valid value of a payment whose {q('prop')} != {q('value')}")
)
def path_not_succeeded(case: Case, name: str, prop: str, value: str) -> None:
    """A payment that is not ``succeeded``: one waiting for its subscriber."""
    case.payment = case.prepare_payment()
    case.path_params[name] = case.payment["paymentId"]


@given(
    step_re(
        f"the path parameter {q('name')} is set to the value (?:for that payment|of the payment related to this refund)"
    )
)
def path_that_payment(case: Case, name: str) -> None:
    """``that payment``."""
    case.path_params[name] = case.succeeded_payment()["paymentId"]


@given(step_re(f"the path parameter {q('name')} is set to the value for this refund"))
def path_that_refund(case: Case, name: str) -> None:
    """``this refund``."""
    assert case.refund is not None, "no refund was created"
    case.path_params[name] = case.refund["refundId"]


@given(step_re(f"the query parameter {q('name')} is set to {q('value')}"))
def query_set(case: Case, name: str, value: str) -> None:
    """A query parameter (``NOW - 7 days`` becomes an instant)."""
    if case.query_now is None:
        case.query_now = case.platform.now()
    case.query[query_name(name, case.operation_id)] = relative_time(value, case.query_now)


@given(step_re(f"the query parameter {q('name')} is set to the value representing such a merchant"))
def query_merchant(case: Case, name: str) -> None:
    """The merchantIdentifier the seeded payments or refunds carry."""
    assert case.merchant_identifier is not None, "no payments or refunds for a given merchant were seeded"
    case.query[name] = case.merchant_identifier


# ===================================================================== seeding


@given(step_re(r"(?:an|at least an) existing payment created by operation createPayment OR preparePayment"))
def one_payment(case: Case) -> None:
    """One succeeded payment: ``that payment``."""
    case.succeeded_payment()


@given("no payments have been created by operation createPayment OR preparePayment")
def no_payments(case: Case) -> None:
    """The case's subscriber and client are new: they have none."""
    assert not case.payments


# The plain "several existing" payments and refunds are spread over time, so that the creation
# date filters and the ordering have something to tell apart: one now, then the platform's clock
# moves SPREAD forward, another, SPREAD again, a third. At the request they are SPREAD * 2,
# SPREAD and 0 days old (16, 8 and 0: on either side of the features' 1, 3, 7 and 30 days).
SPREAD = timedelta(days=8)


def _spread(case: Case, make: Any, count: int = 3) -> None:
    for index in range(count):
        if index:
            case.platform.move_clock(SPREAD)
        make()


@given("several existing payments created by operation createPayment OR preparePayment")
def several_payments(case: Case) -> None:
    """Three succeeded payments, 16, 8 and 0 days old."""
    _spread(case, case.create_payment)


@given("several existing payments created by operation createPayment OR preparePayment, at least more than five")
def six_payments(case: Case) -> None:
    """Six succeeded payments."""
    for _ in range(6):
        case.create_payment()


@given("several existing payments created by operation createPayment OR preparePayment in different payment status")
def payments_in_states(case: Case) -> None:
    """One payment in each state the platform can hold: succeeded, pending_validation, reserved,
    cancelled and denied (``processing`` is never held: payments are decided synchronously)."""
    case.create_payment()
    case.prepare_payment()
    case.reserved_payment()
    case.finish(case.reserved_payment(), "cancelPayment", "cancelled")
    case.create_payment(amount=DENIED_AMOUNT, details=False)


@given("several existing payments created by operation createPayment OR preparePayment for a given merchant")
def payments_for_merchant(case: Case) -> None:
    """Two payments for one chargingMetaData merchant, one for another."""
    case.merchant_identifier = camara_spec.unique("merchant")
    for identifier in (case.merchant_identifier, case.merchant_identifier, camara_spec.unique("other")):
        case.create_payment(**{"$.amountTransaction.paymentAmount.chargingMetaData.merchantIdentifier": identifier})


@given(step_re(r"(?:an|at least an) existing refund created by operation createRefund"))
def one_refund(case: Case) -> None:
    """One partial refund of ``that payment``: ``this refund``."""
    status, case.refund = case.create_refund(case.succeeded_payment())
    assert status == 201, f"seeding createRefund answered {status}: {case.refund}"


@given("no refunds have been created by operation createRefund")
def no_refunds(case: Case) -> None:
    """``that payment`` has none."""
    assert not case.refunds


def _refunds(case: Case, count: int, **extra: Any) -> None:
    for _ in range(count):
        status, answer = case.create_refund(case.succeeded_payment(), **extra)
        assert status == 201, f"seeding createRefund answered {status}: {answer}"


@given("several existing refunds created by operation createRefund")
def several_refunds(case: Case) -> None:
    """Three partial refunds of ``that payment``, 16, 8 and 0 days old."""
    _spread(case, lambda: _refunds(case, 1))


@given("several existing refunds created by operation createRefund, at least more than five")
def six_refunds(case: Case) -> None:
    """Six partial refunds of ``that payment`` (10 yen each of 110)."""
    _refunds(case, 6)


@given("several existing refunds created by operation createRefund in different refund status")
def refunds_in_states(case: Case) -> None:
    """Refunds of ``that payment``: partial ones (``succeeded``: refunds are decided at once)."""
    _refunds(case, 2)


@given("several existing refunds created by operation createRefund for a given merchant")
def refunds_for_merchant(case: Case) -> None:
    """Two refunds for one chargingMetaData merchant, one for another."""
    case.merchant_identifier = camara_spec.unique("merchant")
    for identifier in (case.merchant_identifier, case.merchant_identifier, camara_spec.unique("other")):
        _refunds(case, 1, **{"$.amountTransaction.refundAmount.chargingMetaData.merchantIdentifier": identifier})


@given(
    step_re(
        f"an existing (?P<refund_type>total|partial) refund"
        f" (?P<state>being perfomed|completed successfully|finally denied) for that {q('name')}"
    )
)
def refund_in_state(case: Case, refund_type: str, state: str, name: str) -> None:
    """A refund of ``that payment``. A denied one is denied by business: ``that payment`` is then a
    new one of a merchant (and client) of the case's own, suspended while the refund is asked for
    (and refused, so none exists), then active again."""
    if state == "finally denied":
        case._client, case.payment = None, None
        case._merchant_id = case.platform.new_merchant()
        payment = case.succeeded_payment()
        case.platform.ops("PATCH", f"/ops/v1/merchants/{case._merchant_id}", {"status": "suspended"})
        status, answer = case.create_refund(payment, refund_type)
        case.platform.ops("PATCH", f"/ops/v1/merchants/{case._merchant_id}", {"status": "active"})
        assert status == 403, f"a refund by a suspended merchant answered {status}: {answer}"
        return
    status, answer = case.create_refund(case.succeeded_payment(), refund_type)
    assert status == 201, f"seeding createRefund answered {status}: {answer}"
    case.refund = answer


@given("that the environment is configured with a threshold policy of N transactions per second")
def threshold_policy(case: Case) -> None:
    """The case's request goes out as a new client of a new merchant, whose counts mix with nobody's."""
    case.threshold = True
    case._client = None
    case._merchant_id = None


@given("the threshold of requests has been reached")
def threshold_reached(case: Case) -> None:
    """The rate limit is reached by the case's own request just before it is sent (camara_oauth)."""
    case.threshold = True


@given("that the service is not available for all phone numbers commercialized by the operator")
def service_partial(case: Case) -> None:
    """ADSL lines without Flets.net may not use the service (product.md §2)."""


@given(
    "a valid phone number, identified by the token or provided in"
    " the request body, for which the service is not applicable"
)
def phone_not_applicable(case: Case) -> None:
    """The token identifies an ineligible line: a new ADSL line without Flets.net, or, when the
    case already holds a payment of its line (confirm, cancel), that line suspended."""
    if case.payment is not None and case._subscriber is not None:
        case.platform.ops("PATCH", f"/ops/v1/lines/{case.subscriber.line_id}", {"status": "suspended"})
    else:
        case.context = "ineligible"
        case._subscriber = None


# ===================================================================== sending


@when(step_re(f"the request {q('operation_id')} is sent"))
def send(case: Case, operation_id: str) -> None:
    """Send the request built so far."""
    case.send(operation_id)


@when(step_re(f"the request {q('operation_id')} is sent after {q('times')} times"))
def send_times(case: Case, operation_id: str, times: str) -> None:
    """Send the same request ``times`` times."""
    case.send(operation_id, int(times))


# ===================================================================== response checks


@then(step_re(r"the response status code is (?P<status>\d+)"))
def status_code(case: Case, status: str) -> None:
    """The status."""
    assert case.response is not None
    assert case.response.status_code == int(status), (
        f"{case.response.request.method} {case.response.request.path_url} answered "
        f"{case.response.status_code}, not {status}: {case.response.text[:400]}"
    )


@then(step_re(f"the response header {q('name')} is {q('value')}"))
def response_header(case: Case, name: str, value: str) -> None:
    """A header's value (Content-Type: its media type, parameters aside)."""
    assert case.response is not None
    actual = case.response.headers.get(name)
    if name.lower() == "content-type" and actual is None and not case.response.content:
        # The YAML over the feature: an answer the YAML gives no body (confirmPayment's and
        # cancelPayment's 202) has no Content-Type to check.
        assert case.operation is not None
        if not camara_spec.response_has_content(case.operation, case.response.status_code):
            NOTES.add(f"{case.operation_id} {case.response.status_code}: no body in the YAML, no Content-Type")
            return
    if name.lower() == "content-type" and actual is not None:
        actual = actual.split(";", 1)[0].strip()
    assert actual == value, f"{name}: {actual!r}, not {value!r}"


@then(step_re(f"the response header {q('name')} has same value as the request header {q('other')}"))
def response_header_echo(case: Case, name: str, other: str) -> None:
    """A header echoed."""
    assert case.response is not None
    assert case.response.headers.get(name) == case.sent_headers.get(other), (
        f"{name}: {case.response.headers.get(name)!r}, sent {case.sent_headers.get(other)!r}"
    )


@then(step_re(f"the response body complies with the OAS schema at {q('schema')}"))
def response_schema(case: Case, schema: str) -> None:
    """The body validated against the YAML's schema."""
    errors = camara_spec.schema_errors(case.operation.api, schema, case.answer)  # type: ignore[union-attr]
    assert not errors, f"the body breaks {schema}: {errors[:5]}; body: {json.dumps(case.answer)[:400]}"


def _values(case: Case, path: str) -> list[Any]:
    return json_get(case.answer, body_path(path, case.operation_id))


def _same(actual: Any, expected: str) -> bool:
    if str(actual) == expected:
        return True
    try:
        return bool(json.loads(expected) == actual)
    except ValueError:
        return False


@then(step_re(r"the response (?:body )?property \"(?P<path>[^\"]+)\" is (?P<status>\d+)"))
def property_number(case: Case, path: str, status: str) -> None:
    """A number property."""
    values = _values(case, path)
    assert values == [int(status)], f"{path}: {values}, not {status}; body: {case.answer}"


@then(step_re(r"the response (?:body )?property \"(?P<path>[^\"]+)\" is (?:set )?\"(?P<value>[^\"]*)\""))
def property_value(case: Case, path: str, value: str) -> None:
    """A property equal to ``value`` (as text, or as JSON: ``{}``, ``0``)."""
    values = _values(case, path)
    assert len(values) == 1, f"{path} is not in the body: {case.answer}"
    assert _same(values[0], value), f"{path}: {values[0]!r}, not {value!r}"


@then(step_re(f"the response property {q('path')} contains a user friendly text"))
def property_text(case: Case, path: str) -> None:
    """A non-empty message."""
    values = _values(case, path)
    assert values, f"{path} is not in the body: {case.answer}"
    assert isinstance(values[0], str), f"{path}: {values[0]!r}"
    assert values[0].strip(), f"{path} is empty"


@then(step_re(f"the response body property {q('path')} is true"))
def property_true(case: Case, path: str) -> None:
    """A property that is true."""
    assert _values(case, path) == [True], f"{path}: {_values(case, path)}"


@then(step_re(f"the response body property {q('path')} is false OR not returned"))
def property_false(case: Case, path: str) -> None:
    """A property false or absent."""
    assert _values(case, path) in ([], [False]), f"{path}: {_values(case, path)}"


@then(step_re(f"the response property {q('path')} is returned"))
def property_returned(case: Case, path: str) -> None:
    """A property present."""
    assert _values(case, path), f"{path} is not in the body: {case.answer}"


@then(step_re(f"the response property {q('path')} is not returned"))
def property_not_returned(case: Case, path: str) -> None:
    """A property absent."""
    assert not _values(case, path), f"{path} is in the body: {_values(case, path)}"


@then(
    step_re(
        f"the response body (?:array )?property {q('path')} has the"
        f" same (?:value|information) as provided in the request body"
    )
)
def property_echoed(case: Case, path: str) -> None:
    """A property the same as sent."""
    path = body_path(path, case.operation_id)
    sent = json_get(case.sent_body, path)
    assert sent, f"{path} was not sent"
    answered = json_get(case.answer, path)
    # The same information: everything sent is answered as sent; the platform may add a property
    # the schema defaults (paymentDetails items answer isTaxIncluded: false).
    assert len(answered) == len(sent), f"{path}: {answered}, sent {sent}"
    assert all(_contains(got, want) for got, want in zip(answered, sent, strict=True)), (
        f"{path}: {answered}, sent {sent}"
    )


def _contains(answered: Any, sent: Any) -> bool:
    """``answered`` holds everything ``sent`` holds, with the same values."""
    if isinstance(sent, dict):
        return isinstance(answered, dict) and all(
            key in answered and _contains(answered[key], value) for key, value in sent.items()
        )
    if isinstance(sent, list):
        return (
            isinstance(answered, list)
            and len(answered) == len(sent)
            and all(_contains(got, want) for got, want in zip(answered, sent, strict=True))
        )
    return bool(answered == sent)


def _payment_amount(case: Case) -> float:
    assert case.payment is not None, "no related payment"
    return _as_answered(case, case.payment["amountTransaction"]["paymentAmount"]["chargingInformation"])


def _as_answered(case: Case, info: dict[str, Any]) -> float:
    """``info``'s amount in the terms of the answer: tax included when the answer says so and
    the amount was net (net plus its tax, rounded down, as the platform prices it)."""
    amount = info["amount"]
    if _values(case, "$.isTaxIncluded") == [True] and not info.get("isTaxIncluded"):
        return float(case.platform.run(camara_oauth.tax_included(int(amount))))
    return float(amount)


@then(step_re(f"the response property {q('path')} is the value of the amount of the related payment"))
def property_payment_amount(case: Case, path: str) -> None:
    """The whole payment is still refundable."""
    assert [float(value) for value in _values(case, path)] == [_payment_amount(case)], (
        f"{path}: {_values(case, path)}, paid {_payment_amount(case)}"
    )


@then(step_re(f"the response property {q('path')} is the value of {q('minuend')} - {q('subtrahend')}"))
def property_remaining(case: Case, path: str, minuend: str, subtrahend: str) -> None:
    """What was paid less what was refunded."""
    assert case.refund is not None, "no refund"
    refunded = _as_answered(case, case.refund["amountTransaction"]["refundAmount"]["chargingInformation"])
    expected = _payment_amount(case) - refunded
    assert [float(value) for value in _values(case, path)] == [expected], (
        f"{path}: {_values(case, path)}, not {expected}"
    )


@then(step_re(f"the response body is an empty array {q('value')}"))
def empty_array(case: Case, value: str) -> None:
    """``[]``."""
    assert case.answer == json.loads(value), f"body: {case.answer}"


# --- lists


def _listed(case: Case) -> list[dict[str, Any]]:
    assert isinstance(case.answer, list), f"body is not an array: {case.answer}"
    return list(case.answer)


def _seeded(case: Case, kind: str) -> list[dict[str, Any]]:
    return case.payments if kind == "payments" else case.refunds


def _identity(item: dict[str, Any]) -> Any:
    """What tells a payment or refund apart in a listing: its referenceCode (unique per case; a
    payment denied with 403 has no id, but its referenceCode is known)."""
    return (item.get("amountTransaction") or {}).get("referenceCode") or item.get("paymentId") or item.get("refundId")


def _item_values(item: dict[str, Any], path: str, operation_id: str) -> list[Any]:
    path = body_path(path.replace("$[*]", "$"), operation_id)
    return json_get(item, path)


def _matches(item: dict[str, Any], path: str, relation: str, operands: list[str], case: Case) -> bool:
    values = _item_values(item, path, case.operation_id)
    if not values:
        return False
    value = values[0]
    if relation == "==":
        return str(value) == operands[0]
    if relation == "query":
        return str(value) == case.query.get(operands[0], "")
    moment = instant(str(value))
    if relation == "gte":
        return moment >= instant(operands[0])
    if relation == "lte":
        return moment <= instant(operands[0])
    return instant(operands[0]) <= moment <= instant(operands[1])


RELATIONS = (
    (r"greater or equal than \"(?P<a>[^\"]+)\"", "gte"),
    (r"lower or equal than \"(?P<a>[^\"]+)\"", "lte"),
    (r"between \"(?P<a>[^\"]+)\" and \"(?P<b>[^\"]+)\"", "between"),
    (r"== \"(?P<a>[^\"]+)\"", "=="),
    (r"set to the same value as the query parameter \"(?P<a>[^\"]+)\"", "query"),
)


def _relation(text: str, case: Case) -> tuple[str, list[str]]:
    """The relation and its operands (``NOW ...`` as the instant the query was given)."""
    now = case.query_now or case.platform.now()
    for pattern, relation in RELATIONS:
        match = re.fullmatch(pattern, text)
        if match:
            return relation, [relative_time(group, now) for group in match.groups() if group is not None]
    msg = f"unknown relation: {text}"
    raise AssertionError(msg)


@then(step_re(r"all the (?P<kind>payments|refunds) returned have their property \"(?P<path>[^\"]+)\" (?P<rest>.+)"))
def all_listed_match(case: Case, kind: str, path: str, rest: str) -> None:
    """Every listed item satisfies the relation."""
    relation, operands = _relation(rest, case)
    wrong = [item for item in _listed(case) if not _matches(item, path, relation, operands, case)]
    assert not wrong, f"listed {kind} whose {path} is not {rest}: {wrong[:3]}"


@then(
    step_re(
        r"only the (?P<kind>payments|refunds) with their property \"(?P<path>[^\"]+)\" (?P<rest>.+?)(?: are returned)?"
    )
)
def only_matching_listed(case: Case, kind: str, path: str, rest: str) -> None:
    """Exactly the case's seeded items that satisfy the relation are listed."""
    relation, operands = _relation(rest, case)
    expected = {_identity(item) for item in _seeded(case, kind) if _matches(item, path, relation, operands, case)}
    listed = {_identity(item) for item in _listed(case)}
    assert listed == expected, f"listed {sorted(map(str, listed))}, expected {sorted(expected)}"


@then(step_re(r"only the (?P<kind>payments|refunds) associated to that (?:phone number|application) are returned"))
def only_own_listed(case: Case, kind: str) -> None:
    """Exactly the case's own items (its own subscriber and client) are listed."""
    expected = {_identity(item) for item in _seeded(case, kind)}
    listed = {_identity(item) for item in _listed(case)}
    assert listed == expected, f"listed {sorted(map(str, listed))}, expected {sorted(expected)}"


@then(step_re(r"only five (?P<kind>payments|refunds) (?:are )?returned"))
def five_listed(case: Case, kind: str) -> None:
    """A page of five."""
    assert len(_listed(case)) == 5, f"{len(_listed(case))} {kind} listed"


@then(
    step_re(
        r"all the (?P<kind>payments|refunds) returned are ordered"
        r" by \"(?P<order>asc|desc)\" property \"(?P<path>[^\"]+)\""
    )
)
def ordered(case: Case, kind: str, order: str, path: str) -> None:
    """The listed items in ``order`` of ``path``."""
    moments = [instant(str(_item_values(item, path, case.operation_id)[0])) for item in _listed(case)]
    assert moments == sorted(moments, reverse=order == "desc"), f"{kind} not in {order} order: {moments}"
    assert len(moments) >= 2, f"only {len(moments)} {kind} listed"
