"""Choosing the store from `database.url` (issue 17, item 1), for promo.config and promo.app.

`sqlite:///var/promo.sqlite3` (relative to the config file's folder; `sqlite:////abs/path`
for an absolute one) or `postgresql://user@host:port/dbname`. A wrong URL, or a PostgreSQL
that cannot be reached, stops start-up with a message that names the setting and never
repeats a password.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg_pool

from promo.backends import dialect_of, pg_schema
from promo.backends.postgresql import POOL_SIZE, POOL_TIMEOUT_S, PostgresDatabase
from promo.db import Database
from promo.migrate import migrate as migrate_sqlite
from promo.migrate import pending_migrations as pending_sqlite

T = TypeVar("T")
SETTING = "database.url"
SCHEMES = ("sqlite", "postgresql", "postgres")


class Store(Protocol):
    """What the service asks of a database, on either backend (promo.db.Database, PostgresDatabase)."""

    @property
    def is_open(self) -> bool: ...
    async def open(self) -> Any: ...
    async def close(self) -> None: ...
    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...
    async def lookup(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...
    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...
    async def write_grouped(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...
    async def run_writer(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T: ...
    def pool_stats(self) -> dict[str, Any]: ...
    groups_writes: bool  # write_grouped shares a transaction among calls (SQLite), or not (PostgreSQL)


class StoreUrlError(ValueError):
    """database.url is not a URL Promo can use; the message names the setting."""


class StoreUnavailable(RuntimeError):
    """database.url names a store that could not be opened now; the message names the setting."""


def redacted(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    userinfo, at, host = parts.netloc.rpartition("@")
    if not at or ":" not in userinfo:
        return url
    return urlunsplit(parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{host}"))


def sqlite_path(url: str, base: Path) -> Path:
    """The file of a sqlite:/// URL: relative to `base` (the config file's folder) unless absolute."""
    rest = url[len("sqlite://"):]
    if not rest.startswith("/") or rest == "/":
        raise StoreUrlError(f"{SETTING}: write sqlite:///relative/file.sqlite3 or sqlite:////absolute/file.sqlite3, not {url!r}")
    path = Path(rest[1:])
    return path if path.is_absolute() else base / path


def make_store(url: str, *, base: Path, timeout_s: float = POOL_TIMEOUT_S, pool_size: int = POOL_SIZE,
               **sqlite_options: Any) -> Database | PostgresDatabase:
    """The store database.url names, not yet opened (SQLite's options: busy timeout, synchronous;
    PostgreSQL's: how long open() waits for its connections, and how many it keeps)."""
    scheme = url.partition(":")[0].lower()
    if scheme not in SCHEMES or "://" not in url:
        raise StoreUrlError(f"{SETTING}: {redacted(url)!r} is not a database URL: use sqlite:///var/promo.sqlite3 "
                            "or postgresql://user@host:5432/dbname")
    if scheme == "sqlite":
        return Database(sqlite_path(url, base), **sqlite_options)
    parts = urlsplit(url)
    if not parts.hostname or not parts.path.strip("/"):
        raise StoreUrlError(f"{SETTING}: {redacted(url)!r} names no host or no database (postgresql://user@host:5432/dbname)")
    try:
        parts.port  # noqa: B018  (urlsplit checks the port only when asked)
    except ValueError:
        raise StoreUrlError(f"{SETTING}: {redacted(url)!r} has a port that is not a number from 1 to 65535") from None
    return PostgresDatabase(url, timeout_s=timeout_s, pool_size=pool_size)


async def open_store(url: str, *, base: Path, timeout_s: float = POOL_TIMEOUT_S, pool_size: int = POOL_SIZE,
                     **sqlite_options: Any) -> Database | PostgresDatabase:
    """make_store, opened; StoreUnavailable (naming database.url) when it cannot be reached."""
    store = make_store(url, base=base, timeout_s=timeout_s, pool_size=pool_size, **sqlite_options)
    try:
        return await store.open()
    except (psycopg.Error, psycopg_pool.PoolTimeout, OSError) as exc:
        why = reason(exc)
        if isinstance(exc, psycopg_pool.PoolTimeout):  # the pool only says it waited: ask the server once why
            why = await _connect_error(url, timeout_s) or why
        raise StoreUnavailable(f"{SETTING}: cannot open {redacted(url)}: {why}") from None


async def _connect_error(url: str, timeout_s: float) -> str | None:
    try:
        conn = await psycopg.AsyncConnection.connect(url, connect_timeout=max(1, int(timeout_s)))
    except psycopg.Error as exc:
        return reason(exc)
    await conn.close()
    return None


def reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]


def migrate(conn: Any) -> list[str]:
    """`promo migrate` on either store's connection: the numbered files of its backend."""
    if dialect_of(conn).name == "postgresql":
        return pg_schema.migrate(conn)
    return migrate_sqlite(conn)


def pending_migrations(conn: Any) -> list[tuple[int, str, str]]:
    """(version, name, sql) of the migrations `promo migrate` would apply to this store."""
    if dialect_of(conn).name == "postgresql":
        done = pg_schema.applied_versions(conn)
        return [m for m in pg_schema.available_migrations() if m[0] not in done]
    return pending_sqlite(conn)
