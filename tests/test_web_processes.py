"""``matomete web`` with ``MATOMETE_WEB_PROCESSES``: several processes on one port, each its own
loop and pool, all stopped by one SIGTERM (issue 14)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.embedded
MATOMETE = Path(sys.executable).parent / "matomete"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _started_pids(log: Path) -> set[int]:
    """The pids of the ``web_started`` lines written so far."""
    pids = set()
    for line in log.read_text().splitlines():
        if line.startswith("{") and '"web_started"' in line:
            pids.add(json.loads(line)["pid"])
    return pids


def test_two_web_processes_share_the_port_and_stop_together(tmp_path: Path) -> None:
    """With ``MATOMETE_WEB_PROCESSES=2`` two processes announce themselves on one port, requests
    are answered, and one SIGTERM to the parent stops both; it exits 0."""
    (tmp_path / "db").mkdir()
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATOMETE_")}
    env |= {
        "MATOMETE_PORT": str(port),
        "MATOMETE_WEB_PROCESSES": "2",
        "MATOMETE_DATABASE_URL": f"sqlite://{tmp_path / 'db' / 'matomete.sqlite3'}",
    }
    subprocess.run([str(MATOMETE), "migrate"], cwd=tmp_path, env=env, check=True, capture_output=True)  # noqa: S603
    log = tmp_path / "web.log"
    with log.open("w") as sink:
        process = subprocess.Popen(  # noqa: S603 - our own entry point
            [str(MATOMETE), "web"], cwd=tmp_path, env=env, stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        end = time.monotonic() + 60
        while len(_started_pids(log)) < 2 and time.monotonic() < end:
            assert process.poll() is None, log.read_text()
            time.sleep(0.2)
        pids = _started_pids(log)
        assert len(pids) == 2, log.read_text()
        assert process.pid not in pids
        for _ in range(4):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as response:
                assert response.status == 200
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()
        for pid in pids:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
