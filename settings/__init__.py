"""One frozen ``Settings``, read once from ``MATOMETE_*`` environment variables.

A bad value stops start-up with one line that names the variable and what is wrong
(``SettingsError``); nothing else in the code reads the environment.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

__all__ = ["Settings", "SettingsError", "ensure_local_secrets", "load_settings", "read_broker_url"]

PREFIX = "MATOMETE_"
DEFAULT_DATABASE_FILE = "matomete.sqlite3"
DEFAULT_DATABASE_POOL_SIZE = 20
LOG_FORMATS = ("json", "console")
LOG_LEVELS = ("debug", "info", "warning", "error")
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off", "")


class SettingsError(Exception):
    """A ``MATOMETE_*`` variable holds a value the platform cannot start with."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{PREFIX}{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a Matomete process is configured with; see the README's table."""

    database_url: str = f"sqlite://{DEFAULT_DATABASE_FILE}"
    broker_url: str = "memory://"
    ops_token: str | None = None
    secret_key: str = ""
    test_clock: bool = False
    trusted_proxies: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8080
    log_format: str = "json"
    log_level: str = "info"
    public_url: str = ""
    webhooks_allow_insecure: bool = False
    billing_batch_lines: int = 2000
    # Connections in each process's PostgreSQL pool (asyncpg's max_size; SQLite has one).
    database_pool_size: int = DEFAULT_DATABASE_POOL_SIZE
    # Processes ``matomete web`` serves with, all on one port (``SO_REUSEPORT``), each with its pool.
    web_processes: int = 1
    # The carrier's own account payouts are drawn from (総合振込 依頼人): code, bank, branch,
    # account type (1 普通, 2 当座), account number, kana name.
    zengin_payer: tuple[str, str, str, int, str, str] = ("0000000000", "0001", "001", 1, "0000000", "ﾏﾄﾒﾃ")
    require_services: bool = False
    # The RabbitMQ management HTTP API (``http://USER:PASS@HOST:15672``): the vital signs read
    # unacknowledged counts from it; without it they read AMQP (ready and consumers only).
    rabbitmq_management_url: str = ""
    relay_metrics_port: int = 9300
    # The store of the rate limits every web process shares (``redis://HOST:6379/DB``); empty:
    # each process counts in its own memory (the embedded mode of ``matomete up``).
    redis_url: str = ""
    # Rate limits in the ``limits`` notation (``N/second|minute|hour``, several joined by ``;``).
    # Every form that checks a password (confirmation, sign-in, password change): per client
    # address, and per login id; failed ``/v1`` API keys and ``/ops/v1`` tokens, per address;
    # ``/v1`` writes (POST, PATCH, DELETE), per merchant.
    # Where GSMA CAMARA's Carrier Billing r3.2 definitions lie (``API_definitions/*.yaml``): the
    # CAMARA routers serve them as their OpenAPI documents. Empty: looked for beside the checkout.
    camara_dir: str = ""
    rate_limit_sign_in_address: str = "30/minute;300/hour"
    rate_limit_sign_in_login: str = "10/minute;60/hour"
    rate_limit_api_key_failures: str = "20/minute;100/hour"
    rate_limit_ops_token_failures: str = "20/minute;100/hour"  # noqa: S105 - a limit, not a token
    rate_limit_merchant_writes: str = "100/second"
    # CAMARA: every request of an aggregator client (reads too), per client; failed access
    # tokens, per client address.
    rate_limit_camara_requests: str = "100/second;3000/minute"
    rate_limit_camara_token_failures: str = "20/minute;100/hour"  # noqa: S105 - a limit, not a token
    extra: Mapping[str, str] = field(default_factory=dict)

    @property
    def embedded(self) -> bool:
        """True when the broker is the in-process one (``matomete up``)."""
        return self.broker_url.startswith("memory://")

    @property
    def is_sqlite(self) -> bool:
        """True when the database is an embedded SQLite file."""
        return self.database_url.startswith("sqlite://")

    @property
    def state_dir(self) -> Path:
        """Where generated local secrets live: beside the SQLite file, else the working dir."""
        if self.is_sqlite:
            return Path(self.database_url.removeprefix("sqlite://")).resolve().parent
        return Path.cwd()

    @property
    def base_url(self) -> str:
        """The address people reach this platform at (confirmation URLs are built on it)."""
        return self.public_url or f"http://{self.host}:{self.port}"

    def replace(self, **changes: object) -> Settings:
        """A copy with some fields changed (tests and ``matomete up`` use it)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values.update(changes)
        return Settings(**values)


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    raw = env.get(PREFIX + name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise SettingsError(name, f"expected one of 1/0/true/false, got {raw!r}")


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    raw = env.get(PREFIX + name, default).strip().lower()
    if raw not in choices:
        raise SettingsError(name, f"expected one of {', '.join(choices)}, got {raw!r}")
    return raw


def _database_url(raw: str) -> str:
    scheme = raw.split("://", 1)[0] if "://" in raw else ""
    if scheme not in ("sqlite", "postgres", "postgresql", "asyncpg"):
        raise SettingsError("DATABASE_URL", f"expected sqlite://FILE or postgres://USER@HOST:PORT/DB, got {raw!r}")
    if scheme == "sqlite":
        path = raw.removeprefix("sqlite://")
        if not path or path == ":memory:":
            raise SettingsError("DATABASE_URL", "an SQLite database must be a file path")
        return raw
    parts = urlsplit(raw)
    if not parts.hostname or not parts.path.strip("/"):
        raise SettingsError("DATABASE_URL", f"needs a host and a database name, got {raw!r}")
    return "postgres://" + raw.split("://", 1)[1]


def _broker_url(raw: str) -> str:
    if raw == "memory://":
        return raw
    parts = urlsplit(raw)
    if parts.scheme not in ("amqp", "amqps") or not parts.hostname:
        raise SettingsError("BROKER_URL", f"expected memory:// or amqp://USER:PASS@HOST:PORT/, got {raw!r}")
    return raw


def _proxies(raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for item in filter(None, (part.strip() for part in raw.split(","))):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise SettingsError("TRUSTED_PROXIES", f"{item!r} is not an IP address or network") from None
    return tuple(networks)


def _whole(raw: str, name: str, low: int, high: int) -> int:
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise SettingsError(name, f"expected a whole number {low}-{high}, got {raw!r}")
    return int(raw)


def _batch_lines(raw: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise SettingsError("BILLING_BATCH_LINES", f"expected a whole number of lines 1-100000, got {raw!r}")
    return int(raw)


def _payer(raw: str) -> tuple[str, str, str, int, str, str]:
    parts = [part.strip() for part in raw.split(",")]
    widths = (10, 4, 3)
    if (
        len(parts) != 6
        or any(not (p.isdigit() and len(p) == w) for p, w in zip(parts[:3], widths, strict=False))
        or parts[3] not in ("1", "2")
        or not (parts[4].isdigit() and len(parts[4]) == 7)
        or not parts[5]
    ):
        raise SettingsError(
            "ZENGIN_PAYER", "expected CODE(10 digits),BANK(4),BRANCH(3),TYPE(1|2),ACCOUNT(7 digits),KANA NAME"
        )
    return parts[0], parts[1], parts[2], int(parts[3]), parts[4], parts[5]


def _port(raw: str, name: str = "PORT", *, zero: bool = False) -> int:
    if not raw.isdigit() or not (0 if zero else 1) <= int(raw) < 65536:
        raise SettingsError(name, f"expected a TCP port {'0' if zero else '1'}-65535, got {raw!r}")
    return int(raw)


def _management_url(raw: str) -> str:
    if raw and (urlsplit(raw).scheme not in ("http", "https") or not urlsplit(raw).hostname):
        raise SettingsError("RABBITMQ_MANAGEMENT_URL", f"expected http(s)://USER:PASS@HOST:15672, got {raw!r}")
    return raw.rstrip("/")


def _redis_url(raw: str) -> str:
    parts = urlsplit(raw)
    if raw and (parts.scheme not in ("redis", "rediss") or not parts.hostname):
        raise SettingsError("REDIS_URL", f"expected redis://HOST:PORT/DB (or rediss://), got {raw!r}")
    return raw


RATE_LIMITS = {  # setting name -> default, both from the dataclass
    name.removeprefix("rate_limit_").upper(): getattr(Settings, name)
    for name in Settings.__dataclass_fields__
    if name.startswith("rate_limit_")
}


def _rate_limits(env: Mapping[str, str]) -> dict[str, str]:
    """Every ``MATOMETE_RATE_LIMIT_*`` variable, checked by the ``limits`` library's parser."""
    from limits import parse_many

    values = {}
    for name, default in RATE_LIMITS.items():
        raw = env.get(f"{PREFIX}RATE_LIMIT_{name}", default).strip()
        try:
            parse_many(raw)
        except ValueError:
            raise SettingsError(
                f"RATE_LIMIT_{name}", f"expected limits like 30/minute or 10/minute;100/hour, got {raw!r}"
            ) from None
        values[f"rate_limit_{name.lower()}"] = raw
    return values


def _local_secret(directory: Path, name: str) -> str:
    """A secret generated once and kept in a file, so restarts keep sessions and tokens."""
    path = directory / name
    if path.exists():
        return path.read_text().strip()
    directory.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read and check every ``MATOMETE_*`` variable; raise ``SettingsError`` on the first bad one."""
    env = os.environ if env is None else env
    database_url = _database_url(env.get(PREFIX + "DATABASE_URL", f"sqlite://{DEFAULT_DATABASE_FILE}").strip())
    host = env.get(PREFIX + "HOST", "127.0.0.1").strip()
    if not host:
        raise SettingsError("HOST", "must not be empty")
    public_url = env.get(PREFIX + "PUBLIC_URL", "").strip().rstrip("/")
    if public_url and urlsplit(public_url).scheme not in ("http", "https"):
        raise SettingsError("PUBLIC_URL", f"expected an http(s) URL, got {public_url!r}")
    ops_token = env.get(PREFIX + "OPS_TOKEN") or None
    if ops_token is not None and len(ops_token) < 16:
        raise SettingsError("OPS_TOKEN", "must be at least 16 characters")
    settings = Settings(
        database_url=database_url,
        broker_url=_broker_url(env.get(PREFIX + "BROKER_URL", "memory://").strip()),
        ops_token=ops_token,
        test_clock=_flag(env, "TEST_CLOCK"),
        trusted_proxies=_proxies(env.get(PREFIX + "TRUSTED_PROXIES", "")),
        host=host,
        port=_port(env.get(PREFIX + "PORT", "8080").strip()),
        log_format=_choice(env, "LOG_FORMAT", LOG_FORMATS, "json"),
        log_level=_choice(env, "LOG_LEVEL", LOG_LEVELS, "info"),
        public_url=public_url,
        webhooks_allow_insecure=_flag(env, "WEBHOOKS_ALLOW_INSECURE"),
        billing_batch_lines=_batch_lines(env.get(PREFIX + "BILLING_BATCH_LINES", "2000").strip()),
        database_pool_size=_whole(
            env.get(PREFIX + "DATABASE_POOL_SIZE", str(DEFAULT_DATABASE_POOL_SIZE)).strip(),
            "DATABASE_POOL_SIZE",
            1,
            1000,
        ),
        web_processes=_whole(env.get(PREFIX + "WEB_PROCESSES", "1").strip(), "WEB_PROCESSES", 1, 256),
        zengin_payer=_payer(env.get(PREFIX + "ZENGIN_PAYER", "0000000000,0001,001,1,0000000,ﾏﾄﾒﾃ")),
        require_services=_flag(env, "REQUIRE_SERVICES"),
        rabbitmq_management_url=_management_url(env.get(PREFIX + "RABBITMQ_MANAGEMENT_URL", "").strip()),
        relay_metrics_port=_port(
            env.get(PREFIX + "RELAY_METRICS_PORT", "9300").strip(), "RELAY_METRICS_PORT", zero=True
        ),
        redis_url=_redis_url(env.get(PREFIX + "REDIS_URL", "").strip()),
        camara_dir=env.get(PREFIX + "CAMARA_DIR", "").strip(),
    )
    secret_key = env.get(PREFIX + "SECRET_KEY", "")
    if secret_key and len(secret_key) < 32:
        raise SettingsError("SECRET_KEY", "must be at least 32 characters")
    return settings.replace(secret_key=secret_key, **_rate_limits(env))


def read_broker_url(env: Mapping[str, str] | None = None) -> str:
    """Only ``MATOMETE_BROKER_URL``, checked: what ``queues`` needs at import."""
    env = os.environ if env is None else env
    return _broker_url(env.get(PREFIX + "BROKER_URL", "memory://").strip())


def ensure_local_secrets(settings: Settings) -> Settings:
    """Fill a missing ``SECRET_KEY`` and ``OPS_TOKEN`` with values generated once and kept in
    files beside the database (``matomete.secret_key``, ``matomete.ops_token``), so a restart
    keeps sessions and the token an operator already copied."""
    secret_key = settings.secret_key or _local_secret(settings.state_dir, "matomete.secret_key")
    ops_token = settings.ops_token or _local_secret(settings.state_dir, "matomete.ops_token")
    return settings.replace(secret_key=secret_key, ops_token=ops_token)
