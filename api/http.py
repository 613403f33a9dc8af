"""Reading requests and writing responses: JSON in through pydantic, JSON out, errors named.

Every body is validated by a pydantic model that forbids unknown fields and coerces nothing,
so a wrong type or an unexpected key is a 400 that names the field before anything is written.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from decimal import Decimal
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from billing.errors import InvalidRequest

__all__ = ["TEXT_PATTERN", "Body", "holds_control_character", "json_response", "parse_body", "validation_error"]

M = TypeVar("M", bound=BaseModel)


# C0 control characters but tab, line feed and carriage return, and DEL: PostgreSQL text cannot
# hold NUL at all, and none of them belongs on a bill, a page or a log line.
CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# The same rule as a JSON Schema pattern (the OpenAPI documents put it on every request text).
TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"


def holds_control_character(value: object) -> bool:
    """True when ``value`` (a string, or one inside a list or dict, keys included) holds one."""
    if isinstance(value, str):
        return CONTROL_CHARACTERS.search(value) is not None
    if isinstance(value, dict):
        return any(holds_control_character(key) or holds_control_character(item) for key, item in value.items())
    if isinstance(value, list | tuple):
        return any(holds_control_character(item) for item in value)
    return False


class Body(BaseModel):
    """Base of every request body: unknown fields are refused, types are not coerced, and no text
    holds a control character (the same on SQLite and PostgreSQL)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @field_validator("*", mode="after")
    @classmethod
    def _no_control_characters(cls, value: Any) -> Any:
        if holds_control_character(value):
            raise ValueError("text must not hold control characters")
        return value


def _default(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response; datetimes as ISO 8601, decimals as strings."""
    return web.Response(
        text=json.dumps(data, default=_default, ensure_ascii=False),
        status=status,
        content_type="application/json",
        headers=headers,
    )


def validation_error(error: ValidationError) -> InvalidRequest:
    """One problem pydantic found, as a 400 naming the field (``a.b`` for nested).

    What was sent wrongly is named before what is missing: an unknown field first (often a
    misspelt one, which would otherwise read as "missing"), then a bad value, then an absence.
    """
    rank = {"json_invalid": 0, "extra_forbidden": 1, "missing": 3}
    first = min(error.errors(include_url=False), key=lambda problem: rank.get(problem["type"], 2))
    kind = first["type"]
    param = ".".join(str(part) for part in first["loc"]) or None
    if kind == "json_invalid":
        return InvalidRequest("The body is not valid JSON.", code="invalid_json")
    if kind in ("model_type", "model_attributes_type") and not first["loc"]:
        return InvalidRequest("The body must be a JSON object.", code="invalid_json")
    if kind == "extra_forbidden":
        return InvalidRequest(f"Unknown field: {param}.", param=param, code="parameter_unknown")
    if kind == "missing":
        return InvalidRequest(f"Missing required field: {param}.", param=param, code="parameter_missing")
    return InvalidRequest(f"Invalid {param}: {first['msg']}.", param=param, code="parameter_invalid")


def _number(text: str) -> int | float:
    value = float(text)
    return int(value) if value.is_integer() else value


def whole_numbers(raw: bytes) -> bytes:
    """``raw`` with every whole number written as an integer (``5.0``, ``5e2``): JSON has one
    number type and to JSON Schema, so to the OpenAPI documents, 5.0 is the integer 5. Bytes
    that are not JSON come back as they are, for pydantic to name the problem."""
    if b"." not in raw and b"e" not in raw and b"E" not in raw:
        return raw
    try:
        return json.dumps(json.loads(raw, parse_float=_number)).encode()
    except (ValueError, RecursionError):
        return raw


async def parse_body(request: web.Request, model: type[M]) -> M:
    """Validate the request body against ``model``; raise a 400 ``InvalidRequest`` otherwise."""
    raw = await request.read()
    if not raw.strip():
        raw = b"{}"
    try:
        return model.model_validate_json(whole_numbers(raw))
    except ValidationError as error:
        raise validation_error(error) from None
