"""The schema's migrations: the numbered SQL files in promo/migrations, applied in order,
each in its own transaction, and recorded in schema_migrations (`promo migrate`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from importlib import resources

from promo.db import transaction
from promo.timeutil import db_now

MIGRATIONS_PACKAGE = "promo.migrations"


def available_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for each numbered file in promo/migrations, in order."""
    found = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def applied_versions(conn: sqlite3.Connection) -> set[int]:
    try:
        return {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    except sqlite3.OperationalError:  # a database never migrated: nothing applied
        return set()


def pending_migrations(conn: sqlite3.Connection) -> list[tuple[int, str, str]]:
    done = applied_versions(conn)
    return [m for m in available_migrations() if m[0] not in done]


def migrate(conn: sqlite3.Connection) -> list[str]:
    """Apply pending migrations, each in its own transaction. Returns the names applied."""
    applied = []
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    for version, name, sql in pending_migrations(conn):
        with transaction(conn):
            # executescript would COMMIT our transaction first; run statement by statement.
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (:v, :n, :t)",
                {"v": version, "n": name, "t": db_now()},
            )
        applied.append(name)
    return applied


def _statements(script: str) -> Iterator[str]:
    buffer = ""
    for line in script.splitlines(keepends=True):
        if line.lstrip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                yield buffer.strip()
            buffer = ""
    if buffer.strip():
        raise ValueError(f"incomplete SQL statement at end of migration: {buffer.strip()[:80]!r}")
