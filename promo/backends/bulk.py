"""Bulk imports on either store: `insert_each(conn, sql, rows, refused)` (issue 17, item 6).

On SQLite it is promo.db.insert_each: one executemany, where a unique index refuses a row
and only that statement aborts. The one writer holds the file for the import's length.

On PostgreSQL a refused row would abort the whole transaction, and row-by-row inserts are
slow; instead the rows stream with `COPY` into a temporary staging table, the unique keys
are checked there in two set-based queries (a key repeated within the file, a key already
stored), the rows no key refuses move in with one INSERT ... SELECT in file order, and each
refused row is then handed to `refused(row)` as SQLite would have, in line order, so the
caller words its error exactly as on SQLite ("duplicate of line 2", "already in a code
pool"). All of it runs inside the caller's transaction (all or nothing). It takes only row
locks on the target: redemptions go on claiming and committing meanwhile.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from promo.backends import dialect_of
from promo.backends.names import column_list, quoted
from promo.backends.pg_connection import as_sqlite_errors
from promo.db import insert_each as insert_each_sqlite

STAGING = "promo_import_staging"
REFUSED = "promo_import_refused"
ORDINAL = "promo_n"  # the row's place in the file (staging only)
INSERT = re.compile(r"\s*INSERT INTO (\w+) \(([^)]*)\) VALUES \(([^)]*)\)\s*", re.IGNORECASE)


@dataclass(frozen=True)
class Insert:
    """A single-row `INSERT INTO t (a, b) VALUES (?, ?)` (or `(:a, :b)`), taken apart."""

    table: str
    columns: list[str]
    params: list[str]  # "?" each, or the names
    named: bool

    @classmethod
    def parse(cls, sql: str) -> Insert:
        match = INSERT.fullmatch(sql)
        if match is None:
            raise ValueError(f"not a single-row INSERT INTO t (columns) VALUES (parameters): {sql!r}")
        columns = [c.strip() for c in match[2].split(",")]
        params = [p.strip() for p in match[3].split(",")]
        named = all(p.startswith(":") for p in params)
        if len(params) != len(columns) or not (named or all(p == "?" for p in params)):
            raise ValueError(f"each column needs one parameter, all ? or all :name: {sql!r}")
        return cls(match[1], columns, [p[1:] for p in params] if named else params, named)

    def values(self, row: Any) -> tuple[Any, ...]:
        return tuple(row[name] for name in self.params) if self.named else tuple(row)

    def row(self, values: Iterable[Any]) -> Any:
        """The values read back from staging, in the shape the caller gave them."""
        return dict(zip(self.params, values, strict=True)) if self.named else tuple(values)


def insert_each(conn: Any, sql: str, rows: Iterable[Any], refused: Callable[[Any], bool]) -> int:
    """Insert every row the unique keys accept; `refused(row)` for each one they refuse
    (True: reported; False: not a refusal the caller expects, and IntegrityError is raised).
    How many went in. Call inside a transaction."""
    if dialect_of(conn).name != "postgresql":
        return insert_each_sqlite(conn, sql, rows, refused)
    insert = Insert.parse(sql)
    with as_sqlite_errors():  # a refusal no unique key explains (a CHECK, say): IntegrityError, as on SQLite
        return copy_insert(conn.raw, insert, rows, refused)


def copy_insert(raw: Any, insert: Insert, rows: Iterable[Any], refused: Callable[[Any], bool]) -> int:
    table, columns = quoted(insert.table), column_list(insert.columns)
    raw.execute(f"DROP TABLE IF EXISTS {STAGING}, {REFUSED}")
    # The target's own column types: COPY parses each value as the INSERT would have.
    raw.execute(f"CREATE TEMP TABLE {STAGING} ON COMMIT DROP AS SELECT {columns} FROM {table} WITH NO DATA")
    raw.execute(f"ALTER TABLE {STAGING} ADD COLUMN {ORDINAL} bigint")
    with raw.cursor() as cursor, cursor.copy(f"COPY {STAGING} ({columns}, {ORDINAL}) FROM STDIN") as copy:
        for n, row in enumerate(rows):
            copy.write_row((*insert.values(row), n))
    raw.execute(f"ANALYZE {STAGING}")
    raw.execute(f"CREATE TEMP TABLE {REFUSED} ({ORDINAL} bigint PRIMARY KEY) ON COMMIT DROP")
    for key in unique_keys(raw, insert):
        on, present = column_list(key), " AND ".join(f"{quoted(c)} IS NOT NULL" for c in key)
        raw.execute(  # a key seen earlier in the file, or already stored
            f"INSERT INTO {REFUSED} SELECT {ORDINAL} FROM (SELECT {ORDINAL}, row_number() OVER"
            f" (PARTITION BY {on} ORDER BY {ORDINAL}) AS nth FROM {STAGING} WHERE {present}) AS s WHERE nth > 1"
            f" UNION SELECT s.{ORDINAL} FROM {STAGING} s JOIN {table} t USING ({on})"
            f" ON CONFLICT DO NOTHING")
    inserted = raw.execute(
        f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {STAGING} s"
        f" WHERE NOT EXISTS (SELECT 1 FROM {REFUSED} r WHERE r.{ORDINAL} = s.{ORDINAL}) ORDER BY {ORDINAL}").rowcount
    with raw.cursor(name="promo_import_refusals") as cursor:  # few, but never all in memory at once
        cursor.execute(f"SELECT {columns} FROM {STAGING} JOIN {REFUSED} USING ({ORDINAL}) ORDER BY {ORDINAL}")
        for values in cursor:
            row = insert.row(values)
            if not refused(row):
                raise sqlite3.IntegrityError(f"{insert.table}: a unique key refused {_shown(insert, row)}")
    return int(inserted)


def unique_keys(raw: Any, insert: Insert) -> list[list[str]]:
    """The target's unique keys (constraints and non-partial unique indexes) over imported columns."""
    rows = raw.execute(
        "SELECT array_agg(a.attname ORDER BY array_position(i.indkey, a.attnum)) FROM pg_index i"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)"
        " WHERE i.indrelid = %s::regclass AND i.indisunique AND i.indpred IS NULL GROUP BY i.indexrelid",
        (quoted(insert.table),)).fetchall()
    return [list(key) for (key,) in rows if set(key) <= set(insert.columns)]


def _shown(insert: Insert, row: Any) -> str:
    """The row's line, not its values (they may be reward codes: secrets)."""
    values: Mapping[str, Any] = dict(zip(insert.columns, insert.values(row), strict=True))
    return f"the row of source_line {values['source_line']}" if "source_line" in values else "a row"
