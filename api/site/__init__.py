"""The sites' shared foundation (product.md §10): server-rendered pages in Japanese and
English, encrypted cookie sessions backed by server-side rows, CSRF on every form, security
headers, one layout and stylesheet. ``/merchant``, ``/my`` and ``/ops`` each register a
``Site``; ``setup_sites`` wires them into the web app.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from api.site.formatting import FILTERS
from api.site.headers import add_security_headers
from api.site.i18n import install_gettext
from api.site.sessions import Site, site_middleware

__all__ = ["STATIC", "TEMPLATES", "setup_sites"]

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
STATIC = Path(__file__).resolve().parent.parent / "static"


def setup_sites(app: web.Application, sites: Sequence[Site]) -> None:
    """Templates with translations and filters, the stylesheet, the headers and each site's guard.
    Call after ``aiohttp_session.setup`` so the guard runs inside the session middleware."""
    env = aiohttp_jinja2.setup(
        app,
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        filters=FILTERS,
        undefined=jinja2.StrictUndefined,
    )
    install_gettext(env)
    app.router.add_static("/static", STATIC, name="static", append_version=False)
    app.on_response_prepare.append(add_security_headers)
    app.middlewares.append(site_middleware(sites))
