"""The ``matomete`` command: run the platform whole (``up``) or one part of the split
deployment (``web``, ``relay``, ``scheduler``), and the operator's tools (``migrate``).

Workers are Dramatiq's own command: ``dramatiq queues workers --queues auth``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from settings import Settings, SettingsError, ensure_local_secrets, load_settings
from settings.logging import configure_logging

__all__ = ["main"]

log = structlog.get_logger("matomete.cli")


def _stop_event() -> asyncio.Event:
    """An event set by SIGINT or SIGTERM, so each service shuts down cleanly."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _migrate(settings: Settings) -> None:
    from models.migrate import apply_migrations

    await apply_migrations(settings)


async def _up(settings: Settings) -> None:
    import queues
    import workers  # noqa: F401 - declares the actors the in-process worker runs
    from api.app import create_app
    from api.seed import seed_demo, welcome_text
    from workers.scheduler import run_scheduler

    await _migrate(settings)
    app = create_app(settings, demo=True)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    demo = await seed_demo(settings)
    stop = _stop_event()
    loop = asyncio.get_running_loop()
    worker = queues.start_worker(loop, settings=settings)
    relay = asyncio.create_task(queues.relay_forever(queues.MemoryPublisher(queues.broker), stop=stop))
    scheduler = asyncio.create_task(run_scheduler(stop=stop))
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    print(welcome_text(settings, demo), flush=True)  # noqa: T201 - the newcomer's instructions
    log.info("up", url=settings.base_url)
    await stop.wait()
    await relay
    await scheduler
    await loop.run_in_executor(None, worker.stop)  # worker threads may be waiting on this loop
    await runner.cleanup()


async def _web(settings: Settings, *, reuse_port: bool = False) -> None:
    from api.app import create_app

    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port, reuse_port=reuse_port or None)
    await site.start()
    log.info("web_started", url=settings.base_url, pid=os.getpid())
    await _stop_event().wait()
    await runner.cleanup()


def _serve_web(settings: Settings) -> int:
    """``matomete web``: one process as before, or ``MATOMETE_WEB_PROCESSES`` forked ones sharing
    the port (``SO_REUSEPORT``: the kernel spreads connections), each with its own loop and pool.
    The parent passes SIGINT/SIGTERM on, waits for them, and fails if one of them fails."""
    if settings.web_processes == 1:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_web(settings))
        return 0
    import multiprocessing

    context = multiprocessing.get_context("fork")  # before any loop or pool exists in this process
    children = [
        context.Process(target=_web_child, args=(settings,), name=f"matomete-web-{n}")
        for n in range(settings.web_processes)
    ]
    for child in children:
        child.start()

    def forward(signum: int, _frame: object) -> None:
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    from multiprocessing.connection import wait

    running = list(children)
    while running:
        wait([child.sentinel for child in running])
        ended = [child for child in running if not child.is_alive()]
        running = [child for child in running if child.is_alive()]
        if any(child.exitcode for child in ended):  # one failed: stop the others, and fail
            forward(signal.SIGTERM, None)
    return max((abs(child.exitcode or 0) for child in children), default=0)


def _web_child(settings: Settings) -> None:
    """One of several web processes."""
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_web(settings, reuse_port=True))


async def _relay(settings: Settings) -> None:
    import queues
    from settings.database import connected

    async with connected(settings):
        publisher = queues.publisher_for(settings)
        _serve_relay_metrics(settings)
        log.info("relay_started", broker=settings.broker_url.split("@")[-1])
        try:
            await queues.relay_forever(publisher, stop=_stop_event())
        finally:
            await publisher.close()


def _serve_relay_metrics(settings: Settings) -> None:
    """The relay's Prometheus series on ``MATOMETE_RELAY_METRICS_PORT`` (0: not served); a port
    already taken is logged and the relay goes on relaying."""
    if not settings.relay_metrics_port:
        return
    from prometheus_client import start_http_server

    try:
        start_http_server(settings.relay_metrics_port, addr=settings.host)
    except OSError as error:
        log.warning("relay_metrics_not_served", port=settings.relay_metrics_port, error=repr(error))
    else:
        log.info("relay_metrics_served", url=f"http://{settings.host}:{settings.relay_metrics_port}/metrics")


async def _scheduler(settings: Settings) -> None:
    from settings.database import connected
    from workers.scheduler import run_scheduler

    async with connected(settings):
        await run_scheduler(stop=_stop_event())


def _bar(done: int, total: int, width: int = 30) -> str:
    filled = width if total == 0 else width * done // total
    return "[" + "#" * filled + "-" * (width - filled) + "]"


async def _close_month(settings: Settings, period: str) -> int:
    """Close ``period`` and show its progress; in the embedded mode this process does the batches."""
    from billing.errors import MatometeError
    from models.audit_log import Actor
    from models.invoices import BillingBatch, BillingRun
    from models.operations import closing
    from settings.database import connected

    async with connected(settings):
        try:
            run = await closing.start_close(period, actor=Actor("cli"))
        except MatometeError as error:
            print(f"matomete: {error.message}", file=sys.stderr)  # noqa: T201 - the operator's answer
            return 2
        if settings.embedded:  # no worker listens to an in-process broker of another process
            await closing.plan_close(run.id, batch_lines=settings.billing_batch_lines)
            for batch in await BillingBatch.filter(run_id=run.id).order_by("first_line_id"):
                await closing.merge_batch(batch.id)
                await _show(await BillingRun.get(id=run.id))
        while (current := await BillingRun.get(id=run.id)).status == "running":
            await _show(current)
            await asyncio.sleep(0.5)
        await _show(current)
        print(file=sys.stderr)  # noqa: T201 - end the progress line
        print(  # noqa: T201 - the run, for scripts
            json.dumps(
                {
                    "id": current.id,
                    "period": current.period,
                    "status": current.status,
                    "invoices": current.invoices,
                    "total_billed": current.total_billed,
                }
            )
        )
        return 0 if current.status == "succeeded" else 1


async def _show(run: object) -> None:
    done, total = run.batches_done, run.batches_total  # type: ignore[attr-defined]
    line = f"\r{run.period} {_bar(done, total)} {done}/{total} batches, {run.invoices:,} invoices"  # type: ignore[attr-defined]
    print(line, end="", file=sys.stderr, flush=True)  # noqa: T201 - a progress bar


async def _zengin_file(settings: Settings, period: str) -> bytes | None:
    """The Zengin 総合振込 file of ``period``'s payouts; None (and why, on stderr) if there is none."""
    from billing.errors import MatometeError
    from models.operations.payouts import transfer_file_for
    from settings.database import connected

    async with connected(settings):
        try:
            return await transfer_file_for(period, settings.zengin_payer)
        except MatometeError as error:
            print(f"matomete: {error.message}", file=sys.stderr)  # noqa: T201 - the operator's answer
            return None


def _export_zengin(settings: Settings, period: str, output: str) -> int:
    data = asyncio.run(_zengin_file(settings, period))
    if data is None:
        return 2
    if output == "-":
        sys.stdout.buffer.write(data)
    else:
        Path(output).write_bytes(data)
        print(f"{output}: {len(data)} bytes", file=sys.stderr)  # noqa: T201 - what was written
    return 0


async def _audit(settings: Settings, period: str | None) -> int:
    """Print each invariant with ok or what breaks it; non-zero when anything does."""
    from models.invariants import run_audit
    from settings.database import connected

    async with connected(settings):
        checks = await run_audit(period)
    for check in checks:
        verdict = "ok   " if check.ok else "BREAK"
        print(f"{verdict} {check.name}" + ("" if check.ok else f": {', '.join(check.breaks)}"))  # noqa: T201
    return 0 if all(check.ok for check in checks) else 1


def _import_collections(settings: Settings, path: str) -> int:
    """Apply a Zengin 口座振替 result file; print what it did, or one line saying why not."""
    from billing.errors import MatometeError
    from billing.zengin_records import read_debit_results

    try:
        results = read_debit_results(Path(path).read_bytes())
    except (OSError, MatometeError) as error:
        print(f"matomete: {path}: {getattr(error, 'message', error)}", file=sys.stderr)  # noqa: T201
        return 2
    return asyncio.run(_apply_debits(settings, results))


async def _apply_debits(settings: Settings, results: list[Any]) -> int:
    from tortoise.transactions import in_transaction

    from billing.errors import MatometeError
    from models.clock import clock
    from models.operations.collections import import_debit_results
    from settings.database import connected

    async with connected(settings):
        try:
            async with in_transaction():
                summary = await import_debit_results(results, now=await clock.now())
        except MatometeError as error:
            print(f"matomete: {error.message} Nothing was applied.", file=sys.stderr)  # noqa: T201
            return 2
    print(json.dumps(summary))  # noqa: T201 - the result, for scripts
    return 0


async def _create_staff(settings: Settings, email: str, name: str | None, role: str) -> int:
    """Add a staff member of the console and print their first password (shown only now)."""
    from billing.errors import MatometeError
    from models.audit_log import Actor
    from models.operations.staff import create_staff
    from settings.database import connected

    async with connected(settings):
        try:
            shown_name = name or email.partition("@")[0]
            user, password = await create_staff(email, name=shown_name, role=role, actor=Actor("cli"))
        except MatometeError as error:
            print(f"matomete: {error.message}", file=sys.stderr)  # noqa: T201 - one line, then stop
            return 2
    print(f"{user.email} ({user.role}) first password: {password}")  # noqa: T201 - shown once, to the operator
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="matomete", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser(
        "up", help="migrate, seed a demo, and run everything in one process (SQLite, in-process broker)"
    )
    commands.add_parser("web", help="serve the API and pages (split deployment)")
    commands.add_parser("relay", help="publish the outbox to the broker (split deployment)")
    commands.add_parser("scheduler", help="enqueue whatever has fallen due (split deployment)")
    commands.add_parser("migrate", help="apply database migrations")
    close = commands.add_parser("close-month", help="close a billing period (YYYY-MM), with a progress bar")
    close.add_argument("period", help="the month to close, YYYY-MM")
    imports = commands.add_parser("import-collections", help="apply a Zengin 口座振替 result file")
    imports.add_argument("file", help="the bank's result file")
    audit = commands.add_parser("audit", help="check every money invariant; exits non-zero on any break")
    audit.add_argument("--period", help="only this period, YYYY-MM")
    staff = commands.add_parser("create-staff", help="add a staff member of the console /ops; prints a first password")
    staff.add_argument("email", help="the staff member's e-mail address (their sign-in)")
    staff.add_argument("--role", required=True, choices=("support", "billing", "admin"), help="what they may do")
    staff.add_argument("--name", help="their name as the console shows it (default: the e-mail's local part)")
    export = commands.add_parser("export-zengin", help="write the Zengin transfer file of a period's payouts")
    export.add_argument("period", help="the payouts' period, YYYY-MM")
    export.add_argument("-o", "--output", default="-", help="file to write (default: standard output)")
    return parser


def _settings_for(command: str) -> Settings:
    """The settings, with local secrets filled in where the embedded mode allows it."""
    settings = load_settings()
    if command == "up" or (settings.embedded and settings.is_sqlite):
        settings = ensure_local_secrets(settings)
        if command == "up" and "MATOMETE_WEBHOOKS_ALLOW_INSECURE" not in os.environ:
            # A merchant trying the platform locally points webhooks at its own machine.
            settings = settings.replace(webhooks_allow_insecure=True)
        return settings
    if command == "web" and not (settings.ops_token and settings.secret_key):
        missing = "OPS_TOKEN" if not settings.ops_token else "SECRET_KEY"
        raise SettingsError(missing, "is required by `matomete web` outside the embedded mode")
    return settings


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``matomete`` console script."""
    args = _parser().parse_args(argv)
    try:
        settings = _settings_for(args.command)
    except SettingsError as error:
        print(f"matomete: {error}", file=sys.stderr)  # noqa: T201 - one line, then stop
        return 2
    # Every process and command reads time from the one clock, configured the same way (§12).
    from models.clock import clock

    clock.configure(test_clock=settings.test_clock)
    # Commands that answer on stdout and stop; their log lines go to stderr.
    tools: dict[str, Callable[[], int]] = {
        "close-month": lambda: asyncio.run(_close_month(settings, args.period)),
        "import-collections": lambda: _import_collections(settings, args.file),
        "audit": lambda: asyncio.run(_audit(settings, args.period)),
        "export-zengin": lambda: _export_zengin(settings, args.period, args.output),
        "create-staff": lambda: asyncio.run(_create_staff(settings, args.email, args.name, args.role)),
    }
    stream = sys.stderr if args.command in tools else sys.stdout
    configure_logging(log_format=settings.log_format, log_level=settings.log_level, stream=stream)
    if args.command in tools:
        return tools[args.command]()
    if args.command == "web":
        return _serve_web(settings)
    runners = {"up": _up, "relay": _relay, "scheduler": _scheduler, "migrate": _migrate}
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(runners[args.command](settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
