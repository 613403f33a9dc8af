"""The CAMARA routers' OpenAPI documents: GSMA's own YAMLs (read where they lie, never copied
into the project), served as JSON with their ``servers`` and OpenID Connect discovery URL
pointing at this platform, at ``{prefix}/openapi.json``. Without the definitions the document
is a 404 (the operations work all the same)."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web

from api.keys import SETTINGS

__all__ = ["SEARCHED", "definitions_dir", "document_route"]

ROOT = Path(__file__).resolve().parents[2]
RELEASE = "carrier-billing-r3.2"
# Where the definitions are looked for when MATOMETE_CAMARA_DIR does not say: beside the
# checkout (the workplace's shared folder), and that folder's usual place.
SEARCHED = (ROOT.parent / "shared" / "camara" / RELEASE, Path("/work/shared/camara") / RELEASE)


def definitions_dir(configured: str = "") -> Path | None:
    """The CAMARA release folder (``configured``, or ``MATOMETE_CAMARA_DIR``, or the first of
    ``SEARCHED`` that exists), or None."""
    for candidate in (configured, os.environ.get("MATOMETE_CAMARA_DIR", ""), *SEARCHED):
        if candidate and (Path(candidate) / "API_definitions").is_dir():
            return Path(candidate)
    return None


@functools.lru_cache(maxsize=8)
def _document(path: Path, server: str, discovery: str) -> bytes:
    document: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    document["servers"] = [{"url": server}]
    schemes = document.get("components", {}).get("securitySchemes", {})
    if "openId" in schemes:
        schemes["openId"]["openIdConnectUrl"] = discovery
    return json.dumps(document, ensure_ascii=False).encode()


def document_route(prefix: str, file_name: str) -> web.RouteDef:
    """``GET /openapi.json`` of the sub-application mounted at ``prefix``."""

    async def serve(request: web.Request) -> web.Response:
        settings = request.config_dict[SETTINGS]
        folder = definitions_dir(settings.camara_dir)
        if folder is None:
            raise web.HTTPNotFound(reason="The CAMARA definitions are not installed here (MATOMETE_CAMARA_DIR).")
        body = _document(
            folder / "API_definitions" / file_name,
            f"{settings.base_url}{prefix}",
            f"{settings.base_url}/.well-known/openid-configuration",
        )
        return web.Response(body=body, content_type="application/json")

    return web.get("/openapi.json", serve)
