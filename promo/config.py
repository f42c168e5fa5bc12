"""Settings: config.toml, overridden by PROMO_* environment variables, read once.

Every setting has a default here and a documented line in config.toml. Secrets are never
read from config.toml itself: only from the environment or a file the config names.
A missing or malformed setting raises ConfigError naming the setting.
"""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promo.backends.store import StoreUrlError, make_store, sqlite_path
from promo.errors import ConfigError

ENV_PREFIX = "PROMO_"
CONFIG_ENV = "PROMO_CONFIG"


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("must be a non-empty string")
    return value


def _int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError("must be a whole number") from None


def _between(low: int, high: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        number = _int(value)
        if not low <= number <= high:
            raise ValueError(f"must be between {low} and {high}")
        return number

    return check


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}:
        return value.lower() in {"1", "true", "yes", "on"}
    raise ValueError("must be true or false")


def _choice(*options: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in options:
            raise ValueError(f"must be one of {', '.join(options)}")
        return str(value)

    return check


def _optional_str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _addresses(value: Any) -> tuple[str, ...]:
    """IP addresses or networks (a TOML list, or a comma-separated string from the
    environment); "*" trusts any peer. Empty: none."""
    items = [v.strip() for v in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, list | tuple):
        raise ValueError("must be a list of IP addresses or networks")
    out = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError(f"{item!r} is not an IP address or network")
        item = item.strip()
        if item not in ("", "*"):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"{item!r} is not an IP address or network") from None
        if item:
            out.append(item)
    return tuple(out)


def _shared_addresses(value: Any) -> tuple[str, ...]:
    """IP addresses or networks many accounts share (reviews.shared_addresses); "*" would turn
    the "many accounts from one address" flag off for everyone, so it is refused."""
    out = _addresses(value)
    if "*" in out:
        raise ValueError('"*" is not a shared address: list the addresses or networks')
    return out


class _Derived:
    """The default of a setting that follows from others when it is not set (see _derive)."""

    def __repr__(self) -> str:
        return "derived"


DERIVED: Any = _Derived()
# The development sink listens this far above server.port (8000 -> 8025), so one port
# setting moves both, and `promo relay` in another process finds the same sink.
SINK_PORT_OFFSET = 25
SMTP_PORT = 25
_port = _between(1, 65535)


# setting name -> (default, parser). The names are "section.key" as in config.toml.
SCHEMA: dict[str, tuple[Any, Callable[[Any], Any]]] = {
    "environment": ("development", _choice("development", "production")),
    "database.path": ("var/promo.sqlite3", _str),
    "database.url": (DERIVED, _str),
    "database.busy_timeout_ms": (5000, _int),
    "database.synchronous": ("FULL", _choice("FULL", "NORMAL")),
    "database.pool_size": (10, _between(1, 100)),
    "server.host": ("127.0.0.1", _str),
    "server.port": (8000, _port),
    "server.trusted_proxies": ((), _addresses),
    "server.workers": (1, _between(1, 64)),
    "logging.format": ("console", _choice("console", "json")),
    "logging.level": ("INFO", _choice("DEBUG", "INFO", "WARNING", "ERROR")),
    "security.secret_key_file": ("var/secret_key", _optional_str),
    "security.signin_link_minutes": (15, _int),
    "security.session_idle_minutes": (30, _int),
    "security.session_max_hours": (12, _int),
    "security.key_attempts_per_hour": (10, _int),
    "server.public_url": (DERIVED, _str),
    "reviews.receipts_dir": ("var/receipts", _str),
    "reviews.max_receipt_bytes": (5_000_000, _int),
    "reviews.shared_addresses": ((), _shared_addresses),
    "mail.host": ("127.0.0.1", _str),
    "mail.port": (DERIVED, _port),
    "mail.starttls": (False, _bool),
    "mail.username": ("", _optional_str),
    "mail.password_file": ("", _optional_str),
    "mail.timeout_seconds": (10, _int),
    "mail.from_address": ("Promo <no-reply@promo.invalid>", _str),
    "mail.message_id_domain": ("promo.invalid", _str),
    "mail.max_attempts": (8, _int),
    "mail.retry_base_seconds": (5, _int),
    "mail.resend_per_hour": (3, _int),
    "mail.relay": (True, _bool),
    "mail.connections": (4, _int),
    "mail.lease_seconds": (DERIVED, _int),
    "mail.sink": (DERIVED, _bool),
    "mail.sink_port": (DERIVED, _port),
    "metrics.access": (DERIVED, _choice("public", "loopback", "token")),
    "metrics.token_file": ("", _optional_str),
}
SECRET_NAMES = {"security.secret_key", "mail.password", "metrics.token"}


@dataclass(frozen=True)
class MailSettings:
    host: str
    port: int
    starttls: bool
    username: str
    password: str | None
    timeout_seconds: int
    from_address: str
    message_id_domain: str
    max_attempts: int
    retry_base_seconds: int
    resend_per_hour: int
    relay: bool  # run the outbox relay inside `promo serve`
    connections: int  # SMTP connections the relay sends on in parallel
    sink: bool  # run the local development sink (aiosmtpd) inside `promo serve`
    sink_port: int
    lease_seconds: int = 60  # a relay's hold on a batch: another relay sends what a dead one held after this


@dataclass(frozen=True)
class Settings:
    environment: str
    database_path: Path
    database_busy_timeout_ms: int
    database_synchronous: str
    server_host: str
    server_port: int
    trusted_proxies: tuple[str, ...]  # peers whose X-Forwarded-For/-Proto uvicorn believes
    logging_format: str
    logging_level: str
    secret_key: str | None
    signin_link_minutes: int
    session_idle_minutes: int
    session_max_hours: int
    key_attempts_per_hour: int
    public_url: str
    receipts_dir: Path
    max_receipt_bytes: int
    shared_addresses: tuple[str, ...]  # IPs or networks many accounts share: no "many accounts" flag (R-X12)
    mail: MailSettings
    metrics_access: str  # who may read /metrics: "public", "loopback" or "token"
    metrics_token: str | None
    # The PostgreSQL store when database.url names one (issue 17); None: the SQLite file
    # database_path (a sqlite:/// database.url sets database_path).
    database_url: str | None = None
    database_pool_size: int = 10  # PostgreSQL connections per process (README: the connection budget)
    server_workers: int = 1  # `promo serve` processes (more than 1 on PostgreSQL only, issue 18)

    @property
    def store_url(self) -> str:
        """database.url as promo.backends.store.open_store takes it, for either store."""
        return self.database_url or f"sqlite:///{self.database_path}"

    def require_secret_key(self) -> str:
        if not self.secret_key:
            raise ConfigError(
                "security.secret_key: not set. Set PROMO_SECRET_KEY or write it to the file "
                "named by security.secret_key_file (scripts/serve creates one for development)."
            )
        return self.secret_key

    def replace(self, **changes: Any) -> Settings:
        return Settings(**{**self.__dict__, **changes})


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def env_name(setting: str) -> str:
    return ENV_PREFIX + setting.replace(".", "_").upper()


def load_settings(config_path: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    path = Path(config_path or environ.get(CONFIG_ENV) or "config.toml")
    base = path.resolve().parent
    raw: dict[str, Any] = {}
    if path.exists():
        try:
            raw = _flatten(tomllib.loads(path.read_text(encoding="utf-8")))
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    elif config_path is not None or CONFIG_ENV in environ:
        raise ConfigError(f"{path}: config file not found")

    for name in raw:
        if name in SECRET_NAMES:
            raise ConfigError(f"{name}: secrets are not read from {path.name}; use {env_name(name)} or a file")
        if name not in SCHEMA:
            raise ConfigError(f"{name}: unknown setting in {path.name}")

    values: dict[str, Any] = {}
    for name, (default, parse) in SCHEMA.items():
        value = environ.get(env_name(name), raw.get(name, default))
        try:
            values[name] = value if value is DERIVED else parse(value)
        except ValueError as exc:
            source = env_name(name) if env_name(name) in environ else f"{name} in {path.name}"
            raise ConfigError(f"{name}: {exc} (got {value!r} from {source})") from None
    _derive(values)
    database_path, database_url = _database(values, base, explicit_path="database.path" in raw
                                            or env_name("database.path") in environ)

    return Settings(
        environment=values["environment"],
        database_path=database_path,
        database_url=database_url,
        database_busy_timeout_ms=values["database.busy_timeout_ms"],
        database_synchronous=values["database.synchronous"],
        database_pool_size=values["database.pool_size"],
        server_host=values["server.host"],
        server_port=values["server.port"],
        trusted_proxies=values["server.trusted_proxies"],
        server_workers=values["server.workers"],
        logging_format=values["logging.format"],
        logging_level=values["logging.level"],
        secret_key=_read_file_secret(environ, base, "security.secret_key", values["security.secret_key_file"], min_length=32),
        signin_link_minutes=values["security.signin_link_minutes"],
        session_idle_minutes=values["security.session_idle_minutes"],
        session_max_hours=values["security.session_max_hours"],
        key_attempts_per_hour=values["security.key_attempts_per_hour"],
        public_url=values["server.public_url"].rstrip("/"),
        receipts_dir=_resolve(base, values["reviews.receipts_dir"]),
        max_receipt_bytes=values["reviews.max_receipt_bytes"],
        shared_addresses=values["reviews.shared_addresses"],
        mail=MailSettings(
            host=values["mail.host"],
            port=values["mail.port"],
            starttls=values["mail.starttls"],
            username=values["mail.username"],
            password=_read_file_secret(environ, base, "mail.password", values["mail.password_file"], min_length=1),
            timeout_seconds=values["mail.timeout_seconds"],
            from_address=values["mail.from_address"],
            message_id_domain=values["mail.message_id_domain"],
            max_attempts=values["mail.max_attempts"],
            retry_base_seconds=values["mail.retry_base_seconds"],
            resend_per_hour=values["mail.resend_per_hour"],
            relay=values["mail.relay"],
            connections=values["mail.connections"],
            lease_seconds=values["mail.lease_seconds"],
            sink=values["mail.sink"],
            sink_port=values["mail.sink_port"],
        ),
        metrics_access=values["metrics.access"],
        metrics_token=_metrics_token(environ, base, values),
    )


def _derive(values: dict[str, Any]) -> None:
    """Fill the settings left unset from the ones that are (a set value always wins), and
    refuse what a production server must not run with. config.toml documents each rule."""
    production = values["environment"] == "production"
    if production and values["mail.sink"] is True:
        raise ConfigError("mail.sink: the development mail sink shows every sign-in link at /dev/mail and is refused "
                          "when environment = production; set mail.sink = false (PROMO_MAIL_SINK=false) and point "
                          "mail.host/mail.port at your SMTP server")
    if production and values["server.public_url"] is DERIVED:
        raise ConfigError("server.public_url: must be set when environment = production (the https address users "
                          "reach, used in the links sent by email), e.g. PROMO_SERVER_PUBLIC_URL=https://promo.example.com")
    if values["mail.sink"] is DERIVED:
        values["mail.sink"] = not production
    if values["mail.sink_port"] is DERIVED:
        values["mail.sink_port"] = values["server.port"] + SINK_PORT_OFFSET
        if values["mail.sink"] and values["mail.sink_port"] > 65535:
            raise ConfigError(f"mail.sink_port: server.port + {SINK_PORT_OFFSET} is past 65535; set mail.sink_port")
    if values["mail.port"] is DERIVED:
        values["mail.port"] = values["mail.sink_port"] if values["mail.sink"] else SMTP_PORT
    if values["mail.lease_seconds"] is DERIVED:
        values["mail.lease_seconds"] = values["mail.timeout_seconds"] * 3 + 30
    if values["mail.lease_seconds"] < 2 * values["mail.timeout_seconds"]:
        raise ConfigError(f"mail.lease_seconds: {values['mail.lease_seconds']} leaves a batch too little time; use at "
                          f"least 2 x mail.timeout_seconds ({2 * values['mail.timeout_seconds']})")
    if values["server.public_url"] is DERIVED:
        values["server.public_url"] = f"http://{_url_host(values['server.host'])}:{values['server.port']}"
    if values["metrics.access"] is DERIVED:
        values["metrics.access"] = "loopback" if production else "public"


def _database(values: dict[str, Any], base: Path, *, explicit_path: bool) -> tuple[Path, str | None]:
    """(database_path, database_url) from database.path and database.url: a sqlite:/// URL names
    the file (relative to the config's folder), a postgresql:// URL the PostgreSQL store. A
    wrong URL stops start-up here, naming database.url and never repeating a password."""
    path = _resolve(base, values["database.path"])
    url = values["database.url"]
    if url is DERIVED:
        return path, None
    try:
        make_store(url, base=base)  # parses only: nothing is opened or connected
    except StoreUrlError as exc:
        raise ConfigError(str(exc)) from None
    if not url.lower().startswith("sqlite:"):
        return path, url
    file = sqlite_path(url, base)
    if explicit_path and file != path:
        raise ConfigError(f"database.url: names {file} but database.path names {path}; set one of them")
    return file, None


def _url_host(host: str) -> str:
    """The host part of a URL that reaches a server listening on `host` from this machine."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _metrics_token(environ: Mapping[str, str], base: Path, values: dict[str, Any]) -> str | None:
    token = _read_file_secret(environ, base, "metrics.token", values["metrics.token_file"], min_length=32)
    if values["metrics.access"] == "token" and not token:
        raise ConfigError("metrics.token: metrics.access = \"token\" needs a token of at least 32 characters in "
                          "PROMO_METRICS_TOKEN or the file named by metrics.token_file")
    if token is not None and len(token) < 32:
        raise ConfigError("metrics.token: fewer than 32 characters")
    return token


def _resolve(base: Path, value: str) -> Path:
    path = Path(value)
    return path if path.is_absolute() else base / path


def _read_file_secret(environ: Mapping[str, str], base: Path, name: str, file_setting: str, *, min_length: int) -> str | None:
    """A secret from PROMO_<NAME> or from the file the config names (None if neither)."""
    from_env = environ.get(env_name(name))
    if from_env:
        return from_env
    if not file_setting:
        return None
    path = _resolve(base, file_setting)
    if not path.exists():
        return None
    secret = path.read_text(encoding="utf-8").strip()
    if len(secret) < min_length:
        raise ConfigError(f"{name}_file: {path} holds fewer than {min_length} characters")
    return secret
