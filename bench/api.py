"""``POST /v1/charges`` throughput and latency against its floors, measured in the same run.

Starts a ``matomete web`` on its own PostgreSQL database with a provisioned merchant, and two
floors on the same machine: a bare aiohttp handler (answers a fixed 201), and a bare aiohttp
handler doing the same writes with raw asyncpg and the same pool size (the API key's merchant
looked up, the idempotency key row inserted, the charge inserted, the key's response stored, in
one transaction). Load comes from a separate process: ``wrk`` when it is installed, else an
aiohttp client in a subprocess; 64 connections, a distinct ``Idempotency-Key`` per request.

Needs PostgreSQL on 127.0.0.1 (as ``make test`` does); RabbitMQ is not used (the web process
only writes the outbox). Prints figures, asserts none; the machine's noise shows in them.

    .venv/bin/python bench/api.py [--seconds 10] [--rounds 3] [--connections 64] [--processes 1]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_support import MERCHANT, asyncpg_dsn, drop_database, free_port, recreate_database, start, stop

PG = os.environ.get("MATOMETE_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/matomete_bench_api")
OPS_TOKEN = "bench-ops-token-" + "x" * 16
BODY = {"amount": 500, "description": "ゲーム内コイン 500枚", "return_url": "https://game.example/back"}

WRK_SCRIPT = """
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
local counter = 0
request = function()
  counter = counter + 1
  wrk.headers["Idempotency-Key"] = RUN .. "-" .. tid .. "-" .. counter
  return wrk.format("POST", nil, nil, nil)
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("WRK requests=%d duration_us=%d errors=%d non2xx=%d p50_us=%d p99_us=%d\\n",
    summary.requests, summary.duration, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50), latency:percentile(99)))
end
"""


async def wait_for(url: str, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    """Until ``url`` answers (any status), or fail if the process died."""
    import aiohttp

    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"{process.args!r} exited with {process.returncode}")
            try:
                async with session.get(url) as response:
                    await response.read()
                    return
            except aiohttp.ClientError:
                await asyncio.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds} s")


async def provision(base: str) -> str:
    """A merchant made through the operator API; its API key."""
    import aiohttp

    headers = {"Authorization": f"Bearer {OPS_TOKEN}"}
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base}/ops/v1/merchants", json=MERCHANT, headers=headers) as response,
    ):
        merchant = await response.json()
        if response.status != 201:
            raise RuntimeError(f"provisioning failed: {response.status} {merchant}")
    return str(merchant["api_key"])


# --- the floors, each served by this script in its own process --------------------------------


def serve_floor(kind: str, port: int, pool_size: int) -> None:
    """Serve a floor on ``port`` until killed: ``bare`` or ``asyncpg``."""
    from aiohttp import web

    app = web.Application()
    if kind == "bare":
        payload = json.dumps({"id": "ch_bare", "object": "charge", **BODY}).encode()

        async def bare(request: web.Request) -> web.Response:
            await request.read()
            return web.Response(status=201, body=payload, content_type="application/json")

        app.router.add_post("/v1/charges", bare)
    else:
        app.cleanup_ctx.append(_asyncpg_pool(pool_size))
        app.router.add_post("/v1/charges", _same_writes)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


def _asyncpg_pool(size: int) -> Any:
    async def context(app: Any) -> Any:
        import asyncpg

        app["pool"] = await asyncpg.create_pool(asyncpg_dsn(PG), min_size=size, max_size=size)
        yield
        await app["pool"].close()

    return context


async def _same_writes(request: Any) -> Any:
    """The charge API's rows, raw: key → merchant, idempotency key, charge, stored response."""
    import hashlib
    from datetime import UTC, datetime, timedelta

    from aiohttp import web

    raw = await request.read()
    body = json.loads(raw)
    key = request.headers["Idempotency-Key"]
    api_key = request.headers["Authorization"].partition(" ")[2]
    fingerprint = hashlib.sha256(b"POST /v1/charges\n" + raw).hexdigest()
    now = datetime.now(UTC)
    charge_id = "ch_" + secrets.token_hex(12)
    token = secrets.token_urlsafe(24)
    async with request.app["pool"].acquire() as connection, connection.transaction():
        merchant_id = await connection.fetchval(
            "SELECT merchant_id FROM api_keys WHERE key_hash = $1 AND revoked_at IS NULL",
            hashlib.sha256(api_key.encode()).hexdigest(),
        )
        key_id = await connection.fetchval(
            "INSERT INTO idempotency_keys (merchant_id, key, request_fingerprint, created_at) "
            "VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING id",
            merchant_id,
            key,
            fingerprint,
            now,
        )
        await connection.execute(
            "INSERT INTO charges (id, merchant_id, amount, currency, description, metadata, return_url, "
            "confirmation_token, confirmation_url, status, refunded_amount, created_at, expires_at) "
            "VALUES ($1, $2, $3, 'jpy', $4, '{}', $5, $6, $7, 'requires_confirmation', 0, $8, $9)",
            charge_id,
            merchant_id,
            body["amount"],
            body["description"],
            body["return_url"],
            token,
            f"http://bench/confirm/{token}",
            now,
            now + timedelta(minutes=30),
        )
        answer = json.dumps({"id": charge_id, "object": "charge", **body})
        await connection.execute(
            "UPDATE idempotency_keys SET response_status = 201, response_body = $1, completed_at = $2 WHERE id = $3",
            answer,
            now,
            key_id,
        )
    return web.Response(status=201, text=answer, content_type="application/json")


# --- the load, from a separate process ----------------------------------------------------------


def run_load(url: str, api_key: str, *, seconds: float, connections: int, run: str) -> dict[str, float]:
    """Requests/s, p50 and p99 (ms) of ``connections`` clients posting for ``seconds``."""
    body = json.dumps(BODY, ensure_ascii=False)
    if shutil.which("wrk"):
        with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
            script.write(f"wrk.method = 'POST'\nwrk.body = [==[{body}]==]\nRUN = \"{run}\"\n" + WRK_SCRIPT)
        command = [
            "wrk",
            f"-t{min(connections, 2)}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            script.name,
            "-H",
            f"Authorization: Bearer {api_key}",
            "-H",
            "Content-Type: application/json",
            url,
        ]
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
        Path(script.name).unlink()
        line = next(row for row in output.splitlines() if row.startswith("WRK "))
        figures = dict(part.split("=") for part in line.split()[1:])
        requests, duration = int(figures["requests"]), int(figures["duration_us"]) / 1e6
        bad = int(figures["errors"]) + int(figures["non2xx"])
        return {
            "rps": (requests - bad) / duration,
            "p50_ms": int(figures["p50_us"]) / 1000,
            "p99_ms": int(figures["p99_us"]) / 1000,
            "errors": bad,
        }
    output = subprocess.run(  # noqa: S603 - this script itself
        [sys.executable, __file__, "--load", url, api_key, str(seconds), str(connections), run],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(json.loads(output.splitlines()[-1]))


async def _client_load(url: str, api_key: str, seconds: float, connections: int, run: str) -> dict[str, float]:
    """The aiohttp load generator (when ``wrk`` is absent), in its own process."""
    import aiohttp

    body = json.dumps(BODY).encode()
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(number: int, session: aiohttp.ClientSession) -> None:
        nonlocal errors
        count = 0
        while time.perf_counter() < deadline:
            count += 1
            headers = {
                "Authorization": f"Bearer {api_key}",
                "Content-Type": "application/json",
                "Idempotency-Key": f"{run}-{number}-{count}",
            }
            started = time.perf_counter()
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    ok = response.status == 201
            except aiohttp.ClientError:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - started)
            else:
                errors += 1

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(client(n, session) for n in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    if not latencies:
        return {"rps": 0.0, "p50_ms": 0.0, "p99_ms": 0.0, "errors": errors}
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, len(latencies) * 99 // 100)] * 1000,
        "errors": errors,
    }


# --- the run -----------------------------------------------------------------------------------


async def main() -> None:
    """Start the API and its two floors, load each in turn for ``--rounds`` rounds (so the
    machine's drift falls on all three alike), print the medians and RESULT lines, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10, help="of load per server per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--processes", type=int, default=1, help="MATOMETE_WEB_PROCESSES of the web server")
    parser.add_argument("--pool-size", type=int, default=int(os.environ.get("MATOMETE_DATABASE_POOL_SIZE", "0")))
    args = parser.parse_args()
    await recreate_database(PG)
    ports = {"api": free_port(), "bare": free_port(), "asyncpg": free_port()}
    pool_size = args.pool_size or _default_pool_size()
    env = {
        **os.environ,
        "MATOMETE_DATABASE_URL": PG,
        "MATOMETE_BROKER_URL": os.environ.get("MATOMETE_BENCH_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F"),
        "MATOMETE_OPS_TOKEN": OPS_TOKEN,
        "MATOMETE_SECRET_KEY": secrets.token_hex(32),
        "MATOMETE_PORT": str(ports["api"]),
        "MATOMETE_HOST": "127.0.0.1",
        "MATOMETE_LOG_LEVEL": "info",  # as in production: one JSON line per request (to /dev/null here)
        "MATOMETE_REDIS_URL": "",
        "MATOMETE_RATE_LIMIT_MERCHANT_WRITES": "1000000/second",
        "MATOMETE_WEB_PROCESSES": str(args.processes),
    }
    if args.pool_size:
        env["MATOMETE_DATABASE_POOL_SIZE"] = str(args.pool_size)
    matomete = str(Path(sys.executable).with_name("matomete"))
    rounds: dict[str, list[dict[str, float]]] = {name: [] for name in ports}
    processes: list[subprocess.Popen[bytes]] = []
    try:
        web_process = start([matomete, "web"], env)
        processes.append(web_process)
        await wait_for(f"http://127.0.0.1:{ports['api']}/healthz", web_process)
        api_key = await provision(f"http://127.0.0.1:{ports['api']}")
        for kind in ("bare", "asyncpg"):
            server = start([sys.executable, __file__, "--serve", kind, str(ports[kind]), str(pool_size)])
            processes.append(server)
            await _wait_for_port(ports[kind], server)
        for name, port in ports.items():  # warm each up: connections open, statements prepared
            url = f"http://127.0.0.1:{port}/v1/charges"
            run_load(url, api_key, seconds=2, connections=args.connections, run=f"warm-{name}-{secrets.token_hex(4)}")
        for _ in range(args.rounds):
            for name, port in ports.items():
                url = f"http://127.0.0.1:{port}/v1/charges"
                figures = run_load(
                    url, api_key, seconds=args.seconds, connections=args.connections, run=secrets.token_hex(6)
                )
                rounds[name].append(figures)
    finally:
        for process in processes:
            stop(process)
        await drop_database(PG)
    results = {name: {key: _median([r[key] for r in runs]) for key in runs[0]} for name, runs in rounds.items()}
    api, floor, bare_figures = results["api"], results["asyncpg"], results["bare"]
    ratios = [a["rps"] / f["rps"] for a, f in zip(rounds["api"], rounds["asyncpg"], strict=True)]
    print(
        f"POST /v1/charges, {args.connections} connections, {args.rounds} rounds of {args.seconds} s, "
        f"{args.processes} web process(es), pool {pool_size}, load by {'wrk' if shutil.which('wrk') else 'aiohttp'}; "
        "medians"
    )
    for name, figures in results.items():
        print(
            f"  {name:8} {figures['rps']:9,.0f} req/s  p50 {figures['p50_ms']:7.1f} ms  "
            f"p99 {figures['p99_ms']:7.1f} ms  errors {figures['errors']:.0f}"
        )
    print("  api/asyncpg by round: " + ", ".join(f"{ratio:.2f}" for ratio in ratios))
    print(f"RESULT api_rps={api['rps']:.0f} ratio={_median(ratios):.2f}")
    print(f"RESULT api_p50_ms={api['p50_ms']:.1f} ratio={api['p50_ms'] / floor['p50_ms']:.2f}")
    print(f"RESULT api_p99_ms={api['p99_ms']:.1f} ratio={api['p99_ms'] / floor['p99_ms']:.2f}")
    print(f"RESULT floor_asyncpg_rps={floor['rps']:.0f} ratio={floor['rps'] / bare_figures['rps']:.2f}")
    print(f"RESULT floor_bare_rps={bare_figures['rps']:.0f} ratio=1.00")


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _default_pool_size() -> int:
    """What the web process uses when ``MATOMETE_DATABASE_POOL_SIZE`` is not set."""
    try:
        from settings import DEFAULT_DATABASE_POOL_SIZE
    except ImportError:  # before the pool was configurable: asyncpg's maxsize in Tortoise
        return 5
    return DEFAULT_DATABASE_POOL_SIZE


async def _wait_for_port(port: int, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"floor on {port} exited with {process.returncode}")
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.2)
        else:
            writer.close()
            return
    raise RuntimeError(f"floor on {port} did not listen")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--serve":
        serve_floor(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "--load":
        url, key, seconds, connections, run = sys.argv[2:7]
        print(json.dumps(asyncio.run(_client_load(url, key, float(seconds), int(connections), run))))
    else:
        asyncio.run(main())
