"""A route table that is also the OpenAPI document.

Each operation is declared once with its request and response models; the table registers
the aiohttp routes, parses the body before the handler runs, and writes
``openapi.json`` from the same declarations, so the document cannot drift from the code.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from api.http import json_response, parse_body
from billing.errors import NotFound

__all__ = ["PATH_PARAMETERS", "Operation", "RouteTable"]

Handler = Callable[..., Awaitable[web.StreamResponse]]
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "code": {"type": "string"},
                "message": {"type": "string"},
                "param": {"type": ["string", "null"]},
            },
            "required": ["type", "code", "message", "param"],
        }
    },
    "required": ["error"],
}
# Every operation of a surface behind ``api.ratelimit.failed_auth_limit`` may answer 429.
RATE_LIMITED_RESPONSE = {
    "description": "Too many requests (rate limited): retry after the seconds Retry-After gives.",
    "headers": {"Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 1}}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}


# The shape of each path parameter: a value of another shape is no object's, so it is answered
# 404 before any handler or query runs (an over-long id would otherwise reach a column that
# cannot hold it). Ids are ``prefix_hex`` at most 32 characters; a period's handler names its
# own problem.
ID_SHAPE = r"[A-Za-z0-9_]{1,32}"
PATH_PARAMETERS: dict[str, str] = {
    "login_id": r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}",
    "period": r"[^/]{1,16}",
    "queue": r"[A-Za-z0-9_.-]{1,64}",
    "message_id": r"[A-Za-z0-9_-]{1,64}",  # Dramatiq's: a UUID, or an outbox row's id
}


def _shape(name: str) -> str:
    return PATH_PARAMETERS.get(name, ID_SHAPE)


def _path_schema(name: str) -> dict[str, str]:
    return {"type": "string", "pattern": f"^{_shape(name)}$"}


@dataclass(frozen=True, kw_only=True)
class Operation:
    """One method on one path, what it takes and what it answers."""

    method: str
    path: str
    handler: Handler
    summary: str
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    errors: tuple[int, ...] = (400, 401, 404)


@dataclass
class RouteTable:
    """The operations of one surface (``/ops/v1``, ``/v1``) and its OpenAPI document."""

    title: str
    prefix: str
    security_description: str
    operations: list[Operation] = field(default_factory=list)
    # True when the surface is rate limited (api.ratelimit): every operation may answer 429.
    rate_limited: bool = True

    def route(  # noqa: PLR0913 - one keyword per part of an OpenAPI operation
        self,
        method: str,
        path: str,
        *,
        summary: str,
        body: type[BaseModel] | None = None,
        response: type[BaseModel] | None = None,
        status: int = 200,
        errors: tuple[int, ...] = (400, 401, 404),
    ) -> Callable[[Handler], Handler]:
        """Declare a handler; with ``body`` it is called as ``handler(request, body)``."""

        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(
                    method=method,
                    path=path,
                    handler=handler,
                    summary=summary,
                    body=body,
                    response=response,
                    status=status,
                    errors=errors,
                )
            )
            return handler

        return register

    def routes(self) -> list[web.RouteDef]:
        """Route definitions, relative to the sub-application mounted at ``prefix``, for every
        operation and for the OpenAPI document."""
        defs = [web.route(op.method, op.path, self._bind(op)) for op in self.operations]
        defs.append(web.get("/openapi.json", self._serve_openapi))
        return defs

    @staticmethod
    def _bind(op: Operation) -> Handler:
        shapes = {name: re.compile(_shape(name)) for name in re.findall(r"{(\w+)}", op.path)}
        model = op.body

        async def checked(request: web.Request) -> web.StreamResponse:
            for name, shape in shapes.items():
                if not shape.fullmatch(request.match_info.get(name, "")):
                    raise NotFound("No such object.", param=name)
            if model is None:
                return await op.handler(request)
            return await op.handler(request, await parse_body(request, model))

        checked.__name__ = op.handler.__name__
        return checked

    async def _serve_openapi(self, _request: web.Request) -> web.Response:
        return json_response(self.openapi())

    def openapi(self) -> dict[str, Any]:
        """The OpenAPI 3.1 document of this surface."""
        models = {m for op in self.operations for m in (op.body, op.response) if m is not None}
        keyed: list[tuple[type[BaseModel], JsonSchemaMode]] = [
            (m, "validation") for m in sorted(models, key=lambda m: m.__name__)
        ]
        _, definitions = models_json_schema(keyed, ref_template="#/components/schemas/{model}")
        schemas: dict[str, Any] = dict(definitions.get("$defs", {}))
        schemas["Error"] = ERROR_SCHEMA
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            path = self.prefix + op.path
            params = [
                {"name": name, "in": "path", "required": True, "schema": _path_schema(name)}
                for name in re.findall(r"{(\w+)}", op.path)
            ]
            responses: dict[str, Any] = {
                str(op.status): {
                    "description": "OK",
                    "content": {"application/json": {"schema": _ref(op.response)}} if op.response else {},
                }
            }
            for code in op.errors:
                responses[str(code)] = {
                    "description": "Error",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            if self.rate_limited:
                responses["429"] = RATE_LIMITED_RESPONSE
            entry: dict[str, Any] = {
                "summary": op.summary,
                "operationId": op.handler.__name__,
                "parameters": params,
                "responses": responses,
            }
            if op.body is not None:
                entry["requestBody"] = {"required": True, "content": {"application/json": {"schema": _ref(op.body)}}}
            paths.setdefault(path, {})[op.method.lower()] = entry
        return {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": "1"},
            "paths": paths,
            "components": {
                "schemas": schemas,
                "securitySchemes": {
                    "bearer": {"type": "http", "scheme": "bearer", "description": self.security_description}
                },
            },
            "security": [{"bearer": []}],
        }


def _ref(model: type[BaseModel] | None) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"} if model else {}
