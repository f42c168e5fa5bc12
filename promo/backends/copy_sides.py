"""The two ends `promo db copy` reads from and writes to: a SQLite file or a PostgreSQL database.

Each side answers the same few questions about its schema (tables, columns, primary key,
the tables a table refers to, the schema version, which columns hold an instant), reads a
table in primary key order inside one snapshot, and writes one bounded batch per
transaction (PostgreSQL: `COPY ... FROM STDIN`; SQLite: one executemany).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, cast

import psycopg

from promo.audit import Checkpoint, head
from promo.backends import pg_connection, pg_schema
from promo.backends.names import column_list, quoted
from promo.backends.pg_connection import PgConnection
from promo.db import connect as connect_sqlite
from promo.migrate import migrate as migrate_sqlite

# Bookkeeping, not data: each store keeps its own migration history (PostgreSQL starts at
# its baseline), and SQLite's internal tables are its own.
NOT_COPIED = frozenset({"schema_migrations", "sqlite_sequence", "sqlite_stat1", "sqlite_stat4"})

Row = Sequence[Any]


class Side(Protocol):
    name: str  # the URL without its password, for messages
    conn: Any  # what the domain functions take (audit.verify_chain): sqlite3 or PgConnection

    def tables(self) -> list[str]: ...
    def columns(self, table: str) -> list[str]: ...
    def time_columns(self, table: str) -> set[str]: ...
    def primary_key(self, table: str) -> list[str]: ...
    def refers_to(self, table: str) -> set[str]: ...
    def version(self) -> int | None: ...
    def migrate(self) -> list[str]: ...
    def count(self, table: str) -> int: ...
    def begin_snapshot(self) -> None: ...
    def snapshot_head(self) -> Checkpoint: ...
    def end_snapshot(self) -> None: ...
    def rows(self, table: str, columns: list[str], batch_rows: int) -> Iterator[list[Row]]: ...
    def write(self, table: str, columns: list[str], rows: list[Row]) -> None: ...
    def finish(self) -> None: ...
    def close(self) -> None: ...


class SqliteSide:
    def __init__(self, path: Path, name: str):
        self.name = name
        self.conn = connect_sqlite(path)
        self._raw = connect_sqlite(path)  # plain tuples for the copy itself (no sqlite3.Row per row)
        self._raw.row_factory = None

    def tables(self) -> list[str]:
        return [r[0] for r in self._raw.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                if r[0] not in NOT_COPIED]

    def columns(self, table: str) -> list[str]:
        return [r[1] for r in self._raw.execute(f"PRAGMA table_info({quoted(table)})")]

    def time_columns(self, table: str) -> set[str]:
        return set()  # SQLite keeps instants as db_time text: nothing to check on the way in

    def primary_key(self, table: str) -> list[str]:
        info = sorted((r[5], r[1]) for r in self._raw.execute(f"PRAGMA table_info({quoted(table)})") if r[5])
        return [name for _, name in info]

    def refers_to(self, table: str) -> set[str]:
        return {r[2] for r in self._raw.execute(f"PRAGMA foreign_key_list({quoted(table)})")} - {table}

    def version(self) -> int | None:
        if self._raw.execute("SELECT 1 FROM sqlite_master WHERE name = 'schema_migrations'").fetchone() is None:
            return None
        return int(self._raw.execute("SELECT COALESCE(max(version), 0) FROM schema_migrations").fetchone()[0])

    def migrate(self) -> list[str]:
        return migrate_sqlite(self.conn)

    def count(self, table: str) -> int:
        return int(self._raw.execute(f"SELECT count(*) FROM {quoted(table)}").fetchone()[0])

    def begin_snapshot(self) -> None:
        self._raw.execute("BEGIN")  # WAL: the file as of the first read, until COMMIT

    def snapshot_head(self) -> Checkpoint:
        return head(self._raw)  # the same snapshot as the rows copied

    def end_snapshot(self) -> None:
        self._raw.execute("COMMIT")

    def rows(self, table: str, columns: list[str], batch_rows: int) -> Iterator[list[Row]]:
        order = self.primary_key(table) or ["rowid"]
        cursor = self._raw.execute(f"SELECT {column_list(columns)} FROM {quoted(table)} ORDER BY {column_list(order)}")
        while batch := cursor.fetchmany(batch_rows):
            yield batch

    def write(self, table: str, columns: list[str], rows: list[Row]) -> None:
        marks = ", ".join("?" for _ in columns)
        self._raw.execute("BEGIN IMMEDIATE")
        try:
            self._raw.executemany(f"INSERT INTO {quoted(table)} ({column_list(columns)}) VALUES ({marks})", rows)
        except BaseException:
            self._raw.execute("ROLLBACK")
            raise
        self._raw.execute("COMMIT")

    def finish(self) -> None:
        """Nothing to set: an INTEGER PRIMARY KEY (AUTOINCREMENT too) continues after the largest id inserted."""

    def close(self) -> None:
        self._raw.close()
        self.conn.close()


class PostgresSide:
    def __init__(self, url: str, name: str):
        self.name = name
        self.conn: PgConnection = pg_connection.connect(url)
        self._raw: psycopg.Connection[Any] = self.conn.raw

    def _all(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self._raw.execute(sql, params).fetchall()

    def tables(self) -> list[str]:
        return [r[0] for r in self._all("SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
                                        " AND table_type = 'BASE TABLE' ORDER BY table_name") if r[0] not in NOT_COPIED]

    def columns(self, table: str) -> list[str]:
        return [r[0] for r in self._all("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                                        " AND table_name = %s ORDER BY ordinal_position", (table,))]

    def time_columns(self, table: str) -> set[str]:
        return {r[0] for r in self._all("SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
                                        " AND table_name = %s AND data_type = 'timestamp with time zone'", (table,))}

    def primary_key(self, table: str) -> list[str]:
        return [r[0] for r in self._all(
            "SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
            " WHERE i.indrelid = %s::regclass AND i.indisprimary ORDER BY array_position(i.indkey, a.attnum)", (quoted(table),))]

    def refers_to(self, table: str) -> set[str]:
        return {r[0] for r in self._all("SELECT confrelid::regclass::text FROM pg_constraint WHERE contype = 'f'"
                                        " AND conrelid = %s::regclass", (quoted(table),))} - {table}

    def version(self) -> int | None:
        if not pg_schema.applied_versions(self.conn):
            return None
        return max(pg_schema.applied_versions(self.conn))

    def migrate(self) -> list[str]:
        return pg_schema.migrate(self.conn)

    def count(self, table: str) -> int:
        return int(self._all(f"SELECT count(*) FROM {quoted(table)}")[0][0])

    def begin_snapshot(self) -> None:
        self._raw.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")

    def snapshot_head(self) -> Checkpoint:
        # The same connection, so the same snapshot as the rows copied. The adapter offers the
        # sqlite3.Connection surface the storage functions are typed with (pg_connection.py).
        return head(cast(sqlite3.Connection, self.conn))

    def end_snapshot(self) -> None:
        self._raw.execute("COMMIT")

    def rows(self, table: str, columns: list[str], batch_rows: int) -> Iterator[list[Row]]:
        order = self.primary_key(table) or columns
        with self._raw.cursor(name=f"promo_copy_{table}") as cursor:  # server-side: a batch at a time
            cursor.execute(f"SELECT {column_list(columns)} FROM {quoted(table)} ORDER BY {column_list(order)}")
            while batch := cursor.fetchmany(batch_rows):
                yield batch

    def write(self, table: str, columns: list[str], rows: list[Row]) -> None:
        with self._raw.transaction(), self._raw.cursor() as cursor:
            with cursor.copy(f"COPY {quoted(table)} ({column_list(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)

    def finish(self) -> None:
        """Each identity continues after the largest id copied (the ids were given, not drawn)."""
        for table, column in pg_connection.read_identities(self._raw).items():
            self._raw.execute(
                f"SELECT setval(pg_get_serial_sequence(%s, %s), COALESCE(max({quoted(column)}), 1), max({quoted(column)}) IS NOT NULL)"
                f" FROM {quoted(table)}", (quoted(table), column))

    def close(self) -> None:
        self.conn.close()
