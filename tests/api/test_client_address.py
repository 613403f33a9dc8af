"""The client address a confirmation records (product.md §3): the socket peer, and
X-Forwarded-For only when it comes from a proxy listed in MATOMETE_TRUSTED_PROXIES."""

from __future__ import annotations

import ipaddress

from aiohttp.test_utils import make_mocked_request

from api.confirm import client_address
from settings import Settings


def _request(peer: str, forwarded: str | None = None) -> object:
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    request = make_mocked_request("POST", "/confirm/x", headers=headers)
    request._transport_peername = (peer, 40000)  # the socket peer, as the server saw it
    return request


def _settings(*proxies: str) -> Settings:
    return Settings(trusted_proxies=tuple(ipaddress.ip_network(p) for p in proxies))


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    """A forged X-Forwarded-For from an untrusted peer is ignored."""
    assert client_address(_request("203.0.113.9", "198.51.100.1"), _settings()) == "203.0.113.9"  # type: ignore[arg-type]


def test_a_trusted_proxy_passes_the_client_on() -> None:
    """Behind the carrier's load balancer, the address it forwards is the client's."""
    request = _request("10.0.0.5", "198.51.100.1")
    assert client_address(request, _settings("10.0.0.0/24")) == "198.51.100.1"  # type: ignore[arg-type]


def test_only_the_nearest_untrusted_hop_counts() -> None:
    """A client cannot smuggle an address in front of the real one: the rightmost untrusted hop wins."""
    request = _request("10.0.0.5", "192.0.2.66, 198.51.100.1")
    assert client_address(request, _settings("10.0.0.0/24")) == "198.51.100.1"  # type: ignore[arg-type]
