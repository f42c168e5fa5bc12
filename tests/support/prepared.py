"""What every test's database starts with: migrated, the shipped catalog and the shipped
Office 365 -> Xbox Live Gold campaign, on either store."""

from __future__ import annotations

from typing import Any

from promo.backends import dialect_of, pg_connection
from promo.backends.postgresql import PostgresDatabase
from promo.backends.store import make_store, pending_migrations
from promo.config import Settings
from promo.db import connect
from tests.support.database import prepare, prepare_database


def connect_to(settings: Settings) -> Any:
    """A connection of its own to the settings' store (as the CLI or a worker would have)."""
    return pg_connection.connect(settings.database_url) if settings.database_url else connect(settings.database_path)


def prepared_store(settings: Settings) -> Any:
    """A connection to the settings' store, prepared (on PostgreSQL a database cloned from the
    prepared template already is; an empty one is prepared here)."""
    if not settings.database_url:
        return prepare_database(settings.database_path)
    conn = pg_connection.connect(settings.database_url)
    return prepare(conn) if pending_migrations(conn) else conn


# PostgreSQL's connections are shared by everyone on this machine: a test's pool stays small.
TEST_POOL_SIZE = 4


def store_of(settings: Settings) -> Any:
    """The service's store for these settings, not yet opened (`async with store_of(s) as db`)."""
    if settings.database_url:
        return PostgresDatabase(settings.database_url, pool_size=TEST_POOL_SIZE)
    return make_store(settings.store_url, base=settings.database_path.parent)


def dump_text(conn: Any) -> str:
    """Every row of every table as text (SQLite's iterdump; on PostgreSQL each row's text form),
    to check that a secret is stored nowhere."""
    if dialect_of(conn).name == "sqlite":
        return "\n".join(conn.iterdump())
    tables = [row[0] for row in conn.execute("SELECT table_name FROM information_schema.tables"
                                             " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'")]
    return "\n".join(str(row[0]) for table in tables
                     for row in conn.execute(f'SELECT t::text FROM "{table}" t'))  # noqa: S608 - names from the schema
