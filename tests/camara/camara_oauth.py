"""The one adapter between the conformance harness and the platform's authorization server and
rate limits: if a name changes there, only this module changes.

Every coroutine here runs on the platform's own loop (the harness sends it there), where the
ORM is open.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any

from models.audit_log import Actor

ACTOR = Actor("camara-bdd")
LIFETIME = timedelta(minutes=10)
EXPIRED = timedelta(minutes=-5)
# A scope set without any CAMARA operation's scope ("an access token without the required scope").
NO_SCOPE = ("openid",)
# What each rate limit is set to for the run, where the platform has it: low enough that the
# 429 cases reach it in a few dozen requests, high enough that no other case meets it (each case
# has its own OAuth client, so the counts never mix).
RATE_LIMITS = {"rate_limit_camara": "20/second"}
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
    client, _secret = await _oauth().register_client(
        merchant_id=merchant_id,
        name=name,
        redirect_uris=["https://aggregator.camara.test/callback"],
        scopes=list(camara_scopes()),
        actor=ACTOR,
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
    authorization_details: Sequence[dict[str, Any]] = (),
    lifetime: timedelta = LIFETIME,
) -> str:
    """An access token of ``client``: three-legged for ``login_id``'s account, two-legged without."""
    account = await account_by_login(login_id) if login_id else None
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


def payment_consent(body: Any) -> list[dict[str, Any]]:
    """RFC 9396 ``authorization_details`` for the createPayment ``body`` about to be sent
    (product.md §13): amount, currency and description of its chargingInformation."""
    try:
        info = body["amountTransaction"]["paymentAmount"]["chargingInformation"]
    except (KeyError, TypeError):
        return []
    detail = {"type": "carrier_billing_payment"}
    detail.update({key: info[key] for key in ("amount", "currency", "description") if key in info})
    return [detail]


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
