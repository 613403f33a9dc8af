"""Confirmations against their floor, measured in the same run: page POST to final ``/status``.

The floor is argon2id verifications per second with the production parameters
(``models.passwords``) on every core of this machine, one process per core, nothing else.
Then the platform as the Procfile runs it (``matomete web``, ``matomete relay`` and the
Procfile's ``auth`` line, on PostgreSQL and RabbitMQ) decides confirmations of 1-yen charges
by several IDs on several lines: each one opens the confirmation page, posts the form, and
polls ``/status`` until the decision is final.

- sustained: a burst of ``--burst`` confirmations answered at once; decisions per second
  from the first POST to the last final status.
- latency: confirmations arriving at a fixed rate, 70% of the floor, for ``--seconds``;
  p50 and p99 from the POST to the final status.

Needs PostgreSQL and RabbitMQ on 127.0.0.1 (as `make test` does). Prints figures, asserts none.

    .venv/bin/python bench/confirm.py [--seconds 20] [--burst 200]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import re
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bench_support import MERCHANT, ROOT, free_port, recreate_database

BIN = Path(sys.executable).parent

PG = os.environ.get("MATOMETE_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/matomete_bench_confirm")
AMQP = os.environ.get("MATOMETE_BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
OPS_TOKEN = secrets.token_urlsafe(24)
LINES = 8  # IDs confirming at once, each on its own line and address
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
FINAL = {"succeeded", "failed", "canceled", "expired"}
DEADLINE = 120  # seconds a confirmation may take before the bench calls it undecided
WAIT = 5  # /status?wait=5: answered as soon as the decision is in (the wait page does the same)


# --- the floor -----------------------------------------------------------------------------


def _verify_for(seconds: float) -> int:
    from models.passwords import _hasher as hasher  # the production parameters, whatever they are

    stored = hasher.hash("correct horse battery")
    done, end = 0, time.perf_counter() + seconds
    while time.perf_counter() < end:
        hasher.verify(stored, "correct horse battery")
        done += 1
    return done


def argon2_floor(seconds: float = 5.0) -> float:
    """Verifications per second with the production parameters, one process per core."""
    cores = os.cpu_count() or 1
    with multiprocessing.get_context("spawn").Pool(cores) as pool:
        counts = pool.map(_verify_for, [seconds] * cores)
    return sum(counts) / seconds


# --- the platform ----------------------------------------------------------------------------


def purge_queues() -> None:
    """Empty the platform's queues on the bench broker (those that exist)."""
    import pika
    from pika.exceptions import ChannelClosedByBroker

    import queues

    connection = pika.BlockingConnection(pika.URLParameters(AMQP))
    for name in queues.QUEUES:
        for queue in (name, f"{name}.DQ", f"{name}.XQ"):
            channel = connection.channel()
            with contextlib.suppress(ChannelClosedByBroker):  # not declared yet: nothing to empty
                channel.queue_purge(queue)
                channel.close()
    connection.close()


def procfile_auth() -> tuple[dict[str, str], list[str]]:
    """The Procfile's ``auth`` line: its environment assignments and its command."""
    line = next(x for x in (ROOT / "Procfile").read_text().splitlines() if x.startswith("auth:"))
    words = shlex.split(line.removeprefix("auth:"))
    env: dict[str, str] = {}
    if words[0] == "env":
        words = words[1:]
        while "=" in words[0]:
            key, value = words.pop(0).split("=", 1)
            env[key] = value
    return env, [str(BIN / words[0]), *words[1:]]


class Platform:
    """The web process, the relay and the Procfile's auth workers, as separate processes."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.port = free_port()
        self.processes: list[subprocess.Popen[bytes]] = []
        self.env = {
            **os.environ,
            "MATOMETE_LOG_FORMAT": "json",
            "MATOMETE_LOG_LEVEL": "warning",
            "MATOMETE_DATABASE_URL": PG,
            "MATOMETE_BROKER_URL": AMQP,
            "MATOMETE_SECRET_KEY": secrets.token_urlsafe(32),
            "MATOMETE_OPS_TOKEN": OPS_TOKEN,
            "MATOMETE_PORT": str(self.port),
            "MATOMETE_PUBLIC_URL": f"http://127.0.0.1:{self.port}",
            "MATOMETE_TRUSTED_PROXIES": "127.0.0.1/32",
            "MATOMETE_RELAY_METRICS_PORT": "0",
            "MATOMETE_RATE_LIMIT_SIGN_IN_ADDRESS": "100000/minute",
            "MATOMETE_RATE_LIMIT_SIGN_IN_LOGIN": "100000/minute",
            "MATOMETE_RATE_LIMIT_MERCHANT_WRITES": "100000/second",
        }
        self.env.pop("MATOMETE_REDIS_URL", None)

    def start(self) -> None:
        """Start every process (in sessions of their own, so each group can be stopped)."""
        auth_env, auth_command = procfile_auth()
        prom = self.logs / "prometheus"
        prom.mkdir()
        auth_env.update(dramatiq_prom_port=str(free_port()), dramatiq_prom_db=str(prom))
        for name, command, extra in (
            ("web", [str(BIN / "matomete"), "web"], {}),
            ("relay", [str(BIN / "matomete"), "relay"], {}),
            ("auth", auth_command, auth_env),
        ):
            with (self.logs / f"{name}.log").open("ab") as sink:
                self.processes.append(
                    subprocess.Popen(  # noqa: S603 - our own entry points
                        command,
                        cwd=ROOT,
                        env={**self.env, **extra},
                        stdout=sink,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )

    def cpu_seconds(self) -> dict[str, float]:
        """CPU seconds used so far by each process kind (its whole process group), from /proc."""
        groups = {process.pid: name for name, process in zip(("web", "relay", "auth"), self.processes, strict=True)}
        used = dict.fromkeys(groups.values(), 0.0)
        tick = os.sysconf("SC_CLK_TCK")
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                name = groups.get(int(fields[2]))  # the process group
                if name is not None:
                    used[name] += (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        return used

    def stop(self) -> None:
        """SIGTERM each process group, then SIGKILL whatever is left."""
        for process in self.processes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)


# --- the load ----------------------------------------------------------------------------------


class Load:
    """Provisioning through the ops API, charges through /v1, and confirmations as browsers do."""

    def __init__(self, base: str) -> None:
        import aiohttp

        self.base = base
        self.connector = aiohttp.TCPConnector(limit=256)
        self.ops = {"Authorization": f"Bearer {OPS_TOKEN}"}
        self.shops: list[tuple[str, str, str]] = []  # (login id, password, address)
        self.api_key = ""

    async def wait_until_up(self, deadline: float = 60) -> None:
        """Until the web process answers."""
        import aiohttp

        end = time.monotonic() + deadline
        async with aiohttp.ClientSession(connector=self.connector, connector_owner=False) as http:
            while True:
                with contextlib.suppress(aiohttp.ClientError):
                    async with http.get(f"{self.base}/confirm/none/status") as response:
                        if response.status < 500:
                            return
                if time.monotonic() > end:
                    raise SystemExit("the web process did not start: see its log")
                await asyncio.sleep(0.2)

    async def provision(self) -> None:
        """A merchant, and ``LINES`` lines each with a session address and an ID (high limits)."""
        import aiohttp

        async with aiohttp.ClientSession(connector=self.connector, connector_owner=False, headers=self.ops) as http:
            merchant = await self._post(http, "/ops/v1/merchants", MERCHANT)
            self.api_key = merchant["api_key"]
            for n in range(LINES):
                line_id, address = f"CAF{9000000000 + n}", f"10.9.0.{n + 1}"
                await self._post(http, "/ops/v1/lines", {**LINE, "line_id": line_id, "monthly_limit": 1_000_000})
                await self._post(http, f"/ops/v1/lines/{line_id}/sessions", {"address": address})
                login_id = f"bench{n}"
                body = {"login_id": login_id, "monthly_limit": 1_000_000}
                account = await self._post(http, f"/ops/v1/lines/{line_id}/accounts", body)
                self.shops.append((login_id, account["initial_password"], address))

    async def _post(self, http: Any, path: str, body: dict[str, Any]) -> Any:
        async with http.post(f"{self.base}{path}", json=body) as response:
            answer = await response.json()
            if response.status >= 300:
                raise SystemExit(f"POST {path}: {response.status} {answer}")
            return answer

    async def charges(self, count: int) -> list[str]:
        """``count`` 1-yen charges awaiting confirmation; their confirmation paths."""
        import aiohttp

        headers = {"Authorization": f"Bearer {self.api_key}"}
        paths: list[str] = []
        async with aiohttp.ClientSession(connector=self.connector, connector_owner=False, headers=headers) as http:

            async def one(n: int) -> None:
                body = {"amount": 1, "description": f"bench {n}", "return_url": "https://shop.example/r"}
                charge = await self._post(http, "/v1/charges", body)
                paths.append(urlsplit(charge["confirmation_url"]).path)

            for start in range(0, count, 32):
                await asyncio.gather(*(one(n) for n in range(start, min(count, start + 32))))
        return paths

    async def confirm(self, path: str, n: int) -> tuple[float, float, str]:
        """Open the page, post the form, wait on /status until final: (POST sent, final seen, status)."""
        import aiohttp

        login_id, password, address = self.shops[n % len(self.shops)]
        headers = {"X-Forwarded-For": address}
        jar = aiohttp.CookieJar(unsafe=True)  # the session cookie of an IP address host (127.0.0.1)
        async with aiohttp.ClientSession(
            connector=self.connector, connector_owner=False, headers=headers, cookie_jar=jar
        ) as http:
            async with http.get(f"{self.base}{path}") as page:
                token = CSRF.search(await page.text())
            if token is None:
                return time.perf_counter(), time.perf_counter(), "no_form"
            form = {"login_id": login_id, "password": password, "csrf_token": token.group(1), "action": "confirm"}
            posted = time.perf_counter()
            async with http.post(f"{self.base}{path}", data=form, allow_redirects=False) as response:
                await response.read()
            while True:
                async with http.get(f"{self.base}{path}/status?wait={WAIT}") as response:
                    status = (await response.json())["status"]
                if status in FINAL or status == "requires_confirmation":  # the latter: refused, may retry
                    return posted, time.perf_counter(), status
                if time.perf_counter() - posted > DEADLINE:
                    return posted, time.perf_counter(), "undecided"

    async def close(self) -> None:
        """Close the shared connections."""
        await self.connector.close()


LINE: dict[str, Any] = {"line_type": "hikari_next", "holder_name": "山田 太郎", "base_monthly_fee": 5500}


def progress(text: str) -> None:
    """A line on stderr while the bench runs."""
    print(text, file=sys.stderr, flush=True)


def percentile(values: list[float], fraction: float) -> float:
    """The ``fraction`` quantile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


async def sustained(load: Load, count: int) -> tuple[float, list[str]]:
    """Decisions per second for ``count`` confirmations answered at once."""
    paths = await load.charges(count)
    results = await asyncio.gather(*(load.confirm(path, n) for n, path in enumerate(paths)))
    first = min(posted for posted, _, _ in results)
    last = max(final for _, final, _ in results)
    return count / (last - first), [status for _, _, status in results]


async def at_rate(load: Load, rate: float, seconds: float) -> tuple[list[float], list[str]]:
    """Confirmations arriving at ``rate`` per second for ``seconds``: latencies and outcomes."""
    count = max(1, int(rate * seconds))
    paths = await load.charges(count)
    start = time.perf_counter()
    tasks = []
    for n, path in enumerate(paths):
        delay = start + n / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(load.confirm(path, n)))
    results = await asyncio.gather(*tasks)
    return [final - posted for posted, final, _ in results], [status for _, _, status in results]


async def run(seconds: float, burst: int, floor: float) -> None:
    """Start the platform, provision, measure, stop."""
    await recreate_database(PG)
    purge_queues()
    with tempfile.TemporaryDirectory(prefix="matomete-bench-confirm-") as logs:
        platform = Platform(Path(logs))
        platform.start()
        load = Load(f"http://127.0.0.1:{platform.port}")
        try:
            await load.wait_until_up()
            await load.provision()
            progress("provisioned; warming up")
            await sustained(load, 8)  # warm up: connections, caches, the workers' pools
            progress(f"sustained: {burst} at once")
            before = platform.cpu_seconds()
            rate, outcomes = await sustained(load, burst)
            after = platform.cpu_seconds()
            cpu = {name: (after[name] - before[name]) / burst * 1000 for name in after}
            progress(f"latency: {0.7 * floor:.1f}/s for {seconds:.0f} s")
            latencies, late_outcomes = await at_rate(load, 0.7 * floor, seconds)
        except BaseException:
            for log in sorted(Path(logs).glob("*.log")):  # noqa: ASYNC240 - failing anyway
                progress(f"--- {log.name}\n{log.read_text()[-3000:]}")
            raise
        finally:
            await load.close()
            platform.stop()
            purge_queues()
    wrong = [s for s in outcomes + late_outcomes if s != "succeeded"]
    from models.passwords import _hasher as hasher

    print(
        f"confirmations: page POST -> final /status (argon2id m={hasher.memory_cost} KiB, t={hasher.time_cost}, "
        f"p={hasher.parallelism}; {os.cpu_count()} cores)"
    )
    print(f"  floor: argon2id verifications    {floor:8.1f} /s")
    print(f"  sustained ({burst} at once)        {rate:8.1f} decisions/s")
    print("  CPU per decision in the burst: " + ", ".join(f"{name} {ms:.0f} ms" for name, ms in cpu.items()))
    print(
        f"  at 70% of the floor ({0.7 * floor:.1f}/s for {seconds:.0f} s): "
        f"p50 {percentile(latencies, 0.5) * 1000:.0f} ms, p99 {percentile(latencies, 0.99) * 1000:.0f} ms"
    )
    if wrong:
        print(f"  NOT SUCCEEDED: {len(wrong)} ({sorted(set(wrong))})")
    print(f"RESULT confirm_sustained_per_s={rate:.1f} ratio={rate / floor:.2f}")
    print(f"RESULT confirm_p50_ms_at_70pct={percentile(latencies, 0.5) * 1000:.0f} ratio={0.7:.2f}")
    print(f"RESULT confirm_p99_ms_at_70pct={percentile(latencies, 0.99) * 1000:.0f} ratio={0.7:.2f}")


def main() -> None:
    """Measure the floor, then the platform."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--burst", type=int, default=200)
    arguments = parser.parse_args()
    floor = argon2_floor()
    progress(f"floor: {floor:.1f} argon2id verifications/s")
    asyncio.run(run(arguments.seconds, arguments.burst, floor))


if __name__ == "__main__":
    main()
