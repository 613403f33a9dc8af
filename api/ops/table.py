"""The route table of ``/ops/v1``; each module of this package declares its operations on it."""

from __future__ import annotations

from api.routes import RouteTable

__all__ = ["operator", "ops_routes"]

ops_routes = RouteTable(
    title="Matomete operator API",
    prefix="/ops/v1",
    security_description="Authorization: Bearer <MATOMETE_OPS_TOKEN>",
)


def operator(_request: object) -> str:
    """Who the audit log names for an ops-token request (the console's staff come later)."""
    return "ops_token"
