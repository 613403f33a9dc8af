"""One error tree: ``MatometeError`` and one class per broken rule, each with its API code.

The API renders any of them as product.md §9's error object; actors list the permanent ones
in ``throws=`` so they are not retried.
"""

from __future__ import annotations

__all__ = [
    "AuthenticationFailed",
    "Conflict",
    "InvalidRequest",
    "MatometeError",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "ServiceUnavailable",
    "Unprocessable",
]


class MatometeError(Exception):
    """A request or a message broke a rule; ``status``/``type``/``code`` say which."""

    status = 400
    type = "invalid_request_error"
    code = "invalid_request"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code

    def as_dict(self) -> dict[str, dict[str, str | None]]:
        """The error object of product.md §9."""
        return {"error": {"type": self.type, "code": self.code, "message": self.message, "param": self.param}}


class InvalidRequest(MatometeError):
    """Malformed JSON, an unknown field, a wrong type, a value out of range."""

    code = "parameter_invalid"


class AuthenticationFailed(MatometeError):
    """No credentials, or wrong or revoked ones."""

    status = 401
    type = "authentication_error"
    code = "unauthenticated"


class PermissionDenied(MatometeError):
    """Known caller, not allowed to do this."""

    status = 403
    type = "permission_error"
    code = "forbidden"


class NotFound(MatometeError):
    """No such object, or not this caller's (another merchant's id answers 404 too)."""

    status = 404
    type = "invalid_request_error"
    code = "resource_missing"


class Conflict(MatometeError):
    """The object exists already, is in the wrong state, or the request is in flight."""

    status = 409
    type = "invalid_request_error"
    code = "conflict"


class Unprocessable(MatometeError):
    """Well-formed, but the rules of the product refuse it."""

    status = 422
    type = "invalid_request_error"
    code = "unprocessable"


class RateLimited(MatometeError):
    """Too many attempts or requests from one address, for one login id or one merchant; the
    answer carries ``Retry-After`` (``retry_after`` seconds)."""

    status = 429
    type = "rate_limit_error"
    code = "rate_limited"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(MatometeError):
    """A dependency (database, broker) cannot be reached; try again."""

    status = 503
    type = "api_error"
    code = "service_unavailable"
