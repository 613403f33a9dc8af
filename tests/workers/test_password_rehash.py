"""Passwords hashed with older argon2id parameters: they still verify, and the next successful
sign-in (a purchase's confirmation, the my page, the merchant site) stores a hash under today's
parameters in the same transaction; a failed one leaves the old hash alone."""

from __future__ import annotations

from typing import Any

import pytest
from argon2 import PasswordHasher
from sites_support import merchant_user

from conftest import OpsClient
from models.accounts import SubscriberAccount
from models.charges import Charge
from models.merchants import MerchantUser
from models.operations.site_users import sign_in_merchant_user
from models.operations.subscribers import sign_in_subscriber
from models.passwords import MEMORY_COST_KIB, PARALLELISM, TIME_COST
from settings import Settings
from tests_support import Shop, answer, open_shop, settle

pytestmark = pytest.mark.usefixtures("worker")
RETURN_URL = "https://shop.example/return"
# Stronger than today's (and than the library's default): what an earlier release might have used.
OLD = PasswordHasher(time_cost=2, memory_cost=65536, parallelism=2)
CURRENT = f"$argon2id$v=19$m={MEMORY_COST_KIB},t={TIME_COST},p={PARALLELISM}$"


@pytest.fixture
async def shop(ops: OpsClient) -> Shop:
    """A line with a session for 127.0.0.1, an ID whose password is hashed with the old parameters."""
    opened = await open_shop(ops)
    await SubscriberAccount.filter(login_id=opened.login_id).update(password_hash=OLD.hash(opened.password))
    return opened


async def _confirm(client: Any, shop: Shop, settings: Settings, password: str) -> Charge:
    response = await client.post(
        "/v1/charges",
        json={"amount": 500, "description": "item", "return_url": RETURN_URL},
        headers=shop.auth,
    )
    charge = await response.json()
    await answer(client, charge["confirmation_url"], login_id=shop.login_id, password=password)

    async def decided() -> bool:
        return (await Charge.get(id=charge["id"])).status != "processing"

    await settle(settings, decided)
    return await Charge.get(id=charge["id"])


async def test_a_confirmation_rehashes_an_old_hash_on_success_only(client: Any, shop: Shop, settings: Settings) -> None:
    """A wrong password leaves the old hash; the right one succeeds and stores today's, which verifies."""
    old_hash = (await SubscriberAccount.get(login_id=shop.login_id)).password_hash
    failed = await _confirm(client, shop, settings, "wrong-password-1")
    assert failed.failure_code == "invalid_credentials"
    assert (await SubscriberAccount.get(login_id=shop.login_id)).password_hash == old_hash

    succeeded = await _confirm(client, shop, settings, shop.password)
    assert succeeded.status == "succeeded"
    account = await SubscriberAccount.get(login_id=shop.login_id)
    assert account.password_hash.startswith(CURRENT)
    assert account.password_hash != old_hash
    assert PasswordHasher().verify(account.password_hash, shop.password)
    again = await _confirm(client, shop, settings, shop.password)  # and the new hash keeps working
    assert again.status == "succeeded"


async def test_the_my_page_sign_in_rehashes_an_old_hash_on_success_only(shop: Shop) -> None:
    """The my page: refused with a wrong password (old hash kept), signed in with the right one (rehashed)."""
    old_hash = (await SubscriberAccount.get(login_id=shop.login_id)).password_hash
    refused = await sign_in_subscriber(shop.login_id, "wrong-password-1", client_address="127.0.0.1", request_id=None)
    assert refused.failure_code == "invalid_credentials"
    assert (await SubscriberAccount.get(login_id=shop.login_id)).password_hash == old_hash

    signed_in = await sign_in_subscriber(shop.login_id, shop.password, client_address="127.0.0.1", request_id=None)
    assert signed_in.failure_code is None
    stored = (await SubscriberAccount.get(login_id=shop.login_id)).password_hash
    assert stored.startswith(CURRENT)
    assert PasswordHasher().verify(stored, shop.password)


async def test_a_merchant_sign_in_rehashes_an_old_hash_on_success_only(ops: OpsClient, shop: Shop) -> None:
    """The merchant site (and so the ops console, same code): old hash kept on failure, replaced on success."""
    user = await merchant_user(ops, shop.merchant_id, role="admin")
    old_hash = OLD.hash(user["initial_password"])
    await MerchantUser.filter(id=user["id"]).update(password_hash=old_hash)

    outcome = await sign_in_merchant_user(user["email"], "wrong-password-1")
    assert outcome.user is None
    assert (await MerchantUser.get(id=user["id"])).password_hash == old_hash

    outcome = await sign_in_merchant_user(user["email"], user["initial_password"])
    assert outcome.user is not None
    stored = (await MerchantUser.get(id=user["id"])).password_hash
    assert stored.startswith(CURRENT)
    assert PasswordHasher().verify(stored, user["initial_password"])
