"""The OpenAPI documents say what the server enforces and every answer it gives (issue 13,
finding 5); each test names one disagreement schemathesis or an outside run found."""

from __future__ import annotations

import re
from typing import Any

import pytest

from billing.zengin import KANA_INPUT_PATTERN, to_zengin_kana
from conftest import OPS_TOKEN, OpsClient, row_counts
from models.events import EVENT_TYPES
from models.operations.webhooks import MAX_ENDPOINTS
from tests_support import MERCHANT_BODY, RETURN_URL, Shop, open_shop

DOCUMENTS = ("/v1/openapi.json", "/ops/v1/openapi.json")


@pytest.fixture
async def shop(ops: OpsClient) -> Shop:
    """A provisioned line, ID and merchant."""
    return await open_shop(ops)


async def _document(client: Any, path: str) -> dict[str, Any]:
    return await (await client.get(path)).json()


@pytest.mark.parametrize("path", ["/v1/charges", "/ops/v1/lines", "/v1/charges/ch_0"])
async def test_an_unknown_method_is_405_with_allow(client: Any, shop: Shop, path: str) -> None:
    """TRACE on an API path answers 405 in the error object with an Allow header naming the methods."""
    headers = {"Authorization": f"Bearer {OPS_TOKEN}"} if path.startswith("/ops") else shop.auth
    response = await client.request("TRACE", path, headers=headers)
    assert response.status == 405
    assert response.headers["Allow"]
    assert (await response.json())["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_every_operation_documents_401_and_429(client: Any, document: str) -> None:
    """Every operation documents 401 (all need credentials) and 429 with Retry-After."""
    paths = (await _document(client, document))["paths"]
    for methods in paths.values():
        for entry in methods.values():
            assert {"401", "429"} <= set(entry["responses"])
            assert "Retry-After" in entry["responses"]["429"]["headers"]


async def test_redeliver_answers_the_202_it_documents(client: Any, shop: Shop, ops: OpsClient) -> None:
    """POST /v1/events/{id}/redeliver queues work, answers 202, and the document says 202 (not 200)."""
    await client.post(
        "/v1/webhook_endpoints", headers=shop.auth, json={"url": "https://shop.example/hook", "events": ["*"]}
    )
    created = await client.post(
        "/v1/charges", headers=shop.auth, json={"amount": 500, "description": "x", "return_url": RETURN_URL}
    )
    charge = await created.json()
    await client.post(f"/v1/charges/{charge['id']}/cancel", headers=shop.auth)
    events = await (await client.get("/v1/events", headers=shop.auth)).json()
    response = await client.post(f"/v1/events/{events['data'][0]['id']}/redeliver", headers=shop.auth)
    assert response.status == 202
    documented = (await _document(client, "/v1/openapi.json"))["paths"]["/v1/events/{id}/redeliver"]["post"]
    assert "202" in documented["responses"]
    assert "200" not in documented["responses"]


async def test_one_endpoint_too_many_is_a_documented_409(client: Any, shop: Shop) -> None:
    """The 17th webhook endpoint answers 409 too_many_endpoints, which the document lists."""
    body = {"url": "https://shop.example/hook", "events": ["*"]}
    for _ in range(MAX_ENDPOINTS):
        assert (await client.post("/v1/webhook_endpoints", headers=shop.auth, json=body)).status == 201
    response = await client.post("/v1/webhook_endpoints", headers=shop.auth, json=body)
    assert response.status == 409
    assert (await response.json())["error"]["code"] == "too_many_endpoints"
    documented = (await _document(client, "/v1/openapi.json"))["paths"]["/v1/webhook_endpoints"]["post"]
    assert "409" in documented["responses"]


async def test_url_and_event_fields_are_documented_as_enforced(client: Any) -> None:
    """URL fields are format uri with the server's http(s) pattern; events an enum of the event types and *."""
    schemas = (await _document(client, "/v1/openapi.json"))["components"]["schemas"]
    for model, name in (
        ("ChargeCreate", "return_url"),
        ("SubscriptionCreate", "return_url"),
        ("EndpointCreate", "url"),
    ):
        field = schemas[model]["properties"][name]
        assert (field["format"], field["pattern"]) == ("uri", schemas["EndpointCreate"]["properties"]["url"]["pattern"])
    assert schemas["EndpointCreate"]["properties"]["events"]["items"]["enum"] == [*EVENT_TYPES, "*"]


@pytest.mark.parametrize("url", ["ftp://shop.example/r", "https://user@shop.example/r", "https://shop.example/a b"])
async def test_a_return_url_outside_the_documented_pattern_is_refused(client: Any, shop: Shop, url: str) -> None:
    """A return URL the document's pattern refuses is refused by the server too (400 return_url), nothing written."""
    before = await row_counts()
    response = await client.post(
        "/v1/charges", headers=shop.auth, json={"amount": 500, "description": "x", "return_url": url}
    )
    assert response.status == 400
    assert (await response.json())["error"]["param"] == "return_url"
    assert await row_counts() == before


async def test_a_whole_number_written_with_a_point_is_an_integer(client: Any, shop: Shop) -> None:
    """Amount 500.0 is the integer 500 to JSON Schema, so the server takes it; 500.5 is refused."""
    body = {"description": "x", "return_url": RETURN_URL}
    assert (await client.post("/v1/charges", headers=shop.auth, json={**body, "amount": 500.0})).status == 201
    assert (await client.post("/v1/charges", headers=shop.auth, json={**body, "amount": 500.5})).status == 400


@pytest.mark.parametrize("document", DOCUMENTS)
async def test_every_request_text_documents_the_control_character_rule(client: Any, document: str) -> None:
    """Every string of a request body has a pattern (the control-character rule unless its own)."""
    schemas = (await _document(client, document))["components"]["schemas"]
    bodies = {
        entry["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[-1]
        for methods in (await _document(client, document))["paths"].values()
        for entry in methods.values()
        if "requestBody" in entry
    }

    def strings(schema: dict[str, Any]) -> list[dict[str, Any]]:
        found = [schema] if schema.get("type") == "string" else []
        for value in schema.values():
            for child in value if isinstance(value, list) else [value]:
                if isinstance(child, dict):
                    found += strings(child)
        return found

    for name in bodies:
        for text in strings(schemas[name]):
            assert "pattern" in text or "enum" in text or text.get("format") == "date-time", (name, text)


def test_the_kana_pattern_is_exactly_what_the_zengin_conversion_takes() -> None:
    """KANA_INPUT_PATTERN (the documents' name_kana/holder_kana pattern) accepts a character iff to_zengin_kana does."""
    pattern = re.compile(KANA_INPUT_PATTERN)
    for code in range(0x20, 0x30000):
        if 0xD800 <= code <= 0xDFFF:
            continue
        char = chr(code)
        try:
            to_zengin_kana(char)
            takes = True
        except ValueError:
            takes = False
        assert bool(pattern.fullmatch(char)) == takes, hex(code)


async def test_a_bank_off_the_zengin_list_is_422(ops: OpsClient) -> None:
    """A well-formed bank or branch code that is not on the Zengin list answers 422 naming it; nothing is written."""
    before = await row_counts()
    for change, param in (
        ({"bank_code": "9998"}, "bank_account.bank_code"),
        ({"branch_code": "999"}, "bank_account.branch_code"),
    ):
        body = {**MERCHANT_BODY, "bank_account": {**MERCHANT_BODY["bank_account"], **change}}
        status, answer = await ops.post("/ops/v1/merchants", json=body)
        assert (status, answer["error"]["param"]) == (422, param)
    assert await row_counts() == before


async def test_a_holder_name_too_wide_once_converted_is_422(ops: OpsClient) -> None:
    """30 ガ are 60 Zengin characters: 422 holder_kana_too_long, not a database error; nothing is written."""
    before = await row_counts()
    body = {**MERCHANT_BODY, "bank_account": {**MERCHANT_BODY["bank_account"], "holder_kana": "ガ" * 30}}
    status, answer = await ops.post("/ops/v1/merchants", json=body)
    assert (status, answer["error"]["code"]) == (422, "holder_kana_too_long")
    assert await row_counts() == before


async def test_a_session_address_may_name_its_prefix_by_an_address_in_it(ops: OpsClient) -> None:
    """2001:db8:1200::1/56 matches the documented address pattern and opens 2001:db8:1200::/56."""
    await ops.post(
        "/ops/v1/lines",
        json={"line_id": "CAF0000000777", "line_type": "hikari_next", "holder_name": "x", "base_monthly_fee": 0},
    )
    status, session = await ops.post("/ops/v1/lines/CAF0000000777/sessions", json={"address": "2001:db8:1200::1/56"})
    assert (status, session["address"]) == (201, "2001:db8:1200::/56")
    status, answer = await ops.post("/ops/v1/lines/CAF0000000777/sessions", json={"address": "192.0.2.0/24"})
    assert (status, answer["error"]["param"]) == (400, "address")


async def test_list_cursors_unknown_and_together(client: Any, shop: Shop) -> None:
    """A well-formed cursor of no object is 404; both cursors at once 422; both documented on the list."""
    response = await client.get("/v1/charges?starting_after=ch_unknown", headers=shop.auth)
    assert (response.status, (await response.json())["error"]["param"]) == (404, "starting_after")
    response = await client.get("/v1/charges?starting_after=ch_a&ending_before=ch_b", headers=shop.auth)
    assert response.status == 422
    documented = (await _document(client, "/v1/openapi.json"))["paths"]["/v1/charges"]["get"]
    assert {"404", "422"} <= set(documented["responses"])
    assert {"limit", "starting_after", "ending_before", "status"} <= {p["name"] for p in documented["parameters"]}
