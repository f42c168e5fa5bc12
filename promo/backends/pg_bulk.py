"""db.insert_each on PostgreSQL: a bulk import that goes on past a refused row.

SQLite undoes only the statement a constraint refuses; PostgreSQL aborts the whole
transaction. So the rows go in chunks, each under a SAVEPOINT: a chunk that holds a refused
row is undone and replayed row by row, each row under its own SAVEPOINT, so only the refused
ones are left out (refusals are rare: duplicates in a file). Issue 17 item 6 replaces this
with COPY into a staging table for the code and activation imports.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections.abc import Callable, Iterable
from typing import Any

from promo.backends.pg_connection import PgConnection

CHUNK = 1000  # rows per executemany: one savepoint each, and the most replayed one by one


def insert_each(conn: PgConnection, sql: str, rows: Iterable[Any], refused: Callable[[Any], bool]) -> int:
    """As promo.db.insert_each (inside the caller's transaction): how many rows went in."""
    inserted = 0
    source = iter(rows)
    while chunk := list(itertools.islice(source, CHUNK)):
        conn.execute("SAVEPOINT bulk_chunk")
        try:
            conn.executemany(sql, chunk)
        except sqlite3.IntegrityError:  # ConstraintViolation: some row of the chunk was refused
            conn.execute("ROLLBACK TO bulk_chunk")
            conn.execute("RELEASE bulk_chunk")
            inserted += _one_by_one(conn, sql, chunk, refused)
            continue
        conn.execute("RELEASE bulk_chunk")
        inserted += len(chunk)
    return inserted


def _one_by_one(conn: PgConnection, sql: str, chunk: list[Any], refused: Callable[[Any], bool]) -> int:
    inserted = 0
    for row in chunk:
        conn.execute("SAVEPOINT bulk_row")
        try:
            conn.execute(sql, row)
        except sqlite3.IntegrityError:
            conn.execute("ROLLBACK TO bulk_row")
            conn.execute("RELEASE bulk_row")
            if not refused(row):
                raise
            continue
        conn.execute("RELEASE bulk_row")
        inserted += 1
    return inserted
