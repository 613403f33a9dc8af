"""structlog set-up: JSON (or console) lines on stdout, context bound per request and message."""

from __future__ import annotations

import logging
import sys
from typing import TextIO

import structlog

__all__ = ["configure_logging", "redact"]

SECRET_KEYS = frozenset(
    {
        "password",
        "api_key",
        "authorization",
        "secret",
        "token",
        "ops_token",
        "initial_password",
        "return_signing_secret",
        "secret_key",
        "csrf_token",
        # the OAuth server's (none is logged; a slip would be redacted)
        "client_secret",
        "access_token",
        "id_token",
        "code_verifier",
    }
)


def redact(_logger: object, _method: str, event_dict: structlog.typing.EventDict) -> structlog.typing.EventDict:
    """Never let a password, key or token reach a log line, whoever passed it."""
    for key in list(event_dict):
        if key.lower() in SECRET_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


def configure_logging(*, log_format: str = "json", log_level: str = "info", stream: TextIO | None = None) -> None:
    """Route structlog and the standard library's loggers to one stream (stdout unless given)
    in one format."""
    stream = stream or sys.stdout
    level = getattr(logging, log_level.upper())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if log_format == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    structlog.configure(
        processors=[*shared, structlog.processors.format_exc_info, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # aiohttp's access log repeats what our request middleware already logs, once per request.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # pika narrates every frame at INFO.
    logging.getLogger("pika").setLevel(logging.WARNING)
