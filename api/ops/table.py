"""The route table of ``/ops/v1``; each module of this package declares its operations on it."""

from __future__ import annotations

from aiohttp import web

from api.keys import REQUEST_ID
from api.routes import RouteTable
from models.audit_log import Actor

__all__ = ["operator", "ops_routes"]

ops_routes = RouteTable(
    title="Matomete operator API",
    prefix="/ops/v1",
    security_description="Authorization: Bearer <MATOMETE_OPS_TOKEN>",
)


def operator(request: web.Request) -> Actor:
    """Who the audit log names for an ops-token request, with the request's id."""
    return Actor("ops_token", request.get(REQUEST_ID))
