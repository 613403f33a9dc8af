"""Security headers on every response (product.md §10; the reliability issue's framing probe).

Pages may not be framed (a framed confirmation page was clicked through once), run no script
at all (every page works without JavaScript, so the policy forbids it outright), load styles
and images only from here, and pages that show who is signed in or carry a bearer token in
their URL are never stored by a browser or a proxy. ``Server`` no longer names versions.
"""

from __future__ import annotations

from aiohttp import web

__all__ = ["CONTENT_SECURITY_POLICY", "NO_STORE_PREFIXES", "add_security_headers"]

CONTENT_SECURITY_POLICY = "; ".join(  # noqa: FLY002 - one directive per line reads better
    (
        "default-src 'none'",
        "script-src 'none'",
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
        # form-action is left open: the confirmation form's answer redirects to the merchant.
    )
)
# Signed-in pages, the confirmation pages whose URL is a bearer secret, and the OAuth sign-in.
NO_STORE_PREFIXES = ("/merchant", "/my", "/ops", "/confirm", "/v1", "/oauth/authorize")


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """``on_response_prepare``: the headers every response carries, whatever made it."""
    headers = response.headers
    headers["Server"] = "Matomete"
    headers["X-Content-Type-Options"] = "nosniff"
    headers["X-Frame-Options"] = "DENY"
    headers["Referrer-Policy"] = "same-origin"
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    if request.path.startswith(NO_STORE_PREFIXES) and "Cache-Control" not in headers:
        headers["Cache-Control"] = "no-store"
