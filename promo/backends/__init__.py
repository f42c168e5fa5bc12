"""Storage backends: SQLite (the embedded default) and PostgreSQL (issue 17).

The storage functions and their SQL are written once, against the `sqlite3.Connection`
surface (`execute`, `executemany`, rows by name and position). What the two stores spell
differently lives in one small `Dialect` per backend; a storage function that needs one of
those few fragments asks `dialect_of(conn)`. On PostgreSQL the connection is a
`pg_connection.PgConnection`, which offers that same surface over psycopg 3.
"""

from __future__ import annotations

from typing import Any

from promo.backends.dialect import Dialect
from promo.backends.sqlite import SQLITE

__all__ = ["Dialect", "RerunTransaction", "dialect_of"]


class RerunTransaction(Exception):
    """Raised inside a transaction that lost a race to another writer's COMMIT (PostgreSQL):
    roll it all back and run it again; the next run sees the winner's rows. The store's write
    (postgresql.in_transaction) reruns it as it does a serialization failure."""


def dialect_of(conn: Any) -> Dialect:
    """The dialect of a connection: its own (a PgConnection says), else SQLite's."""
    return getattr(conn, "dialect", SQLITE)
