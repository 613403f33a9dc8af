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
from pydantic.json_schema import GenerateJsonSchema, JsonSchemaMode, JsonSchemaValue, models_json_schema
from pydantic_core import core_schema

from api.http import TEXT_PATTERN, json_response, parse_body
from billing.errors import NotFound

__all__ = ["PATH_PARAMETERS", "PERIOD_PATTERN", "Operation", "RouteTable"]

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


PERIOD_PATTERN = r"\d{4}-(0[1-9]|1[0-2])"
# The shape of each path parameter: a value of another shape is no object's, so it is answered
# 404 before any handler or query runs (an over-long id would otherwise reach a column that
# cannot hold it). Ids are ``prefix_hex`` at most 32 characters; a period is ``YYYY-MM``.
ID_SHAPE = r"[A-Za-z0-9_]{1,32}"
PATH_PARAMETERS: dict[str, str] = {
    "login_id": r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}",
    "line_id": r"(CAF|COP)[0-9]{10}",
    "period": PERIOD_PATTERN,
    "queue": r"[A-Za-z0-9_.-]{1,64}",
    "message_id": r"[A-Za-z0-9_-]{1,64}",  # Dramatiq's: a UUID, or an outbox row's id
}


def _shape(name: str) -> str:
    return PATH_PARAMETERS.get(name, ID_SHAPE)


def _path_schema(name: str) -> dict[str, str]:
    return {"type": "string", "pattern": f"^{_shape(name)}$"}


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


# What every operation may answer besides its own statuses.
ERROR_DESCRIPTIONS = {
    400: "The request breaks the document: malformed JSON, an unknown field or query parameter, a wrong type, "
    "a value out of range; nothing was written",
    401: "No credentials, or wrong or revoked ones",
    403: "Not allowed",
    404: "No such object (or not the caller's)",
    409: "The object is in a state that refuses this, or it exists already",
    413: "The body is larger than 1 MiB",
    422: "Well-formed, but a rule of the product refuses it (the message names it)",
    429: "Too many requests; wait the Retry-After seconds",
    503: "A dependency (the broker) did not answer; try again",
}
RETRY_AFTER = {
    "Retry-After": {"description": "Seconds to wait before trying again", "schema": {"type": "integer", "minimum": 0}}
}


class RequestSchema(GenerateJsonSchema):
    """Request bodies' JSON Schema: every text without its own pattern says it refuses control
    characters, as ``api.http.Body`` does on both backends."""

    def str_schema(self, schema: core_schema.StringSchema) -> JsonSchemaValue:
        """A string's schema, with the control-character pattern unless it has a pattern."""
        value = super().str_schema(schema)
        value.setdefault("pattern", TEXT_PATTERN)
        return value

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        """A map's schema: pydantic writes a patterned key as ``patternProperties``, which would
        let other keys through; the key rule belongs in ``propertyNames``."""
        value = super().dict_schema(schema)
        patterned = value.pop("patternProperties", None)
        if patterned:
            ((pattern, values),) = patterned.items()
            value["additionalProperties"] = values
            value["propertyNames"] = {**value.get("propertyNames", {}), "pattern": pattern}
        return value


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
    query: dict[str, dict[str, Any]] = field(default_factory=dict)
    media_type: str = "application/json"
    description: str | None = None
    also: tuple[int, ...] = ()  # other success statuses, with the same answer


@dataclass
class RouteTable:
    """The operations of one surface (``/ops/v1``, ``/v1``) and its OpenAPI document."""

    title: str
    prefix: str
    security_description: str
    operations: list[Operation] = field(default_factory=list)
    # Header parameters every POST takes, and the statuses they add (``Idempotency-Key`` on /v1).
    post_headers: tuple[dict[str, Any], ...] = ()
    post_errors: tuple[int, ...] = ()

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
        query: dict[str, dict[str, Any]] | None = None,
        media_type: str = "application/json",
        description: str | None = None,
        also: tuple[int, ...] = (),
    ) -> Callable[[Handler], Handler]:
        """Declare a handler; with ``body`` it is called as ``handler(request, body)``. ``query``
        documents the query parameters (name: JSON Schema) a list or filter takes."""

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
                    query=query or {},
                    media_type=media_type,
                    description=description,
                    also=also,
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
        """The OpenAPI 3.1 document of this surface: every operation with its parameters, its
        body, and every status it can answer (401 and 429 on all, 400 and 413 where a body is
        read, 409 on /v1 POSTs for ``Idempotency-Key``)."""
        bodies = sorted({op.body for op in self.operations if op.body}, key=lambda m: m.__name__)
        answers = sorted({op.response for op in self.operations if op.response}, key=lambda m: m.__name__)
        schemas: dict[str, Any] = {}
        for models, generator in ((bodies, RequestSchema), (answers, GenerateJsonSchema)):
            keyed: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "validation") for m in models]
            _, definitions = models_json_schema(
                keyed, ref_template="#/components/schemas/{model}", schema_generator=generator
            )
            schemas.update(definitions.get("$defs", {}))
        schemas["Error"] = ERROR_SCHEMA
        paths: dict[str, dict[str, Any]] = {}
        for op in self.operations:
            paths.setdefault(self.prefix + op.path, {})[op.method.lower()] = self._operation(op)
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

    def _operation(self, op: Operation) -> dict[str, Any]:
        posted = op.method == "POST"
        params: list[dict[str, Any]] = [
            {"name": name, "in": "path", "required": True, "schema": _path_schema(name)}
            for name in re.findall(r"{(\w+)}", op.path)
        ]
        params += [
            {"name": name, "in": "query", "required": False, "schema": schema} for name, schema in op.query.items()
        ]
        if posted:
            params += list(self.post_headers)
        responses = self._responses(op)
        entry: dict[str, Any] = {
            "summary": op.summary,
            "operationId": op.handler.__name__,
            "parameters": params,
            "responses": responses,
        }
        if op.description:
            entry["description"] = op.description
        if op.body is not None:
            # A body whose fields are all optional may be left out (it reads as {}).
            required = any(field.is_required() for field in op.body.model_fields.values())
            entry["requestBody"] = {"required": required, "content": {"application/json": {"schema": _ref(op.body)}}}
        return entry

    def _responses(self, op: Operation) -> dict[str, Any]:
        posted = op.method == "POST"
        content: dict[str, Any] = {"schema": _ref(op.response) if op.response else {"type": "object"}}
        if op.media_type != "application/json":
            content = {"schema": {"type": "string", "format": "binary"}}
        ok: dict[str, Any] = {"description": "OK", "content": {op.media_type: content}}
        if posted and self.post_headers:
            ok["headers"] = {
                "Idempotent-Replayed": {
                    "description": "true when this is the stored answer to an earlier request with the same key",
                    "schema": {"type": "string", "enum": ["true"]},
                }
            }
        statuses = {*op.errors, 401, 429}
        if op.body is not None or op.query:
            statuses.add(400)
        if "{" in op.path:
            statuses.add(404)  # a path parameter of another shape, or of no object
        if op.body is not None:
            statuses.add(413)
        if posted:
            statuses.update(self.post_errors)
        responses: dict[str, Any] = {str(code): ok for code in (op.status, *op.also)}
        for code in sorted(statuses):
            responses[str(code)] = _error(ERROR_DESCRIPTIONS[code])
        responses["429"]["headers"] = RETRY_AFTER
        return responses


def _ref(model: type[BaseModel] | None) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"} if model else {}
