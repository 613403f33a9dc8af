"""Test set-up: one backend per pytest run.

``make test-embedded`` runs the suite on a SQLite file and the in-process broker;
``make test-services`` (``MATOMETE_TEST_BACKEND=services``) on PostgreSQL and RabbitMQ. The
services pass skips, with the reason, when the servers do not answer, and fails instead under
``MATOMETE_REQUIRE_SERVICES=1`` (CI). The environment is set before ``queues`` is imported,
because the broker is chosen at import.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

# The CAMARA conformance harness (tests/camara): its modules import each other by name, and its
# pytest plugin (fixtures, manifest, closing count) is registered here, because a second
# ``conftest`` module in tests/camara would take this one's name.
sys.path.insert(0, str(Path(__file__).resolve().parent / "camara"))
pytest_plugins = ("camara_plugin",)

BACKEND = os.environ.get("MATOMETE_TEST_BACKEND", "embedded")
REQUIRE_SERVICES = os.environ.get("MATOMETE_REQUIRE_SERVICES", "") in ("1", "true", "yes")
OPS_TOKEN = "test-ops-token-0123456789"
PG_URL = os.environ.get("MATOMETE_TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/matomete_test")
AMQP_URL = os.environ.get("MATOMETE_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
# The rate limits' shared store: Redis in the services pass (a database of its own, flushed
# before each test), each app's own memory in the embedded pass.
TEST_REDIS_URL = os.environ.get("MATOMETE_TEST_REDIS_URL", "redis://127.0.0.1:6379/1")

if BACKEND == "services":
    DATABASE_URL = PG_URL
    BROKER_URL = AMQP_URL
    REDIS_URL = TEST_REDIS_URL
else:
    DATABASE_URL = f"sqlite://{Path(tempfile.mkdtemp(prefix='matomete-test-')) / 'test.sqlite3'}"
    BROKER_URL = "memory://"
    REDIS_URL = ""
os.environ["MATOMETE_DATABASE_URL"] = DATABASE_URL
os.environ["MATOMETE_BROKER_URL"] = BROKER_URL
os.environ.pop("MATOMETE_TEST_CLOCK", None)

from models.clock import clock  # noqa: E402 - after the environment is set
from settings import Settings  # noqa: E402


def _answers(url: str, default_port: int) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or default_port), timeout=2):
            return True
    except OSError:
        return False


def _services_missing() -> str | None:
    missing = [
        name
        for name, url, port in (("PostgreSQL", PG_URL, 5432), ("RabbitMQ", AMQP_URL, 5672), ("Redis", REDIS_URL, 6379))
        if not _answers(url, port)
    ]
    return " and ".join(missing) + " not answering" if missing else None


def pytest_report_header(config: pytest.Config) -> str:
    """Say which backend this run tests."""
    limits = REDIS_URL or "rate limits in memory"
    return f"matomete backend: {BACKEND} ({DATABASE_URL.split('@')[-1]}, {BROKER_URL.split('@')[-1]}, {limits})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Route marked tests to their pass; skip (or, in CI, fail) the services pass without servers."""
    if BACKEND == "services":
        problem = _services_missing()
        if problem and REQUIRE_SERVICES:
            raise pytest.UsageError(f"MATOMETE_REQUIRE_SERVICES=1 but {problem}")
        for item in items:
            if problem:
                item.add_marker(pytest.mark.skip(reason=f"services pass: {problem}"))
            elif item.get_closest_marker("embedded"):
                item.add_marker(pytest.mark.skip(reason="embedded backends only; runs in the embedded pass"))
    else:
        for item in items:
            if item.get_closest_marker("services"):
                item.add_marker(pytest.mark.skip(reason="needs PostgreSQL + RabbitMQ; runs in the services pass"))


async def _recreate_postgres(url: str) -> None:
    import asyncpg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin = await asyncpg.connect(url.replace(f"/{name}", "/postgres", 1).replace("postgres://", "postgresql://", 1))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def migrated() -> str:
    """A fresh database with every migration applied, once per run."""
    from models.migrate import apply_migrations

    if BACKEND == "services":
        asyncio.run(_recreate_postgres(DATABASE_URL))
    asyncio.run(apply_migrations(Settings(database_url=DATABASE_URL)))
    return DATABASE_URL


def _tables() -> list[str]:
    from tortoise.models import Model

    import models  # noqa: F401
    from models import MODEL_MODULES

    names: list[str] = []
    for module_name in MODEL_MODULES:
        module = __import__(module_name, fromlist=["_"])
        names.extend(
            value.Meta.table
            for value in vars(module).values()
            if isinstance(value, type)
            and issubclass(value, Model)
            and value is not Model
            and value.__module__ == module_name
        )
    return names


TABLES = _tables()


async def _truncate_postgres(url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(url.replace("postgres://", "postgresql://", 1))
    try:
        await connection.execute("TRUNCATE " + ", ".join(f'"{t}"' for t in TABLES) + " RESTART IDENTITY CASCADE")
    finally:
        await connection.close()


def empty_database(url: str = DATABASE_URL) -> None:
    """Delete every row of every table (the schema stays)."""
    if url.startswith("sqlite://"):
        with sqlite3.connect(url.removeprefix("sqlite://")) as connection:
            connection.execute("PRAGMA foreign_keys = OFF")
            for table in TABLES:
                connection.execute(f'DELETE FROM "{table}"')  # noqa: S608 - our own table names
    else:
        asyncio.run(_truncate_postgres(url))


@pytest.fixture
def settings(migrated: str) -> Iterator[Settings]:
    """Settings of a test platform on an emptied database (and rate-limit store), test clock on."""
    empty_database(migrated)
    flush_rate_limits()
    clock.configure(test_clock=True)
    yield Settings(
        database_url=migrated,
        broker_url=BROKER_URL,
        ops_token=OPS_TOKEN,
        secret_key="test-secret-key-0123456789-0123456789",
        test_clock=True,
        log_format="console",
        redis_url=REDIS_URL,
    )
    clock.configure(test_clock=False)


def flush_rate_limits() -> None:
    """Forget every rate-limit count in the test Redis database (the services pass)."""
    if REDIS_URL:
        import redis

        with redis.Redis.from_url(REDIS_URL) as connection:
            connection.flushdb()


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Settings]:
    """The ORM opened on the test database, for tests that use models without the app."""
    from settings.database import close_database, open_database

    context = await open_database(settings)
    yield settings
    await close_database(context)


class OpsClient:
    """The aiohttp test client with the ops token on every request."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {OPS_TOKEN}"}

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """Send and return ``(status, json body)``."""
        headers = {**self.headers, **kwargs.pop("headers", {})}
        response = await self.client.request(method, path, headers=headers, **kwargs)
        return response.status, await response.json()

    async def get(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        """GET with the ops token."""
        return await self.request("GET", path, **kwargs)

    async def post(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        """POST with the ops token."""
        return await self.request("POST", path, **kwargs)

    async def patch(self, path: str, **kwargs: Any) -> tuple[int, Any]:
        """PATCH with the ops token."""
        return await self.request("PATCH", path, **kwargs)


@pytest.fixture
async def client(aiohttp_client: Any, settings: Settings) -> Any:
    """A test client of the whole application (the app opens the database itself)."""
    from api.app import create_app

    return await aiohttp_client(create_app(settings))


@pytest.fixture
def ops(client: Any) -> OpsClient:
    """The application as an operator calls it."""
    return OpsClient(client)


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Any]:
    """A real Dramatiq worker on this run's broker, its queues emptied first."""
    import queues
    import workers  # noqa: F401 - declares the actors

    queues.declare_queues()
    queues.broker.flush_all()
    loop = asyncio.get_running_loop()
    started = queues.start_worker(loop, settings=settings, threads=4)
    yield started
    await loop.run_in_executor(None, started.stop)


async def row_counts() -> dict[str, int]:
    """Rows in every table: compare before and after to prove a request wrote nothing."""
    from tortoise import connections

    counts = {}
    for table in TABLES:
        rows = await connections.get("default").execute_query_dict(f'SELECT COUNT(*) AS n FROM "{table}"')  # noqa: S608
        counts[table] = rows[0]["n"]
    return counts
