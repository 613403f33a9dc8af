"""Every ops endpoint that takes a body refuses malformed JSON, unknown fields and wrong types with
a 400 naming the field, and writes nothing; the OpenAPI document describes every operation."""

from __future__ import annotations

from typing import Any

import pytest

from api.ops.table import ops_routes
from conftest import OpsClient, row_counts
from tests_support import MERCHANT_BODY, line_body

LINE_ID = "CAF0000000501"


@pytest.fixture
async def provisioned(ops: OpsClient) -> dict[str, str]:
    """A line and a merchant to address paths to."""
    await ops.post("/ops/v1/lines", json=line_body(LINE_ID))
    await ops.post(f"/ops/v1/lines/{LINE_ID}/accounts", json={"login_id": "contract-id"})
    _, merchant = await ops.post("/ops/v1/merchants", json=MERCHANT_BODY)
    return {
        "line_id": LINE_ID,
        "id": merchant["id"],
        "login_id": "contract-id",
        "queue": "payouts",
        "message_id": "no-such-message",
    }


def _body_operations() -> list[tuple[str, str, str]]:
    """(method, path, a required-or-known field) for every operation declared with a body."""
    wrong_type_field = {
        "/lines": "line_id",
        "/lines/{line_id}": "monthly_limit",
        "/lines/{line_id}/sessions": "address",
        "/lines/{line_id}/accounts": "login_id",
        "/accounts/{login_id}/unlock": "reason",
        "/accounts/{login_id}/reset_password": "reason",
        "/merchants": "name",
        "/merchants/{id}": "max_charge_amount",
        "/merchants/{id}/users": "email",
        "/oauth_clients": "merchant_id",
        "/clock": "now",
        "/billing/close": "period",
        "/collections": "rows",
        "/payouts/generate": "period",
        "/system/dead_letters/{queue}/{message_id}/requeue": "reason",
    }
    return [(op.method, op.path, wrong_type_field[op.path]) for op in ops_routes.operations if op.body is not None]


@pytest.mark.parametrize(("method", "path", "field"), _body_operations())
async def test_every_body_is_validated_before_anything_is_written(
    ops: OpsClient, provisioned: dict[str, str], method: str, path: str, field: str
) -> None:
    """Malformed JSON, an unknown field and a wrong type each answer 400 and change no row."""
    url = "/ops/v1" + path.format(**provisioned)
    before = await row_counts()
    cases: list[tuple[dict[str, Any], str, str | None]] = [
        ({"data": b"{'single': 'quotes'}"}, "invalid_json", None),
        ({"json": {"unexpected_field": 1}}, "parameter_unknown", "unexpected_field"),
        ({"json": {field: {"not": "this type"}}}, "parameter_invalid", field),
    ]
    for request, code, param in cases:
        status, answer = await ops.request(method, url, **request)
        assert status == 400, (request, answer)
        assert answer["error"]["code"] == code
        if param is not None:
            assert answer["error"]["param"] == param
    assert await row_counts() == before


async def test_openapi_document_describes_every_operation(ops: OpsClient) -> None:
    """/ops/v1/openapi.json is public and lists each operation with its request schema."""
    response = await ops.client.get("/ops/v1/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.1")
    for op in ops_routes.operations:
        entry = document["paths"]["/ops/v1" + op.path][op.method.lower()]
        if op.body is not None:
            ref = entry["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            assert ref.rsplit("/", 1)[-1] in document["components"]["schemas"]
    line_schema = document["components"]["schemas"]["LineCreate"]
    assert line_schema["properties"]["line_id"]["pattern"] == r"^(CAF|COP)\d{10}$"
    assert line_schema["additionalProperties"] is False
