"""Typed keys for what the application keeps: settings and the broker probe."""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from settings import Settings

__all__ = ["BROKER_PROBE", "REQUEST_ID", "SETTINGS"]

SETTINGS = web.AppKey("settings", Settings)
BROKER_PROBE = web.AppKey[Callable[[], bool]]("broker_probe")
REQUEST_ID = web.RequestKey("request_id", str)
