"""The ``matomete`` command: run the platform whole (``up``) or one part of the split
deployment (``web``, ``relay``, ``scheduler``), and the operator's tools (``migrate``).

Workers are Dramatiq's own command: ``dramatiq queues workers --queues auth``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence

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


async def _web(settings: Settings) -> None:
    from api.app import create_app

    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    await site.start()
    log.info("web_started", url=settings.base_url)
    await _stop_event().wait()
    await runner.cleanup()


async def _relay(settings: Settings) -> None:
    import queues
    from settings.database import close_database, open_database

    context = await open_database(settings)
    publisher = queues.publisher_for(settings)
    log.info("relay_started", broker=settings.broker_url.split("@")[-1])
    try:
        await queues.relay_forever(publisher, stop=_stop_event())
    finally:
        await publisher.close()
        await close_database(context)


async def _scheduler(settings: Settings) -> None:
    from settings.database import close_database, open_database
    from workers.scheduler import run_scheduler

    context = await open_database(settings)
    try:
        await run_scheduler(stop=_stop_event())
    finally:
        await close_database(context)


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
    configure_logging(log_format=settings.log_format, log_level=settings.log_level)
    runners = {"up": _up, "web": _web, "relay": _relay, "scheduler": _scheduler, "migrate": _migrate}
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(runners[args.command](settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
