"""What the CAMARA tests share: an aggregator client registered for a shop's merchant, its
tokens, a payment body, and a two-step payment made ``reserved`` by the subscriber."""

from __future__ import annotations

import base64
import itertools
from datetime import timedelta
from typing import Any

from conftest import OpsClient
from models.accounts import SubscriberAccount
from models.charges import Charge
from models.oauth import OAuthClient
from models.operations import oauth
from settings import Settings
from tests_support import Shop, answer, open_shop, settle

__all__ = [
    "BASE",
    "PHONE",
    "REFUND_SCOPES",
    "SCOPES",
    "Aggregator",
    "fresh_reference",
    "payment_body",
    "register_aggregator",
    "reserved",
]

BASE = "/carrier-billing/v0.5"
SCOPES = [
    "carrier-billing:payments:create",
    "carrier-billing:payments:read",
    "carrier-billing:payments:write",
]
REFUND_SCOPES = ["carrier-billing-refund:refunds:create", "carrier-billing-refund:refunds:read"]
PHONE = "+81312345678"
_references = itertools.count(1)


def fresh_reference(prefix: str = "ref") -> str:
    """A referenceCode no earlier request of this run used."""
    return f"{prefix}-{next(_references)}"


def payment_body(amount: float = 330, **transaction: Any) -> dict[str, Any]:
    """A preparePayment/createPayment body for ``amount`` yen, tax included, with a fresh referenceCode."""
    return {
        "amountTransaction": {
            "paymentAmount": {
                "chargingInformation": {
                    "amount": amount,
                    "currency": "JPY",
                    "description": "動画1本",
                    "isTaxIncluded": True,
                }
            },
            "referenceCode": fresh_reference(),
            **transaction,
        }
    }


class Aggregator:
    """A registered client of ``shop``'s merchant and how it gets tokens."""

    def __init__(self, client: Any, settings: Settings, shop: Shop, registered: dict[str, Any]) -> None:
        self.client, self.settings, self.shop = client, settings, shop
        self.client_id, self.secret = registered["client_id"], registered["client_secret"]

    async def two_legged(self, scope: str = " ".join(SCOPES)) -> dict[str, str]:
        """Headers with a client-credentials token (no subscriber)."""
        basic = base64.b64encode(f"{self.client_id}:{self.secret}".encode()).decode()
        response = await self.client.post(
            "/oauth/token",
            data={"grant_type": "client_credentials", "scope": scope},
            headers={"Authorization": f"Basic {basic}"},
        )
        assert response.status == 200, await response.text()
        return {"Authorization": f"Bearer {(await response.json())['access_token']}", "x-correlator": "c-1"}

    async def three_legged(self, *, consent: int | None = None, lifetime: timedelta | None = None) -> dict[str, str]:
        """Headers with a token of the shop's subscriber (consenting to ``consent`` yen when given)."""
        client = await OAuthClient.get(id=self.client_id)
        account = await SubscriberAccount.get(login_id=self.shop.login_id)
        details = [{"type": "carrier_billing_payment", "amount": consent, "currency": "JPY", "description": "動画"}]
        token = await oauth.issue_access_token(
            client,
            SCOPES,
            issuer=self.settings.base_url,
            account=account,
            authorization_details=details if consent is not None else (),
            **({"lifetime": lifetime} if lifetime is not None else {}),
        )
        return {"Authorization": f"Bearer {token}"}


async def register_aggregator(client: Any, ops: OpsClient, settings: Settings) -> Aggregator:
    """A shop whose line has a phone number, and an aggregator client of its merchant."""
    shop = await open_shop(ops)
    status, _ = await ops.patch(f"/ops/v1/lines/{shop.line_id}", json={"phone_number": PHONE})
    assert status == 200
    body = {"merchant_id": shop.merchant_id, "name": "集約決済", "redirect_uris": ["https://agg.example/cb"]}
    status, registered = await ops.post("/ops/v1/oauth_clients", json={**body, "scopes": [*SCOPES, *REFUND_SCOPES]})
    assert status == 201, registered
    return Aggregator(client, settings, shop, registered)


async def reserved(aggregator: Aggregator, headers: dict[str, str], **transaction: Any) -> dict[str, Any]:
    """Prepare a payment, confirm it on its validation page as the subscriber, wait for the decision."""
    client, shop = aggregator.client, aggregator.shop
    response = await client.post(f"{BASE}/payments/prepare", json=payment_body(**transaction), headers=headers)
    assert response.status == 201, await response.text()
    prepared = await response.json()
    assert prepared["paymentStatus"] == "pending_validation"
    assert prepared["validationInfo"]["action"] == "open"
    confirmed = await answer(
        client, prepared["validationInfo"]["validationURL"], login_id=shop.login_id, password=shop.password
    )
    assert confirmed.status == 303
    payment_id = prepared["paymentId"]

    async def decided() -> bool:
        return (await Charge.get(id=payment_id)).status != "processing"

    await settle(aggregator.settings, decided)
    return dict(prepared)
