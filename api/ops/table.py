"""The route table of ``/ops/v1``; each module of this package declares its operations on it."""

from __future__ import annotations

from aiohttp import web

from api.keys import REQUEST_ID
from api.routes import RouteTable
from models.audit import AuditEntry

__all__ = ["operator", "ops_routes"]

ops_routes = RouteTable(
    title="Matomete operator API",
    prefix="/ops/v1",
    security_description="Authorization: Bearer <MATOMETE_OPS_TOKEN>",
)


def operator(_request: object) -> str:
    """Who the audit log names for an ops-token request (the console's staff come later)."""
    return "ops_token"


async def audit(request: web.Request, action: str, target_type: str, target_id: str, **details: object) -> None:
    """Record an operator's action on an object, in the transaction of the change."""
    await AuditEntry.write(
        actor=operator(request),
        action=action,
        target_type=target_type,
        target_id=target_id,
        details=details,
        request_id=request.get(REQUEST_ID),
    )
