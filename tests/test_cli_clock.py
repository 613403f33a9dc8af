"""Every command reads the one clock (product.md §12): with ``MATOMETE_TEST_CLOCK=1``, a moved
test clock is what `matomete close-month` and `matomete scheduler` take to be now (issue 13,
finding 1: both read the system time)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from billing.periods import period_of, previous_period
from conftest import BACKEND

pytestmark = pytest.mark.skipif(BACKEND == "services", reason="runs the commands on its own SQLite file")
AHEAD = timedelta(days=62)  # the platform's clock is two months ahead of the machine's


def _environment(folder: Path) -> dict[str, str]:
    return {
        "MATOMETE_DATABASE_URL": f"sqlite://{folder / 'db.sqlite3'}",
        "MATOMETE_TEST_CLOCK": "1",
        "MATOMETE_LOG_FORMAT": "json",
        "PATH": "/usr/bin:/bin",
    }


def _matomete(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "api.cli", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False, timeout=120)  # noqa: S603


def _moved_clock(tmp_path: Path) -> tuple[dict[str, str], str]:
    """A migrated database whose test clock stands two months ahead; the machine's period."""
    env = _environment(tmp_path)
    assert _matomete(env, "migrate").returncode == 0
    with sqlite3.connect(tmp_path / "db.sqlite3") as database:
        database.execute("INSERT INTO test_clock (id, offset_us) VALUES (1, ?)", (AHEAD // timedelta(microseconds=1),))
    return env, period_of(datetime.now(UTC))


def test_close_month_closes_a_month_ended_by_the_test_clock(tmp_path: Path) -> None:
    """This month has not ended on the machine's clock but has on the platform's: close-month closes it."""
    env, this_month = _moved_clock(tmp_path)
    done = _matomete(env, "close-month", this_month)
    assert done.returncode == 0, done.stderr
    assert '"status": "succeeded"' in done.stdout
    with sqlite3.connect(tmp_path / "db.sqlite3") as database:
        (actor,) = database.execute("SELECT actor FROM audit_log WHERE action = 'billing.close'").fetchone()
    assert actor == "cli"


def test_the_scheduler_closes_what_the_test_clock_made_due(tmp_path: Path) -> None:
    """A scheduler started with the clock two months ahead opens the close of the month that just ended
    by the platform's clock (its first close starts from there)."""
    env, _ = _moved_clock(tmp_path)
    last_month = previous_period(period_of(datetime.now(UTC) + AHEAD))
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "scheduler"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    found: list[tuple[str]] = []
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not found:
            time.sleep(0.5)
            with sqlite3.connect(tmp_path / "db.sqlite3") as database:
                found = database.execute("SELECT period FROM billing_runs WHERE period = ?", (last_month,)).fetchall()
    finally:
        scheduler.send_signal(signal.SIGTERM)
        scheduler.wait(timeout=30)
    assert found == [(last_month,)]
