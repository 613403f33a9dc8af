"""``/v1/docs``: the OpenAPI document as a page a person can read, without JavaScript."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from api.merchant.table import merchant_routes
from api.site.pages import render

__all__ = ["docs_page"]


def _fields(schema: dict[str, Any], components: dict[str, Any]) -> list[dict[str, Any]]:
    ref = schema.get("$ref", "")
    body = components.get(ref.rsplit("/", 1)[-1], {}) if ref else schema
    required = set(body.get("required", []))
    rows = []
    for name, prop in body.get("properties", {}).items():
        options = prop.get("anyOf", [prop])
        kinds = " or ".join(
            str(option.get("type", option.get("$ref", "").rsplit("/", 1)[-1] or "object")) for option in options
        )
        limits = [
            f"{key} {option[key]}"
            for option in options
            for key in ("minimum", "maximum", "minLength", "maxLength", "pattern", "format")
            if key in option
        ]
        rows.append(
            {
                "name": name,
                "type": kinds,
                "required": name in required,
                "limits": ", ".join(limits),
                "description": prop.get("description", ""),
            }
        )
    return rows


async def docs_page(request: web.Request) -> web.Response:
    """Every operation of ``/v1`` with its request fields and their limits."""
    document = merchant_routes.openapi()
    components = document["components"]["schemas"]
    operations = []
    for path, methods in document["paths"].items():
        for method, entry in methods.items():
            body = entry.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
            operations.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "summary": entry["summary"],
                    "fields": _fields(body, components) if body else [],
                }
            )
    return await render(request, "docs.html", {"title": document["info"]["title"], "operations": operations})
