"""Code and activation imports on PostgreSQL (issue 17, item 6): COPY into a staging table,
checked there, moved in with one INSERT ... SELECT. The same bad file gets the same errors,
line by line, as on SQLite; a refused file leaves nothing; and a redemption completes while
a large import runs in another transaction."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from promo.activations import import_activations
from promo.backends import pg_connection, pg_schema
from promo.backends.pg_connection import PgConnection
from promo.campaign_store import get_campaign, save_campaign
from promo.campaigns import parse_campaign_file, shipped_campaign_text
from promo.catalog import load_catalog, shipped_catalog, upsert_skus
from promo.codes import import_codes
from promo.db import transaction
from promo.errors import InputError
from promo.redemption import RedeemRequest, redeem_sync
from tests.support.database import DURING, SLUG, csv_bytes, product_key, reward_code
from tests.support.pg import scratch_database

CODE = [reward_code(n) for n in range(10)]
KEY = [product_key(n) for n in range(10)]
ACTIVATION_HEADER = ["product_key", "sku", "country", "purchased_at", "activated_at", "account_email"]


def record(key: str, sku: str = "O365-HOME-ESD", country: str = "DK", purchased: str = "2013-08-01") -> list[str]:
    return [key, sku, country, purchased, "2013-08-02", ""]


@pytest.fixture(scope="module")
def template() -> Iterator[str]:
    """Migrated, with the same start as the SQLite `conn` fixture: the shipped catalog and
    campaign. Each test gets a copy (CREATE DATABASE ... TEMPLATE: much faster than migrating)."""
    with scratch_database() as url:
        conn = pg_connection.connect(url)
        pg_schema.migrate(conn)
        conn.close()
        conn = pg_connection.connect(url)  # after the migration: it reads the identity columns
        with transaction(conn):
            upsert_skus(conn, shipped_catalog())
            campaign = parse_campaign_file(shipped_campaign_text(SLUG), load_catalog(conn))
            save_campaign(conn, replace(campaign, allow_unbound_keys=True), actor="test", now=datetime(2013, 7, 1, tzinfo=UTC))
        conn.close()
        yield url.rpartition("/")[2]


@pytest.fixture
def pg_url(template: str) -> Iterator[str]:
    with scratch_database(template) as url:
        yield url


@pytest.fixture
def pg(pg_url: str) -> Iterator[PgConnection]:
    conn = pg_connection.connect(pg_url)
    yield conn
    conn.close()


def codes(conn: Any, rows: list[list[str]], header: list[str] | None = None) -> int:
    stored = get_campaign(conn, SLUG)
    return import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source=csv_bytes(header or ["code"], rows),
                        source_name="t.csv", now=DURING).imported


def activations(conn: Any, rows: list[list[str]]) -> int:
    return import_activations(conn, source=csv_bytes(ACTIVATION_HEADER, rows), catalog=load_catalog(conn), now=DURING)


def counts(conn: Any) -> tuple[int, ...]:
    return tuple(conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                 for t in ("reward_codes", "code_batches", "activations", "audit_events"))


def refusal(conn: Any, importer: Any, rows: list[list[str]]) -> tuple[list[str], int]:
    """The errors (as printed) and their total; nothing stored from the file."""
    before = counts(conn)
    with pytest.raises(InputError) as info:
        importer(conn, rows)
    assert counts(conn) == before  # all or nothing
    return [str(e) for e in info.value.errors], info.value.total


CODE_FILES = {
    "repeated in the file": [[CODE[1]], [CODE[2]], [CODE[1]], [CODE[1]]],
    "already pooled, twice": [[CODE[3]], [CODE[0]], [CODE[4]], [CODE[0]]],
    "pattern errors around duplicates": [["bad"], [CODE[5]], [CODE[5]], ["x" * 30], [CODE[0]], ["bad"], [CODE[6]]],
    "wrong width": [[CODE[5], "2014-01-01"], [CODE[5]], [CODE[5]]],
    # More than the report holds: the earliest lines are reported, whatever kind they are.
    "over the cap, duplicates first": [[CODE[7]]] * 60 + [["bad"]] * 90 + [[CODE[0]]] * 20,
    "over the cap, duplicates last": [["bad"]] * 90 + [[CODE[8]]] * 30 + [[CODE[0]]],
    "no codes": [],
}

ACTIVATION_FILES = {
    "repeated in the file": [record(KEY[1]), record(KEY[2]), record(KEY[1])],
    "already recorded": [record(KEY[3]), record(KEY[0]), record(KEY[0])],
    "bad fields around duplicates": [record(KEY[4], sku="NOPE"), record(KEY[4]), record(KEY[4], country="XX"),
                                     record(KEY[4]), record(KEY[5], purchased="2013-13-01")],
    "over the cap": [record(KEY[6])] * 70 + [record(KEY[7], sku="NOPE")] * 50,
}


def with_a_pooled_code(conn: Any) -> Any:
    codes(conn, [[CODE[0]]])
    activations(conn, [record(KEY[0])])
    return conn


@pytest.mark.parametrize("rows", CODE_FILES.values(), ids=CODE_FILES.keys())
def test_a_bad_code_file_gets_the_same_errors_on_both_stores(conn: sqlite3.Connection, pg: PgConnection,
                                                             rows: list[list[str]]) -> None:
    on_sqlite = refusal(with_a_pooled_code(conn), codes, rows)
    on_postgresql = refusal(with_a_pooled_code(pg), codes, rows)
    assert on_postgresql == on_sqlite
    assert on_sqlite[1] > 0


@pytest.mark.parametrize("rows", ACTIVATION_FILES.values(), ids=ACTIVATION_FILES.keys())
def test_a_bad_activation_file_gets_the_same_errors_on_both_stores(conn: sqlite3.Connection, pg: PgConnection,
                                                                   rows: list[list[str]]) -> None:
    on_sqlite = refusal(with_a_pooled_code(conn), activations, rows)
    on_postgresql = refusal(with_a_pooled_code(pg), activations, rows)
    assert on_postgresql == on_sqlite


def test_the_errors_name_lines_as_the_sqlite_path_does(pg: PgConnection) -> None:
    """Spelled out once, so that both stores cannot agree on something wrong."""
    errors, total = refusal(with_a_pooled_code(pg), codes, CODE_FILES["pattern errors around duplicates"])
    assert total == 5 and errors[:3] == ["line 2: code: does not match the pool's pattern ^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$",
                                         "line 4: code: duplicate of line 3", errors[2]]
    assert errors[3:] == ["line 6: code: already in a code pool", errors[4]] and errors[4].startswith("line 7: code: does not match")


def test_a_good_file_stores_the_same_rows_on_both_stores(conn: sqlite3.Connection, pg: PgConnection) -> None:
    rows = [[CODE[2], "2014-01-01"], [CODE[1], ""], [CODE[3], "2014-02-01T10:00:00Z"]]
    stored = []
    for store in (conn, pg):
        assert codes(with_a_pooled_code(store), rows, ["code", "expires_at"]) == 3
        assert activations(store, [record(KEY[2]), record(KEY[1])]) == 2
        pooled = store.execute("SELECT id, code, expires_at, batch_id, source_line FROM reward_codes ORDER BY id")
        stored.append(([tuple(r) for r in pooled],
                       [tuple(r) for r in store.execute("SELECT product_key, source_line FROM activations ORDER BY product_key")]))
    assert stored[1] == stored[0]
    assert [r[1] for r in stored[0][0]] == [CODE[0], CODE[2], CODE[1], CODE[3]]  # ids follow the file's order


def test_a_redemption_completes_while_a_large_import_runs(pg: PgConnection, pg_url: str) -> None:
    codes(pg, [[CODE[0]]])
    activations(pg, [record(KEY[1])])
    big = csv_bytes(["code"], [[reward_code(n)] for n in range(100, 200_100)])
    importer = pg_connection.connect(pg_url)
    outcome: dict[str, Any] = {}

    def run_import() -> None:
        stored = get_campaign(importer, SLUG)
        outcome["report"] = import_codes(importer, campaign_id=stored.id, campaign=stored.campaign, source=big,
                                         source_name="big.csv", now=DURING)
        outcome["done"] = time.monotonic()

    thread = threading.Thread(target=run_import)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not importer.in_transaction:  # the import's transaction is open (its batch row is written)
            assert time.monotonic() < deadline and thread.is_alive()
            time.sleep(0.01)
        request = RedeemRequest(campaign=SLUG, account_email="ann@example.com", product_key=KEY[1], terms_accepted=True)
        result = redeem_sync(pg, request.normalized(), DURING)
        redeemed = time.monotonic()
        assert result.redeemed and result.code == CODE[0]
        assert thread.is_alive(), "the import ended before the redemption: make the file larger"
    finally:
        thread.join(timeout=120)
        importer.close()
    assert outcome["report"].imported == 200_000 and outcome["done"] > redeemed
    assert pg.execute("SELECT count(*) FROM reward_codes WHERE issued_at IS NULL").fetchone()[0] == 200_000
