"""`matomete up` on a fresh folder: migrate, seed a demo, print what a newcomer needs, serve;
the printed ops token provisions; a restart keeps everything."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.embedded
MATOMETE = Path(sys.executable).parent / "matomete"
POLL_SECONDS = 0.2  # between /readyz polls, each under one deadline


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class Platform:
    """One `matomete up` process in a folder of its own."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.output = folder / f"up-{time.monotonic_ns()}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("MATOMETE_")}
        env["MATOMETE_PORT"] = str(port)
        with self.output.open("w") as sink:
            self.process = subprocess.Popen(  # noqa: S603 - our own entry point
                [str(MATOMETE), "up"], cwd=folder, env=env, stdout=sink, stderr=subprocess.STDOUT
            )
        self.base = f"http://127.0.0.1:{port}"

    def wait_ready(self, deadline: float = 60) -> None:
        """Poll /readyz until 200, the process dies, or the deadline passes."""
        end = time.monotonic() + deadline
        while time.monotonic() < end:
            assert self.process.poll() is None, self.output.read_text()
            try:
                with urllib.request.urlopen(f"{self.base}/readyz", timeout=2) as response:  # noqa: S310
                    if response.status == 200:
                        return
            except (urllib.error.URLError, ConnectionError):
                pass
            time.sleep(POLL_SECONDS)
        pytest.fail(f"not ready in {deadline}s:\n{self.output.read_text()}")

    def call(self, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
        """An ops API call with the token."""
        request = urllib.request.Request(  # noqa: S310 - loopback only
            self.base + path,
            method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def stop(self) -> None:
        """SIGTERM, as a terminal's Ctrl-C or a process manager would stop it."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            pytest.fail("matomete up did not stop on SIGTERM")


def walk_a_purchase(platform: Platform, printed: str) -> None:
    """What the welcome text tells a newcomer: the printed curl, then the page as a browser would."""
    api_key = re.search(r"Bearer (sk_live_\S+)'", printed).group(1)  # type: ignore[union-attr]
    body = json.loads(re.search(r"-d '(\{\"amount.*\})'", printed).group(1))  # type: ignore[union-attr]
    password = re.search(r"password (\S+)", printed).group(1)  # type: ignore[union-attr]
    status, charge = platform.call("POST", "/v1/charges", api_key, body)
    assert status == 201, charge
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with browser.open(charge["confirmation_url"], timeout=10) as page:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.read().decode()).group(1)  # type: ignore[union-attr]
    form = urllib.parse.urlencode({"login_id": "demo", "password": password, "csrf_token": csrf, "action": "confirm"})
    with browser.open(charge["confirmation_url"], data=form.encode(), timeout=10) as landed:
        final_url = landed.geturl()
        text = landed.read().decode()
        end = time.monotonic() + 30
        while "/wait" in final_url and time.monotonic() < end:  # the wait page refreshes itself
            time.sleep(POLL_SECONDS)
            with browser.open(final_url, timeout=10) as again:
                final_url, text = again.geturl(), again.read().decode()
    assert "/demo/return" in final_url, text
    assert "status=succeeded" in final_url
    assert "verified" in text
    assert "NOT verified" not in text


def _sign_in(platform: Platform, path: str, fields: dict[str, str]) -> tuple[str, str]:
    """Post a site's sign-in form as a browser would; the page landed on and its text."""
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    base = f"http://127.0.0.1:{platform.port}"
    with browser.open(f"{base}{path}", timeout=10) as page:
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.read().decode()).group(1)  # type: ignore[union-attr]
    form = urllib.parse.urlencode({**fields, "csrf_token": csrf})
    with browser.open(f"{base}{path}", data=form.encode(), timeout=30) as landed:
        return landed.geturl().removeprefix(base), landed.read().decode()


def sign_in_as_the_demo_merchant_user(platform: Platform, printed: str) -> None:
    """The printed merchant user signs in to the data management site and lands on its home page."""
    email, password = re.search(r"merchant user\s+(\S+)\s+password (\S+)", printed).groups()  # type: ignore[union-attr]
    landed, text = _sign_in(platform, "/merchant/login", {"email": email, "password": password})
    assert landed == "/merchant"
    assert "デモ動画ストア" in text


def sign_in_as_the_demo_subscriber(platform: Platform, printed: str) -> None:
    """The printed subscriber ID signs in to its my page from this machine and sees this month."""
    password = re.search(r"password (\S+)", printed).group(1)  # type: ignore[union-attr]
    landed, text = _sign_in(platform, "/my/login", {"login_id": "demo", "password": password})
    assert landed == "/my"
    assert 'id="limit-left"' in text


def sign_in_as_the_demo_operator(platform: Platform, printed: str) -> None:
    """The printed operator signs in to the support centre and may manage staff (an admin)."""
    email, password = re.search(r"operator \(admin\)\s+(\S+)\s+password (\S+)", printed).groups()  # type: ignore[union-attr]
    landed, text = _sign_in(platform, "/ops/login", {"email": email, "password": password})
    assert landed == "/ops"
    assert 'href="/ops/staff"' in text


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """An empty working directory, as on a fresh clone."""
    return tmp_path


def test_up_serves_a_demo_and_keeps_data_across_a_restart(folder: Path) -> None:
    """The printed token provisions a line, an ID and a merchant; all three survive a restart."""
    port = _free_port()
    first = Platform(folder, port)
    try:
        first.wait_ready()
        printed = first.output.read_text()
        token = re.search(r"ops token\s+(\S+)", printed).group(1)  # type: ignore[union-attr]
        demo_password = re.search(r"password (\S+)", printed).group(1)  # type: ignore[union-attr]
        assert "merchant API key   sk_live_" in printed
        assert "subscriber ID      demo" in printed
        status, line = first.call(
            "POST",
            "/ops/v1/lines",
            token,
            {
                "line_id": "CAF0000000777",
                "line_type": "hikari_next",
                "holder_name": "新人 さん",
                "base_monthly_fee": 5500,
            },
        )
        assert status == 201, line
        status, account = first.call("POST", "/ops/v1/lines/CAF0000000777/accounts", token, {"login_id": "newcomer"})
        assert status == 201, account
        status, merchant = first.call(
            "POST",
            "/ops/v1/merchants",
            token,
            {
                "name": "新人ストア",
                "name_kana": "ｼﾝｼﾞﾝｽﾄｱ",
                "bank_account": {
                    "bank_code": "0005",
                    "branch_code": "001",
                    "account_type": "current",
                    "account_number": "7654321",
                    "holder_kana": "ｼﾝｼﾞﾝｽﾄｱ",
                },
            },
        )
        assert status == 201, merchant
        status, demo_line = first.call("GET", "/ops/v1/lines/CAF0000000001/sessions", token)
        assert sorted(s["address"] for s in demo_line["data"]) == ["127.0.0.1", "::1"]
        walk_a_purchase(first, printed)
        sign_in_as_the_demo_merchant_user(first, printed)
        sign_in_as_the_demo_subscriber(first, printed)
        sign_in_as_the_demo_operator(first, printed)
    finally:
        first.stop()

    second = Platform(folder, port)
    try:
        second.wait_ready()
        reprinted = second.output.read_text()
        assert f"ops token          {token}" in reprinted
        assert f"password {demo_password}" in reprinted
        assert second.call("GET", "/ops/v1/lines/CAF0000000777", token)[0] == 200
        assert second.call("GET", "/ops/v1/accounts/newcomer", token)[0] == 200
        assert second.call("GET", f"/ops/v1/merchants/{merchant['id']}", token)[0] == 200
        assert second.call("GET", "/ops/v1/lines/CAF0000000002", token)[0] == 404  # seeded once, not again
    finally:
        second.stop()


def matomete(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run a `matomete` command in ``folder`` with none of this process's MATOMETE_* settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MATOMETE_")}
    return subprocess.run(  # noqa: S603 - our own entry point
        [str(MATOMETE), *args], cwd=folder, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def test_close_month_from_the_command_line(folder: Path) -> None:
    """`matomete close-month` refuses an unfinished month, and closes an ended one with a progress bar."""
    assert matomete(folder, "migrate").returncode == 0
    refused = matomete(folder, "close-month", "2999-01")
    assert refused.returncode == 2
    assert "has not ended" in refused.stderr
    done = matomete(folder, "close-month", "2020-01")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "succeeded"
    assert "batches" in done.stderr
    assert matomete(folder, "close-month", "2020-01").returncode == 0  # a second close is allowed and adds nothing


def test_export_zengin_without_payouts_says_so(folder: Path) -> None:
    """`matomete export-zengin` for a period with no payout exits 2 with one line, writing no file."""
    assert matomete(folder, "migrate").returncode == 0
    result = matomete(folder, "export-zengin", "2020-01", "-o", "out.txt")
    assert result.returncode == 2
    assert "no payout to transfer" in result.stderr
    assert not (folder / "out.txt").exists()


def test_audit_from_the_command_line(folder: Path) -> None:
    """`matomete audit` on a fresh platform prints each check as ok and exits 0."""
    assert matomete(folder, "migrate").returncode == 0
    result = matomete(folder, "audit")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 5
    assert all(line.startswith("ok") for line in lines)


def test_import_collections_refuses_a_malformed_file(folder: Path) -> None:
    """A result file with a short record is refused whole, naming the record, with exit code 2."""
    assert matomete(folder, "migrate").returncode == 0
    (folder / "result.txt").write_bytes(b"191" + b"0" * 60 + b"\r\n")
    result = matomete(folder, "import-collections", "result.txt")
    assert result.returncode == 2
    assert "record 1" in result.stderr
