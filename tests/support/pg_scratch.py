"""Scratch PostgreSQL databases for the copy and import tests, created and dropped around each
test. The machine is shared: their names start with this branch's prefix (never another's)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

# The server tests/pg.py uses (not imported from it: test modules load that one as a pytest
# plugin, and a module imported before that cannot be loaded as one).
ADMIN_URL = os.environ.get("PROMO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")

PREFIX = "h17r_"


@contextmanager
def scratch_database(template: str | None = None) -> Iterator[str]:
    """The URL of a new database (text sorted by code point, as the baseline requires): empty,
    or a copy of `template` (the name of another scratch database no one is connected to)."""
    name = PREFIX + secrets.token_hex(6)
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"' if template else
                      f"CREATE DATABASE \"{name}\" TEMPLATE template0 LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'")
    try:
        yield f"{ADMIN_URL.rpartition('/')[0]}/{name}"
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

