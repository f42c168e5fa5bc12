"""PostgreSQL going away answers 503 with Retry-After, never a 500, and the service comes back
by itself (issue 17: is_unavailable maps PostgreSQL's connection errors to the 503 path)."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
from starlette.testclient import TestClient

from promo.backends.postgresql import RetriesExhausted
from promo.config import Settings
from promo.db import DRIVER_ERRORS, is_unavailable
from tests.support.pg import ADMIN_URL

pytestmark = pytest.mark.postgresql_only("the PostgreSQL server dropping its connections; SQLite's counterpart: "
                                         "test_busy_database.py (the write lock held by another process)")


def test_connection_errors_and_exhausted_retries_are_unavailable_and_bugs_are_not(store: str) -> None:
    assert {psycopg.OperationalError, RetriesExhausted} <= set(DRIVER_ERRORS)
    assert is_unavailable(psycopg.OperationalError("server closed the connection unexpectedly"))
    assert is_unavailable(psycopg.errors.AdminShutdown("terminating connection due to administrator command"))
    assert is_unavailable(RetriesExhausted("PostgreSQL asked to rerun the transaction 5 times"))
    assert not is_unavailable(psycopg.errors.UndefinedTable("relation does not exist"))
    assert not is_unavailable(psycopg.errors.SyntaxError("syntax error"))


def test_a_server_that_drops_every_connection_is_a_503_then_the_service_resumes(
        client: TestClient, shop: sqlite3.Connection, settings: Settings) -> None:
    assert client.get("/offers/open-today").status_code == 200
    database = settings.database_url.rsplit("/", 1)[1] if settings.database_url else ""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        dropped = admin.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s",
                                (database,)).fetchone()
    assert dropped and dropped[0] >= 1
    statuses = [client.get("/offers/open-today") for _ in range(15)]
    first = statuses[0]
    assert first.status_code == 503 and first.headers["retry-after"] == "5" and "Traceback" not in first.text
    assert {r.status_code for r in statuses} <= {200, 503} and statuses[-1].status_code == 200
