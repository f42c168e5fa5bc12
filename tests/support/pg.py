"""PostgreSQL for tests: databases of their own, created and dropped around a test (the one
helper for it: the store fixture, the copy and import tests and `pg_url` all make theirs here).

PostgreSQL runs on every machine of this project (127.0.0.1:5432, trust auth); a test that
needs it fails loudly when it is not there, never skips. PROMO_TEST_PG_URL names another
server's maintenance database. The machine is shared: every database a test makes is named
PREFIX + random hex, and dropped (WITH FORCE) when the test ends.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from psycopg import pq

ADMIN_URL = os.environ.get("PROMO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PREFIX = "promo_test_"
# The baseline migration needs text sorted by code point (promo/migrations_pg/0023_baseline.sql),
# whatever the server's default: an empty database is made from template0 with C.UTF-8.
CODE_POINT_ORDER = "TEMPLATE template0 LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'"


def database_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


def admin(sql: str) -> None:
    """One statement on the maintenance database (CREATE/DROP DATABASE run outside a transaction)."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def create_database(template: str | None = None, *, kind: str = "") -> str:
    """A new database's name: empty, or a copy of `template` (a database no one is connected to)."""
    name = f"{PREFIX}{kind}{secrets.token_hex(6)}"
    admin(f'CREATE DATABASE "{name}" ' + (f'TEMPLATE "{template}"' if template else CODE_POINT_ORDER))
    return name


def drop_database(name: str) -> None:
    if not name.startswith(PREFIX):  # never another's database
        raise ValueError(f"not a test database: {name!r}")
    admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def scratch_database(template: str | None = None) -> Iterator[str]:
    """The URL of a new database (see create_database), dropped on leaving."""
    name = create_database(template)
    try:
        yield database_url(name)
    finally:
        drop_database(name)


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of an empty database of its own, dropped after the test."""
    with scratch_database() as url:
        yield url


class RoundTrips:
    count = 0


@contextmanager
def counting_round_trips(raw: psycopg.Connection[object]) -> Iterator[RoundTrips]:
    """Count the round trips on a connection while inside, from libpq's own trace of the wire
    protocol: each switch from messages the client sent (F) to messages the server sent (B) is
    one wait for the server."""
    counted = RoundTrips()
    with tempfile.TemporaryFile("w+") as trace:
        raw.pgconn.trace(trace.fileno())
        raw.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield counted
        finally:
            raw.pgconn.untrace()
            trace.seek(0)
            sides = [line.split("\t", 1)[0] for line in trace.read().splitlines() if line.strip()]
            counted.count = sum(1 for sent, got in zip(sides, sides[1:], strict=False) if (sent, got) == ("F", "B"))
