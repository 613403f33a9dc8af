"""One Matomete platform for the whole conformance run: the web app on a real TCP port and the
worker (every queue but ``webhooks``: no notification leaves the machine) with the outbox relay,
all on one asyncio loop in a background thread. Steps are synchronous: they talk HTTP with
``requests`` and send coroutines (token minting) to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import re
import socket
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from camara_oauth import register_client, settings_changes

from settings import Settings

T = TypeVar("T")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
# Each line holds an address of its own in the documentation prefix (never a destination: the
# subscriber's browser speaks to the platform on 127.0.0.1 and says where it is with
# X-Forwarded-For, 127.0.0.1 being a trusted proxy), so that many lines never share an address.
SUBSCRIBER_PREFIX = "2001:db8:ca:{:x}::"
MERCHANT_BODY: dict[str, Any] = {
    "name": "アグリゲーター株式会社",
    "name_kana": "アグリゲーター(カ",
    "bank_account": {
        "bank_code": "0001",
        "branch_code": "001",
        "account_type": "ordinary",
        "account_number": "7654321",
        "holder_kana": "アグリゲーター(カ",
    },
}


async def _password_hash(login_id: str) -> str:
    from models.accounts import SubscriberAccount

    return str((await SubscriberAccount.get(login_id=login_id)).password_hash)


async def _add_account(line_id: str, login_id: str, password_hash: str, monthly_limit: int | None) -> None:
    from models.accounts import AccountStatus, SubscriberAccount
    from models.clock import clock
    from models.operations.lines import DEFAULT_ACCOUNT_LIMIT

    await SubscriberAccount.create(
        login_id=login_id,
        line_id=line_id,
        slot=1,
        password_hash=password_hash,
        monthly_limit=DEFAULT_ACCOUNT_LIMIT if monthly_limit is None else monthly_limit,
        status=AccountStatus.ACTIVE,
        created_at=await clock.now(),
    )


def _no_test_domains(getaddrinfo: Any) -> Any:
    """``getaddrinfo`` that never asks a resolver about a ``.test`` name (RFC 6761: reserved for
    testing, never resolves): the sinks the cases give (``camara_spec.SINK``) are checked by the
    platform without a DNS query leaving the machine."""

    async def resolve(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.rstrip(".").endswith(".test"):
            raise socket.gaierror(socket.EAI_NONAME, f"{host}: a .test name (RFC 6761)")
        return await getaddrinfo(host, *args, **kwargs)

    return resolve


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Subscriber:
    """A line of its own with one subscriber ID and a phone number."""

    line_id: str
    login_id: str
    password: str
    phone_number: str
    address: str


class Platform:
    """The running platform and the ways a case talks to it."""

    def __init__(self, settings: Settings, ops_token: str) -> None:
        self.settings = settings.replace(
            port=free_port(),
            trusted_proxies=(ipaddress.ip_network("127.0.0.1/32"),),
            **settings_changes({field.name for field in fields(settings)}),
        )
        self.base_url = self.settings.base_url
        self.ops_headers = {"Authorization": f"Bearer {ops_token}"}
        self.http = requests.Session()
        self.loop = asyncio.new_event_loop()
        self.loop.getaddrinfo = _no_test_domains(self.loop.getaddrinfo)  # type: ignore[method-assign]
        self.thread = threading.Thread(target=self.loop.run_forever, name="camara-platform", daemon=True)
        self._numbers = itertools.count(1)
        self._stop = asyncio.Event()
        self._runner: Any = None
        self._worker: Any = None
        self._relay: Any = None
        self.merchant_id = ""
        self.merchant_max = 0
        self._password: tuple[str, str] | None = None  # the subscribers' password and its hash

    # --- life

    def start(self) -> None:
        """Start the loop, the app, the worker and the relay; provision the merchant."""
        self.thread.start()
        self.run(self._start(), timeout=120)
        status, merchant = self.ops("POST", "/ops/v1/merchants", MERCHANT_BODY)
        assert status == 201, merchant
        self.merchant_id = merchant["id"]
        self.merchant_max = int(merchant.get("max_charge_amount", 50_000))

    async def _start(self) -> None:
        from aiohttp import web

        import queues
        import workers  # noqa: F401 - declares the actors
        from api.app import create_app

        self._runner = web.AppRunner(create_app(self.settings), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.settings.port).start()
        queues.declare_queues()
        queues.broker.flush_all()
        wanted = [name for name in queues.QUEUES if name != "webhooks"]
        self._worker = queues.start_worker(asyncio.get_running_loop(), settings=self.settings, queues=wanted, threads=4)
        publisher = queues.publisher_for(self.settings)
        self._relay = asyncio.create_task(queues.relay_forever(publisher, stop=self._stop, idle_seconds=0.02))

    def stop(self) -> None:
        """Stop everything started, in reverse."""
        with contextlib.suppress(Exception):
            self.run(self._shutdown(), timeout=60)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.http.close()

    async def _shutdown(self) -> None:
        self._stop.set()
        if self._relay is not None:
            await self._relay
        if self._worker is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._worker.stop)
        # Nothing the cases queued outlives them: above all the sink notifications of the
        # ``webhooks`` queue, which no worker here delivers and no later test must.
        import queues

        await asyncio.get_running_loop().run_in_executor(None, queues.broker.flush_all)
        if self._runner is not None:
            await self._runner.cleanup()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        """Run ``coroutine`` on the platform's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    # --- the test clock

    def now(self) -> datetime:
        """The platform's time (the test clock)."""
        from models.clock import clock

        return self.run(clock.now())

    def move_clock(self, delta: timedelta) -> None:
        """Move the platform's clock forward by ``delta`` (it never goes back; the database is
        emptied at the start of every run, and with it the clock's offset)."""
        from models.clock import clock

        async def move() -> None:
            await clock.move_to(await clock.now() + delta)

        self.run(move())

    # --- HTTP

    def ops(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """An ops API call; ``(status, json)``."""
        response = self.http.request(method, self.base_url + path, json=body, headers=self.ops_headers, timeout=30)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, response.text

    def send(
        self, method: str, path: str, *, headers: dict[str, str], query: dict[str, str], data: bytes | None
    ) -> requests.Response:
        """One request as a CAMARA client sends it."""
        return self.http.request(
            method, self.base_url + path, headers=headers, params=query, data=data, timeout=30, allow_redirects=False
        )

    # --- provisioning

    def new_merchant(self) -> str:
        """Another merchant (for cases whose counts must not mix with the others')."""
        status, merchant = self.ops("POST", "/ops/v1/merchants", MERCHANT_BODY)
        assert status == 201, merchant
        return str(merchant["id"])

    def new_client(self, merchant_id: str | None = None) -> Any:
        """A fresh OAuth client of the merchant (every case has its own)."""
        number = next(self._numbers)
        return self.run(register_client(merchant_id or self.merchant_id, f"CAMARA conformance {number}"))

    def new_subscriber(self, *, line_type: str = "hikari_next", monthly_limit: int | None = None) -> Subscriber:
        """A new line (with a session of its own address, a phone number) and one ID on it."""
        number = next(self._numbers)
        stamp = int(time.time()) % 100_000
        line_id = f"CAF{stamp:05d}{number:05d}"
        login_id = f"camara{stamp:05d}n{number}"
        phone = f"+8150{stamp:05d}{number:04d}"
        line = {"line_id": line_id, "line_type": line_type, "holder_name": "山田 太郎", "base_monthly_fee": 5500}
        if monthly_limit is not None:
            line["monthly_limit"] = monthly_limit
        status, body = self.ops("POST", "/ops/v1/lines", line)
        assert status == 201, body
        status, body = self.ops("PATCH", f"/ops/v1/lines/{line_id}", {"phone_number": phone})
        assert status == 200, f"setting the line's phone_number: {status} {body}"
        address = SUBSCRIBER_PREFIX.format(number) + "1"
        status, body = self.ops("POST", f"/ops/v1/lines/{line_id}/sessions", {"address": address})
        assert status in (200, 201), body
        account: dict[str, Any] = {"login_id": login_id}
        if monthly_limit is not None:
            account["monthly_limit"] = monthly_limit
        if self._password is None:
            status, body = self.ops("POST", f"/ops/v1/lines/{line_id}/accounts", account)
            assert status == 201, body
            self._password = (body["initial_password"], self.run(_password_hash(login_id)))
        else:
            # Hashing a password (argon2) costs a tenth of a second on this machine: every later
            # ID shares the first one's password and hash, written as the ops API writes them.
            self.run(_add_account(line_id, login_id, self._password[1], monthly_limit))
        return Subscriber(line_id, login_id, self._password[0], phone, address)

    def subscriber_confirms(self, validation_url: str, subscriber: Subscriber, action: str = "confirm") -> int:
        """The subscriber answers the validation page as a browser would; the form's status."""
        path = urlsplit(validation_url).path + (
            f"?{urlsplit(validation_url).query}" if urlsplit(validation_url).query else ""
        )
        browser = requests.Session()
        browser.headers["X-Forwarded-For"] = subscriber.address
        try:
            page = browser.get(self.base_url + path, timeout=30)
            token = CSRF.search(page.text)
            assert page.status_code == 200, f"validation page {validation_url}: {page.status_code}"
            assert token is not None, "validation page has no csrf_token"
            form = {
                "login_id": subscriber.login_id,
                "password": subscriber.password,
                "csrf_token": token.group(1),
                "action": action,
            }
            return browser.post(self.base_url + path, data=form, allow_redirects=False, timeout=30).status_code
        finally:
            browser.close()
