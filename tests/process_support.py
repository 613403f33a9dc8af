"""The split deployment as real processes: start, stop and kill the Procfile's commands, and a
``Deployment`` that keeps every one of them running as a process manager would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# Threads per worker line, few enough for a 2-core machine (the Procfile's are for production).
WORKER_THREADS = {"auth": 2, "charges": 2, "billing": 2, "payouts": 1, "webhooks": 4}


def start_process(
    *command: str, log: Path, session: bool = False, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` in the checkout with JSON logs appended to ``log``; in a session of its
    own when ``session`` (so the whole group can be killed)."""
    environment = {**os.environ, "MATOMETE_LOG_FORMAT": "json", **(env or {})}
    with log.open("ab") as sink:
        return subprocess.Popen(  # noqa: S603 - our own entry points
            command, cwd=ROOT, env=environment, stdout=sink, stderr=subprocess.STDOUT, start_new_session=session
        )


def stop_process(process: subprocess.Popen[bytes], log: Path) -> int:
    """SIGTERM and wait; fail the test (after a SIGKILL) if it ignores SIGTERM."""
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"{process.args} ignored SIGTERM:\n{log.read_text()[-2000:]}")


def procfile_commands(
    *, prom_ports: dict[str, int], prom_dir: Path
) -> dict[str, tuple[tuple[str, ...], dict[str, str]]]:
    """Each Procfile line's command and extra environment, by process kind."""
    commands: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
        kind: ((str(BIN / "matomete"), kind), {}) for kind in ("web", "relay", "scheduler")
    }
    for queue, threads in WORKER_THREADS.items():
        command = (str(BIN / "dramatiq"), "queues", "workers", "--queues", queue, "--processes", "1")
        env = {"dramatiq_prom_port": str(prom_ports[queue]), "dramatiq_prom_db": str(prom_dir / queue)}
        (prom_dir / queue).mkdir(parents=True, exist_ok=True)
        commands[queue] = ((*command, "--threads", str(threads)), env)
    return commands


class Deployment:
    """Every Procfile process, each restarted whenever it dies (as honcho or systemd would),
    except while it is held down; ``kill`` SIGKILLs a process's whole group."""

    def __init__(
        self, commands: dict[str, tuple[tuple[str, ...], dict[str, str]]], *, env: dict[str, str], logs: Path
    ) -> None:
        self.commands = commands
        self.env = env
        self.logs = logs
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.held: set[str] = set()
        self.kills: Counter[str] = Counter()
        self.exits: Counter[str] = Counter()  # deaths the deployment did not cause
        self._killing = {kind: asyncio.Lock() for kind in commands}
        self._watch: asyncio.Task[None] | None = None

    def log(self, kind: str) -> Path:
        """Where ``kind`` writes (every incarnation appends)."""
        return self.logs / f"{kind}.log"

    def start(self, kind: str) -> None:
        """Start ``kind`` in a session of its own."""
        command, extra = self.commands[kind]
        self.processes[kind] = start_process(*command, log=self.log(kind), session=True, env={**self.env, **extra})

    async def start_all(self, kinds: tuple[str, ...] | None = None) -> None:
        """Start ``kinds`` (default: every process not started yet) and the watcher that restarts them."""
        for kind in kinds or [kind for kind in self.commands if kind not in self.processes]:
            self.start(kind)
        if self._watch is None:
            self._watch = asyncio.create_task(self._restart_the_dead())

    async def _restart_the_dead(self) -> None:
        while True:
            for kind, process in list(self.processes.items()):
                if kind not in self.held and process.poll() is not None:
                    self.exits[kind] += 1
                    self.start(kind)
            await asyncio.sleep(0.2)

    async def kill(self, kind: str, *, down_for: float) -> None:
        """SIGKILL ``kind`` (its whole group), keep it down ``down_for`` seconds, then restart it
        (one kill of a kind at a time)."""
        async with self._killing[kind]:
            await self._kill(kind, down_for=down_for)

    async def _kill(self, kind: str, *, down_for: float) -> None:
        self.held.add(kind)
        try:
            process = self.processes[kind]
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            await asyncio.get_running_loop().run_in_executor(None, process.wait)
            self.kills[kind] += 1
            await asyncio.sleep(down_for)
            self.start(kind)
        finally:
            self.held.discard(kind)

    async def stop_all(self) -> dict[str, int]:
        """SIGTERM every process and wait; each one's exit code."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
        loop = asyncio.get_running_loop()
        codes = {}
        for kind, process in self.processes.items():
            codes[kind] = await loop.run_in_executor(None, stop_process, process, self.log(kind))
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # anything the group left behind
        return codes
