"""Scratch PostgreSQL databases for the copy and import tests, created and dropped around each
test. The machine is shared: their names start with this branch's prefix (never another's)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from tests.pg import ADMIN_URL, database_url

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
        yield database_url(name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

