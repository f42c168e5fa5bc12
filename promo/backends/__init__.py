"""Storage backends: SQLite (the embedded default) and PostgreSQL (issue 17).

The storage functions and their SQL are written once, against the `sqlite3.Connection`
surface (`execute`, `executemany`, rows by name and position). What the two stores spell
differently lives in one small `Dialect` per backend; a storage function that needs one of
those few fragments asks `dialect_of(conn)`. On PostgreSQL the connection is a
`pg_connection.PgConnection`, which offers that same surface over psycopg 3.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from promo.backends.dialect import Dialect
from promo.backends.sqlite import SQLITE

__all__ = ["Dialect", "RerunTransaction", "ask", "connection_number", "dialect_of", "pipelined", "recover", "settle"]

F = TypeVar("F", bound=Callable[..., Any])


class RerunTransaction(Exception):
    """Raised inside a transaction that lost a race to another writer's COMMIT (PostgreSQL):
    roll it all back and run it again; the next run sees the winner's rows. The store's write
    (postgresql.in_transaction) reruns it as it does a serialization failure."""


def dialect_of(conn: Any) -> Dialect:
    """The dialect of a connection: its own (a PgConnection says), else SQLite's."""
    return getattr(conn, "dialect", SQLITE)


def pipelined(fn: F) -> F:
    """Marks a write function whose statements PostgreSQL's write may queue and send together
    (PgConnection.pipeline: those whose answers it does not read cost no round trip of their
    own). Its promise: where it catches a statement's error, it reads that statement's result,
    or calls settle(conn), inside the `try`, and calls recover(conn) in the `except` before its
    next statement; an error it does not catch may surface at a later statement or at COMMIT.
    SQLite: nothing changes."""
    setattr(fn, "pipelined", True)  # noqa: B010 (a function attribute mypy does not know)
    return fn


def is_pipelined(fn: Callable[..., Any]) -> bool:
    return getattr(fn, "pipelined", False) is True


def settle(conn: Any) -> None:
    """Wait for every statement queued on conn (PostgreSQL's pipeline), raising the first one's
    error here. Nothing to wait for, or SQLite: nothing, and no round trip."""
    wait = getattr(conn, "settle", None)
    if wait is not None:
        wait()


def recover(conn: Any) -> None:
    """In an `except` of a pipelined function, before its next statement: the answers still
    queued behind the error are collected, none raised, and the server takes statements again
    (PostgreSQL skips them after an error until a sync). SQLite: nothing."""
    again = getattr(conn, "recover", None)
    if again is not None:
        again()


def connection_number(conn: Any) -> int:
    """A number that differs between the connections writing at once: PostgreSQL's backend pid
    (known without asking the server); SQLite has one writer, so 0."""
    return int(getattr(conn, "backend_pid", 0))


class Asked:
    """A statement asked for now and read later (fetchone, fetchall): see ask()."""

    def __init__(self, run: Callable[[], Any]):
        self._run: Callable[[], Any] | None = run
        self._cursor: Any = None

    def _ran(self) -> Any:
        if self._run is not None:
            self._cursor, self._run = self._run(), None
        return self._cursor

    def fetchone(self) -> Any:
        return self._ran().fetchone()

    def fetchall(self) -> list[Any]:
        return list(self._ran().fetchall())


def ask(conn: Any, run: Callable[[], Any]) -> Asked:
    """`run` (a conn.execute) asked for now, read later. In a pipeline (PostgreSQL's pipelined
    write) it is sent at once, and goes out with what is asked after it; elsewhere (SQLite, or
    PostgreSQL outside a pipeline) asking early buys nothing, so it runs when first read: a
    decision that stops early (a replay, the guess cap) runs no statement it does not read."""
    asked = Asked(run)
    if getattr(conn, "pipelining", False):
        asked._ran()
    return asked
