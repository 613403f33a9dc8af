"""The one adapter between the conformance harness and the platform's authorization server and
rate limits: if a name changes there, only this module changes.

Every coroutine here runs on the platform's own loop (the harness sends it there), where the
ORM is open.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

LIFETIME = timedelta(minutes=10)
EXPIRED = timedelta(minutes=-5)
# What the rate limits are for the run, where the platform has them. Requests, per client: low
# enough that a 429 case reaches it in some sixty requests, high enough that no other case meets
# it (each case has its own OAuth client, so counts never mix), and per minute, not per second:
# a 429 case must reach the limit however slowly the machine answers (at 40 a second, a loaded
# CI machine answered fewer than 40 a second and two 429 cases never met it). Failed tokens, per
# address: every case comes from 127.0.0.1, and some forty of them send bad tokens on purpose.
RATE_LIMITS = {"rate_limit_camara_requests": "60/minute", "rate_limit_camara_token_failures": "100000/minute"}
RATE_LIMIT_ATTEMPTS = 200


def _oauth() -> Any:
    """The platform's OAuth operations (``models.operations.oauth``)."""
    from models.operations import oauth

    return oauth


def camara_scopes() -> tuple[str, ...]:
    """Every scope the two YAMLs name (the platform's own list when it has one)."""
    return tuple(_oauth().CAMARA_SCOPES)


async def register_client(merchant_id: str, name: str) -> Any:
    """A registered aggregator client of ``merchant_id`` with every CAMARA scope; the client."""
    from models.audit_log import Actor

    client, _secret = await _oauth().register_client(
        merchant_id=merchant_id,
        name=name,
        redirect_uris=["https://aggregator.camara.test/callback"],
        scopes=list(camara_scopes()),
        actor=Actor("camara-bdd"),
    )
    return client


async def account_by_login(login_id: str) -> Any:
    """The SubscriberAccount of ``login_id``."""
    from models.accounts import SubscriberAccount

    return await SubscriberAccount.get(login_id=login_id)


async def mint(  # noqa: PLR0913 - the token's parts, keyword-only
    client: Any,
    *,
    issuer: str,
    login_id: str | None,
    scopes: Sequence[str] | None = None,
    authorization_details: Sequence[dict[str, Any]] | str = (),
    body: Any = None,
    lifetime: timedelta = LIFETIME,
) -> str:
    """An access token of ``client``: three-legged for ``login_id``'s account, two-legged without;
    ``authorization_details="consent"`` consents to the createPayment ``body``."""
    account = await account_by_login(login_id) if login_id else None
    if authorization_details == "consent":
        authorization_details = await payment_consent(body)
    return str(
        await _oauth().issue_access_token(
            client,
            tuple(camara_scopes() if scopes is None else scopes),
            issuer=issuer,
            account=account,
            authorization_details=tuple(authorization_details),
            lifetime=lifetime,
        )
    )


async def payment_consent(body: Any) -> list[dict[str, Any]]:
    """RFC 9396 ``authorization_details`` for the createPayment ``body`` about to be sent
    (product.md §13): its chargingInformation's description and currency, and as the amount the
    tax-included yen the subscriber pays (a net amount, ``isTaxIncluded`` false or absent, plus
    its tax at today's rate, rounded down, as the platform prices it)."""
    from billing.periods import JST
    from billing.tax import price_of_net, rate_on
    from models.clock import clock

    try:
        info = body["amountTransaction"]["paymentAmount"]["chargingInformation"]
    except (KeyError, TypeError):
        return []
    detail: dict[str, Any] = {"type": "carrier_billing_payment"}
    detail.update({key: info[key] for key in ("amount", "currency", "description") if key in info})
    amount = info.get("amount")
    if isinstance(amount, int) and not isinstance(amount, bool) and amount >= 0 and not info.get("isTaxIncluded"):
        detail["amount"] = price_of_net(amount, rate_on((await clock.now()).astimezone(JST).date()))
    return [detail]


async def tax_included(net: int) -> int:
    """The tax-included yen of a ``net`` amount today, as the platform prices it."""
    from billing.periods import JST
    from billing.tax import price_of_net, rate_on
    from models.clock import clock

    return price_of_net(net, rate_on((await clock.now()).astimezone(JST).date()))


def settings_changes(settings_fields: set[str]) -> dict[str, str]:
    """The rate limits of :data:`RATE_LIMITS` the platform's Settings has."""
    return {name: value for name, value in RATE_LIMITS.items() if name in settings_fields}


def reach_rate_limit(send: Callable[[], int]) -> int:
    """Send (the case's own request) until one answers 429, at most :data:`RATE_LIMIT_ATTEMPTS`
    times; the number sent."""
    for sent in range(1, RATE_LIMIT_ATTEMPTS + 1):
        if send() == 429:
            return sent
    return RATE_LIMIT_ATTEMPTS
