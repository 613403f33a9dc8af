"""Driving Debian's Chromium with Playwright: the launch flags, and screenshots kept as the test
run's artifacts (``artifacts/browser/<backend>/``) for a person to open and look at."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from conftest import BACKEND, REQUIRE_SERVICES

__all__ = ["ARTIFACTS", "CHROMIUM", "chromium", "needs_chromium", "screenshot"]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(os.environ.get("MATOMETE_ARTIFACTS", Path(__file__).resolve().parents[1] / "artifacts")) / "browser"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
needs_chromium = pytest.mark.skipif(
    not CHROMIUM.exists() and not REQUIRE_SERVICES, reason="Debian's chromium is not installed (.ci/run installs it)"
)


@asynccontextmanager
async def chromium(*, width: int = 1280, height: int = 900, locale: str = "ja-JP") -> AsyncIterator[Any]:
    """A fresh browser context (its own cookies) in Debian's Chromium."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            context = await browser.new_context(viewport={"width": width, "height": height}, locale=locale)
            yield context
        finally:
            await browser.close()


async def screenshot(page: Any, name: str) -> Path:
    """Save the whole page as ``artifacts/browser/<backend>/<name>.png`` and return the path."""
    path = ARTIFACTS / BACKEND / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(path), full_page=True)
    return path
