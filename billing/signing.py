"""The signature on the redirect back to a merchant's ``return_url`` (product.md §11).

``signature`` is the hex HMAC-SHA256, keyed with the merchant's return-signing secret, of the
other query parameters sorted by name and joined as ``name=value`` with ``&``. A merchant
recomputes it to know the status came from us and was not edited on the way.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["return_redirect", "sign_return", "verify_return"]


def sign_return(params: Mapping[str, str], secret: str) -> str:
    """The signature of ``params`` (a ``signature`` key among them is ignored)."""
    message = "&".join(f"{name}={params[name]}" for name in sorted(params) if name != "signature")
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


def verify_return(params: Mapping[str, str], secret: str) -> bool:
    """True when ``params['signature']`` is the signature of the other parameters."""
    return hmac.compare_digest(params.get("signature", ""), sign_return(params, secret))


def return_redirect(return_url: str, params: Mapping[str, str], secret: str) -> str:
    """``return_url`` with ``params`` and their signature appended to its query."""
    parts = urlsplit(return_url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params and k != "signature"]
    signed = dict(params)
    signed["signature"] = sign_return(params, secret)
    return urlunsplit(parts._replace(query=urlencode([*query, *sorted(signed.items())])))
