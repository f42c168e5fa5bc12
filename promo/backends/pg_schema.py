"""`promo migrate` on PostgreSQL: the numbered files of promo/migrations_pg, each in its
own transaction (PostgreSQL's DDL is transactional: a failed migration leaves nothing)."""

from __future__ import annotations

from importlib import resources

from promo.backends.pg_connection import PgConnection
from promo.timeutil import db_now

MIGRATIONS_PACKAGE = "promo.migrations_pg"


def available_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for each numbered file, in order."""
    found = []
    for entry in resources.files(MIGRATIONS_PACKAGE).iterdir():
        if entry.name.endswith(".sql") and entry.name[:4].isdigit():
            found.append((int(entry.name[:4]), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def applied_versions(conn: PgConnection) -> set[int]:
    exists = conn.raw.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return set()
    return {int(version) for (version,) in conn.raw.execute("SELECT version FROM schema_migrations").fetchall()}


def migrate(conn: PgConnection) -> list[str]:
    """Apply the pending migrations; the names applied. The files are run whole (no
    parameters: a migration's SQL is the package's own, and may hold '%')."""
    conn.raw.execute("CREATE TABLE IF NOT EXISTS schema_migrations"
                     " (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)")
    done = applied_versions(conn)
    applied = []
    for version, name, sql in available_migrations():
        if version in done:
            continue
        with conn.raw.transaction():
            conn.raw.execute(sql.encode("utf-8"))  # bytes: the simple protocol, many statements at once
            conn.raw.execute("INSERT INTO schema_migrations (version, name, applied_at) VALUES (%s, %s, %s)",
                             (version, name, db_now()))
        applied.append(name)
    if applied:
        conn.reread_identities()
    return applied
