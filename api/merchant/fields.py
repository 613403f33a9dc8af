"""Request fields the merchant API shares: amounts, descriptions, return URLs, metadata."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

from models.operations.webhooks import URL, URL_PATTERN

__all__ = ["URL_PATTERN", "Amount", "Description", "Metadata", "Reference", "ReturnUrl"]

AMOUNT_CEILING = 1_000_000  # no merchant's own maximum may exceed this; each has its own below it


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if not URL.fullmatch(value) or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    return value


def url_field(max_length: int, description: str) -> Any:
    """A URL field, documented as ``format: uri`` with ``URL_PATTERN`` (which the field's own
    check applies, so a refusal keeps its code: ``url_invalid`` for webhooks)."""
    return Field(
        min_length=8,
        max_length=max_length,
        description=description,
        json_schema_extra={"format": "uri", "pattern": URL_PATTERN},
    )


Amount = Annotated[int, Field(ge=1, le=AMOUNT_CEILING, description="Whole yen, tax included")]
Description = Annotated[str, Field(min_length=1, max_length=500)]
Reference = Annotated[str, Field(min_length=1, max_length=255)]
ReturnUrl = Annotated[
    str, url_field(2048, "Where the subscriber is sent back: an absolute http(s) URL"), AfterValidator(_http_url)
]
Metadata = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=40)], Annotated[str, Field(max_length=500)]],
    Field(max_length=20, description="Up to 20 string keys and values, kept and shown back"),
]
