"""What every `promo` command shares: the exit codes, turning domain errors into a message
and an exit code (never a traceback), and a migrated synchronous connection."""

from __future__ import annotations

import json
import sqlite3
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any, NoReturn, ParamSpec, TypeVar

import click
import psycopg

from promo.backends import pg_connection
from promo.backends.notify import announce_if_queued
from promo.backends.store import pending_migrations, reason, redacted
from promo.config import Settings
from promo.db import connect
from promo.errors import ConfigError, InputError, NotFound
from promo.timeutil import parse_instant, utcnow

EXIT_OK, EXIT_REFUSED, EXIT_BAD_INPUT = 0, 1, 2
CLI_ACTOR = "cli"
P = ParamSpec("P")
R = TypeVar("R")
PG_CONNECT_TIMEOUT_S = 10


def fail(message: str, code: int = EXIT_BAD_INPUT) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def handles_errors(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn domain errors into a clear message and exit code 2, never a traceback."""

    @wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            for error in exc.errors:
                click.echo(f"error: {error}", err=True)
            if exc.total > len(exc.errors):
                click.echo(f"error: … and {exc.total - len(exc.errors)} more", err=True)
            sys.exit(EXIT_BAD_INPUT)
        except (NotFound, ConfigError) as exc:
            fail(str(exc))
        except sqlite3.OperationalError as exc:
            fail(f"database: {exc} (has `promo migrate` been run?)")
        except psycopg.Error as exc:
            fail(f"database: {reason(exc)} (has `promo migrate` been run?)")

    return wrapper


@contextmanager
def database(settings: Settings) -> Iterator[sqlite3.Connection]:
    """A connection to the store database.url names (on PostgreSQL, the adapter that the
    storage functions take for a sqlite3.Connection)."""
    if settings.database_url:
        try:
            conn: Any = pg_connection.connect(settings.database_url, connect_timeout=PG_CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            fail(f"database.url: cannot open {redacted(settings.database_url)}: {reason(exc)}")
    else:
        settings.database_path.parent.mkdir(parents=True, exist_ok=True)
        conn = connect(settings.database_path, busy_timeout_ms=settings.database_busy_timeout_ms,
                       synchronous=settings.database_synchronous)
    try:
        yield conn
        announce_if_queued(conn)  # PostgreSQL: the relays of every instance send what this command queued now
    finally:
        conn.close()


def migrated(conn: sqlite3.Connection) -> sqlite3.Connection:
    pending = pending_migrations(conn)
    if pending:
        fail(f"the database needs migrations ({', '.join(n for _, n, _ in pending)}): run `promo migrate`")
    return conn


def instant_option(value: str | None, field: str) -> Any:
    return parse_instant(value, field) if value else utcnow()


def emit(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))
