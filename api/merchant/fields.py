"""Request fields the merchant API shares: amounts, descriptions, return URLs, metadata."""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, Field

__all__ = ["URL_PATTERN", "Amount", "Description", "Metadata", "Reference", "ReturnUrl"]

AMOUNT_CEILING = 1_000_000  # no merchant's own maximum may exceed this; each has its own below it
# An absolute http(s) URL without spaces or control characters (a browser is sent to it, or
# the platform calls it): the same pattern checks it and is the documents' ``pattern``.
URL_PATTERN = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\s\x00-\x1f\x7f/?#@]+([/?#][^\s\x00-\x1f\x7f]*)?$"


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("must be an absolute http(s) URL")
    return value


def url_field(max_length: int, description: str) -> Any:
    """A URL field: checked by ``URL_PATTERN`` and a parse, documented as ``format: uri``."""
    return Field(
        min_length=8, max_length=max_length, pattern=URL_PATTERN, description=description, json_schema_extra={"format": "uri"}
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
