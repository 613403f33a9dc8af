"""What the benchmark scripts share: a migrated database of their own, free ports, and server
processes started in their own process group and stopped with it. Each script runs on its own
(``python bench/api.py``), which puts ``bench/`` first on the import path."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

__all__ = ["MERCHANT", "ROOT", "asyncpg_dsn", "drop_database", "free_port", "recreate_database", "start", "stop"]

# The merchant every benchmark provisions through the ops API.
MERCHANT: dict[str, Any] = {
    "name": "ベンチ株式会社",
    "name_kana": "ベンチ(カ",
    "bank_account": {
        "bank_code": "0001",
        "branch_code": "001",
        "account_type": "ordinary",
        "account_number": "1234567",
        "holder_kana": "ベンチ(カ",
    },
}


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def asyncpg_dsn(url: str) -> str:
    """The PostgreSQL ``url`` (``postgres://``) as asyncpg spells it."""
    return url.replace("postgres://", "postgresql://", 1)


async def recreate_database(url: str) -> None:
    """The PostgreSQL database of ``url`` dropped, created again and migrated: empty."""
    import asyncpg

    from models.migrate import apply_migrations
    from settings import Settings

    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(asyncpg_dsn(url).rsplit("/", 1)[0] + "/postgres")
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    await apply_migrations(Settings(database_url=url))


async def drop_database(url: str) -> None:
    """The PostgreSQL database of ``url`` removed."""
    import asyncpg

    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(asyncpg_dsn(url).rsplit("/", 1)[0] + "/postgres")
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


def start(
    command: list[str], env: dict[str, str] | None = None, log: Path | None = None, **options: Any
) -> subprocess.Popen[Any]:
    """A process in its own process group (so its children stop with it), its output to
    ``log`` (or nowhere)."""
    output: Any = log.open("ab") if log else subprocess.DEVNULL
    return subprocess.Popen(  # noqa: S603 - our own commands
        command,
        env=env,
        cwd=ROOT,
        stdout=options.pop("stdout", output),
        stderr=output,
        start_new_session=True,
        **options,
    )


def stop(process: subprocess.Popen[Any]) -> None:
    """SIGTERM to the process group, then SIGKILL if it has not ended in 15 s."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
