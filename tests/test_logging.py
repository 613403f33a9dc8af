"""Logs are structlog JSON with the request id bound, and never carry a secret."""

from __future__ import annotations

import json

import pytest
import structlog

from conftest import OPS_TOKEN
from settings.logging import configure_logging


@pytest.fixture
def json_logs() -> None:
    """JSON logging as in production, for this test."""
    configure_logging(log_format="json", log_level="info")


def test_secrets_are_redacted(json_logs: None, capsys: pytest.CaptureFixture[str]) -> None:
    """A password, API key or token passed to a logger is replaced before the line is written."""
    structlog.get_logger("t").info("signing_in", login_id="taro", password="hunter2", api_key="sk_live_x", token="t")
    line = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert line["login_id"] == "taro"
    assert (line["password"], line["api_key"], line["token"]) == ("[redacted]", "[redacted]", "[redacted]")


async def test_request_lines_carry_the_request_id_and_no_token(
    json_logs: None, ops, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each request logs one JSON line with its request id; the ops token never appears."""
    response = await ops.client.get("/healthz", headers={"X-Request-Id": "trace-0123456789"})
    assert response.status == 200
    await ops.post("/ops/v1/lines", json={"line_id": "bad"})
    output = capsys.readouterr().out
    lines = [json.loads(text) for text in output.splitlines() if text.startswith("{")]
    requests = [entry for entry in lines if entry.get("event") == "request"]
    assert any(e["request_id"] == "trace-0123456789" and e["path"] == "/healthz" for e in requests)
    assert all(e["request_id"] for e in requests)
    assert OPS_TOKEN not in output


async def test_confirmation_tokens_are_masked_in_request_lines(
    json_logs: None, ops, capsys: pytest.CaptureFixture[str]
) -> None:
    """A confirmation URL's token is a bearer secret: the request line logs /confirm/*** instead."""
    token = "tok_" + "x" * 28
    for suffix in ("", "/wait", "/status"):
        await ops.client.get(f"/confirm/{token}{suffix}")
    output = capsys.readouterr().out
    requests = [json.loads(text) for text in output.splitlines() if text.startswith('{"')]
    paths = [entry["path"] for entry in requests if entry.get("event") == "request"]
    assert paths[-3:] == ["/confirm/***", "/confirm/***/wait", "/confirm/***/status"]
    assert token not in output
