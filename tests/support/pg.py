"""PostgreSQL for tests: a fresh database per test, created and dropped around it.

PostgreSQL runs on every machine of this project (127.0.0.1:5432, trust auth); a test that
needs it fails loudly when it is not there, never skips. PROMO_TEST_PG_URL names another
server's maintenance database.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import psycopg
import pytest

ADMIN_URL = os.environ.get("PROMO_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
# This machine is shared: every database a test makes starts with its owner's prefix.
PREFIX = "promo_test_"


def database_url(name: str) -> str:
    base, _, _ = ADMIN_URL.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    """The URL of an empty database of its own, dropped after the test."""
    name = PREFIX + secrets.token_hex(6)
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(name)
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
