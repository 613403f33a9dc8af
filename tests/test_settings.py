"""Settings are read once from MATOMETE_* variables; a bad value stops start-up naming the variable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from settings import SettingsError, ensure_local_secrets, load_settings
from settings.database import keep_session, tortoise_config


def test_defaults_are_the_embedded_platform() -> None:
    """With nothing set: a SQLite file in the working directory and the in-process broker."""
    settings = load_settings({})
    assert settings.database_url == "sqlite://matomete.sqlite3"
    assert settings.broker_url == "memory://"
    assert settings.embedded
    assert (settings.host, settings.port, settings.log_format, settings.test_clock) == (
        "127.0.0.1",
        8080,
        "json",
        False,
    )


def test_every_variable_is_read() -> None:
    """Each documented variable lands in its field, normalised."""
    settings = load_settings(
        {
            "MATOMETE_DATABASE_URL": "postgresql://app@db.internal:5432/matomete",
            "MATOMETE_BROKER_URL": "amqp://guest:guest@mq:5672/%2F",
            "MATOMETE_OPS_TOKEN": "a-long-enough-ops-token",
            "MATOMETE_SECRET_KEY": "k" * 40,
            "MATOMETE_TEST_CLOCK": "1",
            "MATOMETE_TRUSTED_PROXIES": "10.0.0.1, 192.0.2.0/24",
            "MATOMETE_HOST": "192.0.2.7",
            "MATOMETE_PORT": "9000",
            "MATOMETE_LOG_FORMAT": "console",
            "MATOMETE_LOG_LEVEL": "DEBUG",
            "MATOMETE_DATABASE_POOL_SIZE": "32",
            "MATOMETE_WEB_PROCESSES": "2",
        }
    )
    assert settings.database_url == "postgres://app@db.internal:5432/matomete"
    assert (settings.database_pool_size, settings.web_processes) == (32, 2)
    credentials = tortoise_config(settings)["connections"]["default"]["credentials"]
    assert (credentials["host"], credentials["database"], credentials["maxsize"]) == ("db.internal", "matomete", "32")
    assert credentials["reset"] is keep_session  # no reset query on every release
    assert not settings.embedded
    assert settings.test_clock
    assert [str(n) for n in settings.trusted_proxies] == ["10.0.0.1/32", "192.0.2.0/24"]
    assert (settings.host, settings.port, settings.log_format, settings.log_level) == (
        "192.0.2.7",
        9000,
        "console",
        "debug",
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://x/y"),
        ("DATABASE_URL", "sqlite://:memory:"),
        ("DATABASE_URL", "postgres://host-without-db"),
        ("BROKER_URL", "redis://localhost"),
        ("PORT", "http"),
        ("PORT", "70000"),
        ("TEST_CLOCK", "maybe"),
        ("TRUSTED_PROXIES", "10.0.0.300"),
        ("LOG_FORMAT", "xml"),
        ("LOG_LEVEL", "loud"),
        ("OPS_TOKEN", "short"),
        ("SECRET_KEY", "short"),
        ("PUBLIC_URL", "ftp://example.com"),
        ("HOST", " "),
        ("DATABASE_POOL_SIZE", "0"),
        ("DATABASE_POOL_SIZE", "many"),
        ("WEB_PROCESSES", "0"),
        ("WEB_PROCESSES", "-2"),
    ],
)
def test_bad_value_names_the_variable(variable: str, value: str) -> None:
    """One bad variable raises an error whose message starts with its full name."""
    with pytest.raises(SettingsError) as caught:
        load_settings({f"MATOMETE_{variable}": value})
    assert str(caught.value).startswith(f"MATOMETE_{variable}: ")
    assert caught.value.variable == variable


def test_cli_stops_with_one_line_on_a_bad_value(tmp_path: Path) -> None:
    """`matomete web` with a bad port prints one line naming the variable and exits 2."""
    result = subprocess.run(
        [sys.executable, "-m", "api.cli", "web"],
        cwd=Path(__file__).resolve().parents[1],
        env={"MATOMETE_PORT": "eighty", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["matomete: MATOMETE_PORT: expected a TCP port 1-65535, got 'eighty'"]


def test_local_secrets_are_generated_once_and_kept(tmp_path: Path) -> None:
    """The embedded secret key and ops token are made once beside the database and reused."""
    settings = load_settings({"MATOMETE_DATABASE_URL": f"sqlite://{tmp_path / 'db.sqlite3'}"})
    first = ensure_local_secrets(settings)
    second = ensure_local_secrets(settings)
    assert first.secret_key == second.secret_key
    assert first.ops_token == second.ops_token
    assert len(first.ops_token or "") >= 32
    assert (tmp_path / "matomete.ops_token").stat().st_mode & 0o777 == 0o600
    given = ensure_local_secrets(settings.replace(ops_token="from-the-environment-123"))
    assert given.ops_token == "from-the-environment-123"
