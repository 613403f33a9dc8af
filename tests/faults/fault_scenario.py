"""A month of business, drawn from a seed, driven through the public surfaces, and the figures
it ends with — the same for any deployment that keeps its promises.

The story (period P = 2034-05, P+1, P+2): two merchants, each with a webhook endpoint on a local
receiver; three lines (seeded base fees), each with an ID and an address of its own; purchases
of seeded amounts from seeded lines, each confirmed through the real confirmation form from the
line's address; two subscriptions; seeded refunds before the close (they lower what is billed);
the clock past P's end (the scheduler closes P and renews the subscriptions); seeded refunds of
billed charges (credits on P+1); collections of P's bills (full, half or nothing, seeded); one
subscription canceled; the clock past P+1's end (P+1 closes, unpaid bills turn overdue, P's
payouts are generated); a few minutes more (any webhook attempt cut off by a kill is due again).

``Figures`` holds what must not depend on the run: invoices, payouts and the events delivered,
with ids and instants left out (the scenario's own references stand in for charge ids).
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

PERIOD, NEXT, AFTER = "2034-05", "2034-06", "2034-07"
STARTS_AT = "2034-05-03T10:00:00+09:00"
CLOSE_AT = "2034-06-01T00:10:00+09:00"
COLLECT_AT = "2034-06-15T12:00:00+09:00"
PAYOUTS_AT = "2034-07-01T00:10:00+09:00"
LEASES_PASSED_AT = "2034-07-01T00:20:00+09:00"  # past DELIVERY_LEASE of any attempt cut off
LINES = 3
MERCHANTS = 2
RETURN_URL = "https://shop.example/return"
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ID_SHAPE = re.compile(r"^[a-z]{2,5}_[0-9A-Za-z]{8,}$")
INSTANT = re.compile(r"^\d{4}-\d\d-\d\dT")
VOLATILE_KEYS = frozenset({"id", "created", "created_at", "updated_at", "confirmation_url", "canceled_at", "timestamp"})


class Platform(Protocol):
    """What the scenario needs from a running platform."""

    async def request(self, method: str, path: str, *, key: str, json: Any = None) -> tuple[int, Any]:
        """An API request with ``key`` as the bearer; ``(status, json body)``."""

    async def confirm(self, confirmation_url: str, *, login_id: str, password: str, address: str) -> int:
        """Open the confirmation page and post the form from ``address``; the answer's status."""

    async def move_clock(self, moment: str) -> None:
        """Move the platform's clock to ``moment`` (ISO 8601 with offset)."""

    async def rows(self, sql: str) -> list[dict[str, Any]]:
        """Rows of a read-only query on the platform's database."""

    async def until(self, done: Callable[[], Awaitable[bool]], *, what: str) -> None:
        """Let the platform work until ``done()`` holds; fail, naming ``what``, at a deadline."""

    async def step(self, name: str) -> None:
        """The story reached step ``name`` (``purchases``, ``close``, ``payouts``)."""


@dataclass
class Receiver:
    """Webhook deliveries as a merchant's endpoint received them (verified, keyed by webhook-id)."""

    secrets: dict[int, str] = field(default_factory=dict)
    received: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)
    attempts: int = 0

    async def hook(self, request: Any) -> Any:
        """Verify the Standard Webhooks signature and keep the event once per webhook-id."""
        import json

        from aiohttp import web
        from standardwebhooks.webhooks import Webhook

        merchant = int(request.match_info["merchant"])
        body = await request.text()
        Webhook(self.secrets[merchant]).verify(body, {k.lower(): v for k, v in request.headers.items()})
        self.attempts += 1
        self.received.setdefault(request.headers["webhook-id"], (merchant, json.loads(body)))
        return web.Response(status=200)


async def serve_receiver(receiver: Receiver) -> tuple[Any, int]:
    """Run ``receiver`` on a free local port; ``(runner, port)``."""
    from aiohttp import web
    from aiohttp.test_utils import unused_port

    port = unused_port()
    app = web.Application()
    app.router.add_post("/hooks/{merchant}", receiver.hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, port


@dataclass
class Figures:
    """What a run ends with, free of ids and instants."""

    invoices: list[Any]
    payouts: list[Any]
    events: list[Any]
    delivered: list[Any]
    counts: dict[str, int]


@dataclass
class Story:
    """The seeded choices, drawn before anything runs, so every run of a seed makes the same ones."""

    base_fees: list[int]
    purchases: list[tuple[int, int, int]]  # (line, merchant, amount)
    refunds_before: dict[int, int | None]  # purchase -> amount (None: in full)
    refunds_after: dict[int, int]
    payments: dict[int, str]  # line -> "full" | "half" | "none"
    subscriptions: list[tuple[int, int, int]] = field(default_factory=lambda: [(0, 0, 480), (1, 1, 980)])

    @classmethod
    def draw(cls, seed: int, purchases: int) -> Story:
        """The story of ``seed`` with ``purchases`` one-off purchases."""
        rng = random.Random(seed)
        base_fees = [rng.choice((0, 500, 1000, 5500)) for _ in range(LINES)]
        bought = [(rng.randrange(LINES), n % MERCHANTS, rng.randrange(100, 3001)) for n in range(purchases)]
        chosen = rng.sample(range(purchases), k=min(purchases, max(2, purchases // 3)))
        half = len(chosen) // 2
        before = {n: rng.choice((None, bought[n][2] // 2)) for n in chosen[:half]}
        after = {n: max(1, bought[n][2] // rng.choice((2, 3, 4))) for n in chosen[half:]}
        payments = {line: rng.choice(("full", "full", "half", "none")) for line in range(LINES)}
        return cls(base_fees, bought, before, after, payments)


@dataclass
class Cast:
    """Who takes part: the ops token, each merchant's key and each line's ID and address."""

    ops_token: str
    merchant_ids: list[str] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)
    logins: list[tuple[str, str]] = field(default_factory=list)  # (login_id, password)
    charges: dict[str, str] = field(default_factory=dict)  # charge id -> the scenario's reference

    @staticmethod
    def line_id(line: int) -> str:
        """The line's id."""
        return f"COP00000091{line:02d}"

    @staticmethod
    def address(line: int) -> str:
        """The address the access network reports for the line."""
        return f"10.77.0.{line + 10}"


async def ok(  # noqa: PLR0913 - the request's parts, keyword-only
    platform: Platform, method: str, path: str, *, key: str, json: Any = None, want: int = 200
) -> Any:
    """A request that must answer ``want``; its body."""
    status, body = await platform.request(method, path, key=key, json=json)
    assert status == want, f"{method} {path}: {status} {body}"
    return body


async def provision(platform: Platform, cast: Cast, story: Story, hook_url: str, receiver: Receiver) -> None:
    """Lines, IDs, sessions, merchants and their webhook endpoints, through /ops/v1 and /v1 (the
    clock already at ``STARTS_AT``)."""
    token = cast.ops_token
    for line in range(LINES):
        line_id = cast.line_id(line)
        body = {"line_id": line_id, "line_type": "hikari_next", "holder_name": f"試験 {line}"}
        await ok(
            platform,
            "POST",
            "/ops/v1/lines",
            key=token,
            json={**body, "base_monthly_fee": story.base_fees[line]},
            want=201,
        )
        await ok(
            platform,
            "POST",
            f"/ops/v1/lines/{line_id}/sessions",
            key=token,
            json={"address": cast.address(line)},
            want=201,
        )
        account = await ok(
            platform,
            "POST",
            f"/ops/v1/lines/{line_id}/accounts",
            key=token,
            json={"login_id": f"fault{line}"},
            want=201,
        )
        cast.logins.append((account["login_id"], account["initial_password"]))
    for merchant in range(MERCHANTS):
        bank = {
            "bank_code": "0001",
            "branch_code": "001",
            "account_type": "ordinary",
            "account_number": f"765432{merchant}",
        }
        body = {
            "name": f"障害試験商店{merchant}",
            "name_kana": "ショウガイシケン",
            "bank_account": {**bank, "holder_kana": "ショウガイシケン"},
            "setup_fee": 1000 * merchant,
        }
        created = await ok(platform, "POST", "/ops/v1/merchants", key=token, json=body, want=201)
        cast.merchant_ids.append(created["id"])
        cast.keys.append(created["api_key"])
        endpoint = await ok(
            platform,
            "POST",
            "/v1/webhook_endpoints",
            key=created["api_key"],
            json={"url": f"{hook_url}/{merchant}", "events": ["*"]},
            want=201,
        )
        receiver.secrets[merchant] = endpoint["secret"]


async def buy(platform: Platform, cast: Cast, n: int, purchase: tuple[int, int, int], *, monthly: bool) -> str:
    """Create purchase ``n`` (line, merchant, amount) as a charge or a subscription, confirm it
    from the line's address; wait until it has succeeded."""
    line, merchant, amount = purchase
    kind = "subscriptions" if monthly else "charges"
    reference = f"s{n}" if monthly else f"p{n}"
    body = {
        "amount": amount,
        "description": f"試験 {reference}",
        "return_url": RETURN_URL,
        "merchant_reference": reference,
    }
    created = await ok(platform, "POST", f"/v1/{kind}", key=cast.keys[merchant], json=body, want=201)
    login_id, password = cast.logins[line]
    status = await platform.confirm(
        created["confirmation_url"], login_id=login_id, password=password, address=cast.address(line)
    )
    assert status == 303, f"confirmation of {reference} answered {status}"
    wanted = "active" if monthly else "succeeded"

    async def decided() -> bool:
        _, current = await platform.request("GET", f"/v1/{kind}/{created['id']}", key=cast.keys[merchant])
        assert current["status"] in (wanted, "processing", "requires_confirmation"), current
        return bool(current["status"] == wanted)

    await platform.until(decided, what=f"{reference} {wanted}")
    if not monthly:
        cast.charges[created["id"]] = reference
    return str(created["id"])


async def refund(platform: Platform, cast: Cast, charge_id: str, merchant: int, amount: int | None) -> None:
    """A refund through /v1 (in full when ``amount`` is None)."""
    body: dict[str, Any] = {"charge": charge_id, **({"amount": amount} if amount else {})}
    await ok(platform, "POST", "/v1/refunds", key=cast.keys[merchant], json=body, want=201)


async def closed(platform: Platform, period: str) -> bool:
    """A close of ``period`` has succeeded and none is running."""
    rows = await platform.rows(f"SELECT status FROM billing_runs WHERE period = '{period}'")  # noqa: S608 - a constant
    statuses = {row["status"] for row in rows}
    assert "failed" not in statuses, f"a close of {period} failed"
    return "succeeded" in statuses and "running" not in statuses


async def renewed(platform: Platform, period: str) -> bool:
    """Every active subscription is charged for ``period`` and no renewal is being decided."""
    waiting = (
        f"SELECT id FROM subscriptions WHERE status = 'active' AND current_period < '{period}'",  # noqa: S608
        (
            "SELECT id FROM charges WHERE subscription_id IS NOT NULL"
            " AND status IN ('processing', 'requires_confirmation')"
        ),
    )
    for sql in waiting:
        if await platform.rows(sql):
            return False
    return True


async def run_story(platform: Platform, cast: Cast, story: Story, *, concurrency: int = 3) -> None:
    """Play the whole story on ``platform``."""
    gate = asyncio.Semaphore(concurrency)
    charge_ids: dict[int, str] = {}

    async def one(n: int, purchase: tuple[int, int, int]) -> None:
        async with gate:
            charge_ids[n] = await buy(platform, cast, n, purchase, monthly=False)

    await platform.step("purchases")
    await asyncio.gather(*(one(n, purchase) for n, purchase in enumerate(story.purchases)))
    for n, purchase in enumerate(story.subscriptions):
        await buy(platform, cast, n, purchase, monthly=True)
    for n, amount in sorted(story.refunds_before.items()):
        await refund(platform, cast, charge_ids[n], story.purchases[n][1], amount)

    await platform.move_clock(CLOSE_AT)
    await platform.step("close")
    await platform.until(lambda: closed(platform, PERIOD), what=f"the close of {PERIOD}")
    # The renewals of NEXT decided before anything else happens: a cancel before its renewal is
    # decided cancels the renewal (a race the rules allow either way; tests/faults/test_races.py).
    await platform.until(lambda: renewed(platform, NEXT), what=f"the renewals of {NEXT}")
    for n, amount in sorted(story.refunds_after.items()):
        await refund(platform, cast, charge_ids[n], story.purchases[n][1], amount)

    await platform.move_clock(COLLECT_AT)
    invoices = await ok(platform, "GET", f"/ops/v1/invoices?period={PERIOD}&limit=100", key=cast.ops_token)
    rows = []
    for invoice in invoices["data"]:
        share = story.payments[int(invoice["line_id"][-2:])]
        amount = invoice["total"] if share == "full" else invoice["total"] // 2
        if share != "none" and amount > 0:
            rows.append({"invoice_id": invoice["id"], "amount": amount, "paid_at": COLLECT_AT})
    if rows:
        await ok(platform, "POST", "/ops/v1/collections", key=cast.ops_token, json={"rows": rows}, want=201)
    listing = await ok(platform, "GET", "/v1/subscriptions?limit=100", key=cast.keys[1])
    for subscription in listing["data"]:
        await ok(platform, "POST", f"/v1/subscriptions/{subscription['id']}/cancel", key=cast.keys[1])

    await platform.move_clock(PAYOUTS_AT)
    await platform.step("payouts")
    await platform.until(lambda: closed(platform, NEXT), what=f"the close of {NEXT}")

    async def paid_out() -> bool:
        return bool(await platform.rows(f"SELECT id FROM payouts WHERE period = '{PERIOD}'"))  # noqa: S608

    await platform.until(paid_out, what=f"the payouts of {PERIOD}")
    await platform.move_clock(LEASES_PASSED_AT)


async def settled(platform: Platform) -> bool:
    """Nothing left to do: the outbox sent, every delivery delivered, no close or charge in flight."""
    checks = (
        "SELECT id FROM outbox WHERE sent_at IS NULL",
        "SELECT id FROM webhook_deliveries WHERE status <> 'delivered'",
        "SELECT id FROM billing_runs WHERE status = 'running'",
        "SELECT id FROM charges WHERE status = 'processing'",
    )
    for sql in checks:
        if await platform.rows(sql):
            return False
    return True


def stable(value: Any, names: dict[str, str]) -> Any:
    """``value`` with ids replaced by the scenario's names (or dropped) and instants dropped."""
    if isinstance(value, dict):
        return {
            key: stable(item, names)
            for key, item in sorted(value.items())
            if key not in VOLATILE_KEYS and not (isinstance(item, str) and INSTANT.match(item))
        }
    if isinstance(value, list):
        return [stable(item, names) for item in value]
    if isinstance(value, str) and ID_SHAPE.match(value):
        return names.get(value, "<id>")
    return value


async def figures(platform: Platform, cast: Cast, receiver: Receiver) -> Figures:
    """The run's invoices, payouts, events and delivered events, comparable across runs."""
    names = dict(cast.charges)
    names.update({merchant_id: f"merchant{n}" for n, merchant_id in enumerate(cast.merchant_ids)})
    invoices = []
    for period in (PERIOD, NEXT):
        listing = await ok(platform, "GET", f"/ops/v1/invoices?period={period}&limit=100", key=cast.ops_token)
        assert not listing["has_more"]
        invoices.extend(stable(invoice, names) for invoice in listing["data"])
    for invoice in invoices:
        invoice["items"].sort(key=repr)
    payouts = []
    for period in (PERIOD, NEXT):
        listing = await ok(platform, "GET", f"/ops/v1/payouts?period={period}&limit=100", key=cast.ops_token)
        payouts.extend(stable(payout, names) for payout in listing["data"])
    events = []
    for merchant, key in enumerate(cast.keys):
        path = "/v1/events?limit=100"
        while True:
            page = await ok(platform, "GET", path, key=key)
            events.extend((merchant, event["type"], stable(event["data"], names)) for event in page["data"])
            if not page["has_more"]:
                break
            path = f"/v1/events?limit=100&starting_after={page['data'][-1]['id']}"
    delivered = [(merchant, body["type"], stable(body["data"], names)) for merchant, body in receiver.received.values()]
    events = [(merchant, kind, data["object"]) for merchant, kind, data in events]
    counts = {"events": len(events), "delivered": len(delivered), "attempts": receiver.attempts}
    return Figures(
        sorted(invoices, key=repr),
        sorted(payouts, key=repr),
        sorted(events, key=repr),
        sorted(delivered, key=repr),
        counts,
    )
