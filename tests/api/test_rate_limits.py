"""Rate limits on guessing and on writes (issue 13, finding 3): failed API keys and ops tokens per
address, posts of the confirmation form per address and per login id, ``/v1`` writes per merchant;
429 with ``Retry-After`` in product.md §9's error object, or the page naming the problem. Each
runs on the embedded backends (limits in memory) and on the services pass (limits in Redis)."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
from structlog.testing import capture_logs

from conftest import OPS_TOKEN, OpsClient, row_counts
from models.charges import Charge, ConfirmationAttempt
from settings import Settings, SettingsError, load_settings
from tests_support import RETURN_URL, Shop, open_shop

PROXY = (ipaddress.ip_network("127.0.0.1/32"),)  # the test client, trusted: X-Forwarded-For names the address
GUESSER = "198.51.100.66"
NEIGHBOUR = "198.51.100.67"
MakeClient = Callable[..., Awaitable[Any]]


@pytest.fixture
def app_client(aiohttp_client: Any, settings: Settings) -> MakeClient:
    """Makes clients of the whole application behind a trusted proxy (the test client), with some
    settings changed (tiny limits): ``await make(**changes)``."""
    from api.app import create_app

    async def make(**changes: Any) -> Any:
        return await aiohttp_client(create_app(settings.replace(trusted_proxies=PROXY, **changes)))

    return make


def _from(address: str, **headers: str) -> dict[str, str]:
    return {"X-Forwarded-For": address, **headers}


async def _refused_as_api(response: Any) -> int:
    """Assert ``response`` is the §9 error object of a 429; its Retry-After, in seconds."""
    assert response.status == 429
    body = await response.json()
    assert body["error"]["type"] == "rate_limit_error"
    assert body["error"]["code"] == "rate_limited"
    assert set(body["error"]) == {"type", "code", "message", "param"}
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 3600
    return retry_after


async def test_wrong_api_keys_from_one_address_are_stopped_and_a_right_key_elsewhere_is_not(
    app_client: MakeClient,
) -> None:
    """200 wrong API keys from one address: 401 up to the limit, then 429 with Retry-After, and the
    address is refused before any key lookup even with a right key; a right key from another
    address works throughout, and its own traffic never counts against it."""
    client = await app_client()
    shop = await open_shop(OpsClient(client))
    statuses = []
    for guess in range(200):
        response = await client.get(
            "/v1/charges", headers=_from(GUESSER, Authorization=f"Bearer sk_live_guess{guess:04d}")
        )
        statuses.append(response.status)
        if response.status == 429:
            await _refused_as_api(response)
        if guess % 50 == 0:  # the merchant's own traffic from its own address, many times over the limit
            for _ in range(25):
                assert (await client.get("/v1/charges", headers=_from(NEIGHBOUR, **shop.auth))).status == 200
    assert statuses == [401] * 20 + [429] * 180  # the default: 20 failures a minute per address
    assert (await client.get("/v1/charges", headers=_from(GUESSER, **shop.auth))).status == 429
    assert (await client.get("/v1/charges", headers=_from(NEIGHBOUR, **shop.auth))).status == 200


async def test_wrong_ops_tokens_from_one_address_are_stopped(app_client: MakeClient) -> None:
    """200 wrong ops tokens from one address: 429 after the limit; the right token from another
    address still works, from the guessing address it is refused until the window passes."""
    client = await app_client()
    statuses = []
    for guess in range(200):
        response = await client.get(
            "/ops/v1/invoices", headers=_from(GUESSER, Authorization=f"Bearer wrong-ops-token-{guess:04d}")
        )
        statuses.append(response.status)
    assert statuses == [401] * 20 + [429] * 180
    last = await client.get("/ops/v1/invoices", headers=_from(GUESSER, Authorization="Bearer x"))
    await _refused_as_api(last)
    right = {"Authorization": f"Bearer {OPS_TOKEN}"}
    assert (await client.get("/ops/v1/invoices", headers=_from(NEIGHBOUR, **right))).status == 200
    assert (await client.get("/ops/v1/invoices", headers=_from(GUESSER, **right))).status == 429


async def test_failed_credentials_expire_with_their_window(app_client: MakeClient) -> None:
    """With a one-second window, an address refused for guessing is let through again once it passes."""
    client = await app_client(rate_limit_ops_token_failures="3/second")
    wrong = _from(GUESSER, Authorization="Bearer wrong-ops-token-0000")
    assert [(await client.get("/ops/v1/invoices", headers=wrong)).status for _ in range(4)] == [401, 401, 401, 429]
    await asyncio.sleep(1.2)
    right = _from(GUESSER, Authorization=f"Bearer {OPS_TOKEN}")
    assert (await client.get("/ops/v1/invoices", headers=right)).status == 200


async def test_merchant_writes_are_limited_per_merchant(app_client: MakeClient) -> None:
    """Past the write limit a merchant's POST, PATCH and DELETE answer 429 in the error object and
    write nothing; its reads, and another merchant's writes, go on; the window passes."""
    client = await app_client(rate_limit_merchant_writes="3/second")
    ops = OpsClient(client)
    shop = await open_shop(ops)
    body = {"amount": 500, "description": "動画 1本", "return_url": RETURN_URL}
    for _ in range(3):
        assert (await client.post("/v1/charges", headers=shop.auth, json=body)).status == 201
    before = await row_counts()
    refused = await client.post("/v1/charges", headers=shop.auth, json=body)
    await _refused_as_api(refused)
    endpoint = {"url": "https://shop.example/hooks", "events": ["charge.succeeded"]}
    await _refused_as_api(await client.post("/v1/webhook_endpoints", headers=shop.auth, json=endpoint))
    assert await row_counts() == before
    assert (await client.get("/v1/charges", headers=shop.auth)).status == 200
    status, other = await ops.post("/ops/v1/merchants", json=_merchant_body("別の店"))
    assert status == 201
    other_auth = {"Authorization": f"Bearer {other['api_key']}"}
    assert (await client.post("/v1/charges", headers=other_auth, json=body)).status == 201
    await asyncio.sleep(1.2)
    assert (await client.post("/v1/charges", headers=shop.auth, json=body)).status == 201


def _merchant_body(name: str) -> dict[str, Any]:
    from tests_support import MERCHANT_BODY

    return {**MERCHANT_BODY, "name": name}


async def _new_charge(client: Any, shop: Shop) -> tuple[str, str]:
    response = await client.post(
        "/v1/charges", headers=shop.auth, json={"amount": 300, "description": "記事", "return_url": RETURN_URL}
    )
    assert response.status == 201
    created = await response.json()
    return created["id"], urlsplit(created["confirmation_url"]).path


async def _post_confirmation(client: Any, path: str, address: str, **form: str) -> Any:
    page = await client.get(path, headers=_from(address))
    assert page.status == 200
    csrf = (await page.text()).split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    data = {"action": "confirm", "login_id": "", "password": "", "csrf_token": csrf, **form}
    return await client.post(path, data=data, headers=_from(address), allow_redirects=False)


async def test_posts_to_one_confirmation_page_are_stopped_per_address_and_write_nothing(
    app_client: MakeClient, shop_client: tuple[Any, Shop]
) -> None:
    """150 posts to one confirmation page from one address: 429 (the page names the problem, with
    Retry-After) after the limit; the refused posts, each one that would have handed a sign-in
    to the auth worker, leave the purchase and its attempts as they were; another address may
    still answer."""
    client, shop = shop_client
    charge_id, path = await _new_charge(client, shop)
    # The default: 30 posts a minute per address; these name no password.
    statuses = [(await _post_confirmation(client, path, GUESSER, login_id=f"guess{n}")).status for n in range(30)]
    before = await row_counts()
    refused = []
    for _ in range(120):
        response = await _post_confirmation(client, path, GUESSER, login_id=shop.login_id, password=shop.password)
        refused.append(response.status)
    assert statuses == [400] * 30
    assert refused == [429] * 120
    assert int(response.headers["Retry-After"]) >= 1
    page = await response.text()
    assert 'data-problem="rate_limited"' in page
    assert "試行回数が多すぎます" in page
    assert await row_counts() == before
    charge = await Charge.get(id=charge_id)
    assert charge.status == "requires_confirmation"
    assert await ConfirmationAttempt.filter(charge_id=charge_id).count() == 0
    answered = await _post_confirmation(client, path, NEIGHBOUR, login_id=shop.login_id, password=shop.password)
    assert answered.status == 303
    assert await ConfirmationAttempt.filter(charge_id=charge_id).count() == 1


async def test_one_login_id_is_limited_across_addresses_on_the_confirmation_form(
    shop_client: tuple[Any, Shop],
) -> None:
    """The same ID tried on confirmation forms from eleven addresses: the eleventh is refused."""
    client, shop = shop_client
    statuses = []
    for attempt in range(11):
        _, path = await _new_charge(client, shop)
        response = await _post_confirmation(client, path, f"203.0.113.{attempt + 1}", login_id=shop.login_id.upper())
        statuses.append(response.status)
    assert statuses == [400] * 10 + [429]  # the default: 10 a minute per login id (any case)


@pytest.fixture
async def shop_client(app_client: MakeClient) -> tuple[Any, Shop]:
    """A client behind the trusted proxy, and a provisioned shop."""
    client = await app_client()
    return client, await open_shop(OpsClient(client))


async def test_openapi_documents_429_with_retry_after_on_every_operation(app_client: MakeClient) -> None:
    """Both OpenAPI documents list 429 (the error object, a Retry-After header) on every operation."""
    client = await app_client()
    for prefix in ("/v1", "/ops/v1"):
        document = await (await client.get(f"{prefix}/openapi.json")).json()
        operations = [op for methods in document["paths"].values() for op in methods.values()]
        assert operations
        for operation in operations:
            answer = operation["responses"]["429"]
            assert answer["headers"]["Retry-After"]["schema"]["type"] == "integer"
            assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


async def test_an_unreachable_store_fails_open_and_says_so(app_client: MakeClient) -> None:
    """With Redis not answering, the APIs keep answering (no limit, no error) and one warning is
    logged naming the store's failure, not the key."""
    client = await app_client(redis_url="redis://127.0.0.1:1/0", rate_limit_ops_token_failures="2/minute")
    wrong = _from(GUESSER, Authorization="Bearer wrong-ops-token-0000")
    right = _from(GUESSER, Authorization=f"Bearer {OPS_TOKEN}")
    with capture_logs() as logs:
        assert [(await client.get("/ops/v1/invoices", headers=wrong)).status for _ in range(5)] == [401] * 5
        assert (await client.get("/ops/v1/invoices", headers=right)).status == 200
    warnings = [entry for entry in logs if entry["event"] == "rate_limit_store_unreachable"]
    assert len(warnings) == 1  # then the store is left alone for a few seconds
    assert warnings[0]["log_level"] == "warning"
    assert "wrong-ops-token" not in repr(logs)


async def test_a_refusal_is_logged_with_the_limit_and_a_hash_of_the_key(app_client: MakeClient) -> None:
    """``rate_limited`` is logged at info with the limit's name and a short hash, never the address
    or the key that was tried."""
    client = await app_client(rate_limit_api_key_failures="1/minute")
    with capture_logs() as logs:
        for _ in range(2):
            await client.get("/v1/charges", headers=_from(GUESSER, Authorization="Bearer sk_live_secretguess"))
    (refusal,) = [entry for entry in logs if entry["event"] == "rate_limited"]
    assert refusal["limit"] == "api_key_failures"
    assert refusal["log_level"] == "info"
    assert len(refusal["key"]) == 12
    assert GUESSER not in repr(logs)
    assert "sk_live_secretguess" not in repr(logs)


def test_rate_limit_settings_are_checked_at_start_up() -> None:
    """A limit the ``limits`` notation cannot read, or a Redis URL of another scheme, stops start-up
    naming the variable; good values are kept."""
    with pytest.raises(SettingsError, match="MATOMETE_RATE_LIMIT_SIGN_IN_ADDRESS"):
        load_settings({"MATOMETE_RATE_LIMIT_SIGN_IN_ADDRESS": "lots"})
    with pytest.raises(SettingsError, match="MATOMETE_REDIS_URL"):
        load_settings({"MATOMETE_REDIS_URL": "http://127.0.0.1:6379"})
    redis, writes = "redis://127.0.0.1:6379/2", "50/second;1000/minute"
    settings = load_settings({"MATOMETE_REDIS_URL": redis, "MATOMETE_RATE_LIMIT_MERCHANT_WRITES": writes})
    assert (settings.redis_url, settings.rate_limit_merchant_writes) == (redis, writes)
    assert load_settings({}).redis_url == ""


async def test_a_redis_that_hangs_costs_one_short_timeout_then_nothing(app_client: MakeClient) -> None:
    """A Redis that accepts connections but never answers delays one request by one 0.5-second
    timeout (no retries); the next requests do not wait for it at all."""

    async def silent(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(5)
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        client = await app_client(redis_url=f"redis://127.0.0.1:{port}/0")
        right = _from(GUESSER, Authorization=f"Bearer {OPS_TOKEN}")
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert (await client.get("/ops/v1/invoices", headers=right)).status == 200
        first = loop.time() - started
        started = loop.time()
        assert (await client.get("/ops/v1/invoices", headers=right)).status == 200
        second = loop.time() - started
    finally:
        server.close()
    assert 0.4 < first < 1.5
    assert second < 0.4
