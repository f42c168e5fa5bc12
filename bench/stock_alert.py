"""What the low-stock check costs each redemption (promo.stock.alert_if_low, issue 18 item 2),
on both stores, as the pool grows.

    .venv/bin/python bench/stock_alert.py
    PROMO_BENCH_CODE=/path/to/other/checkout .venv/bin/python bench/stock_alert.py   # "before"

A redemption of a campaign with a low-stock threshold runs the check in its transaction;
while stock is above the threshold the alert is armed and nothing is written. The
threshold here is a tenth of the pool (an alert "when 10 % is left"). Until issue 18 the
check counted free codes through the index, up to the threshold; now it reads counters
(codes per batch, the redemption counter's shards, the codes past their expiry) and whether
the alert has fired in one statement. Prints microseconds per check (the median of ROUNDS
rounds of CALLS calls, each in a transaction as the redemption's).
"""

from __future__ import annotations

import os
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

sys.path.insert(0, os.environ.get("PROMO_BENCH_CODE", str(Path(__file__).resolve().parent.parent)))

import psycopg  # noqa: E402

from promo.backends import pg_connection, pg_schema  # noqa: E402
from promo.campaign_store import get_campaign, save_campaign  # noqa: E402
from promo.campaigns import parse_campaign_file, shipped_campaign_text  # noqa: E402
from promo.catalog import load_catalog, shipped_catalog, upsert_skus  # noqa: E402
from promo.codes import import_codes  # noqa: E402
from promo.db import connect, transaction  # noqa: E402
from promo.migrate import migrate  # noqa: E402
from promo.stock import alert_if_low  # noqa: E402
from tests.support.database import DURING, SLUG, csv_bytes, reward_code  # noqa: E402

ADMIN_URL = os.environ.get("PROMO_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
POOLS = (1_000, 100_000)
ROUNDS, CALLS = 5, 200


def load(conn: Any, pool: int) -> None:
    with transaction(conn):
        upsert_skus(conn, shipped_catalog())
        campaign = parse_campaign_file(shipped_campaign_text(SLUG), load_catalog(conn))
        save_campaign(conn, replace(campaign, low_stock_threshold=pool // 10), actor="bench", now=DURING)
    stored = get_campaign(conn, SLUG)
    import_codes(conn, campaign_id=stored.id, campaign=stored.campaign,
                 source=csv_bytes(["code"], [[reward_code(i)] for i in range(pool)]), source_name="bench.csv", now=DURING)


def per_check_us(conn: Any) -> float:
    stored = get_campaign(conn, SLUG)
    rounds = []
    for _ in range(ROUNDS):
        with transaction(conn):
            started = time.perf_counter()
            for _ in range(CALLS):
                assert not alert_if_low(conn, stored, now=DURING)
            rounds.append((time.perf_counter() - started) / CALLS * 1e6)
    return statistics.median(rounds)


def sqlite_figure(pool: int) -> float:
    with tempfile.TemporaryDirectory() as folder:
        conn = connect(Path(folder) / "bench.sqlite3")
        migrate(conn)
        load(conn, pool)
        conn.execute("ANALYZE")
        try:
            return per_check_us(conn)
        finally:
            conn.close()


def postgresql_figure(pool: int) -> float:
    name = f"promo_test_stock_alert_{secrets.token_hex(4)}"
    url = ADMIN_URL.rpartition("/")[0] + "/" + name
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'")
    try:
        conn = pg_connection.connect(url)
        pg_schema.migrate(conn)
        conn.close()
        conn = pg_connection.connect(url)
        load(conn, pool)
        conn.raw.execute("VACUUM ANALYZE")
        try:
            return per_check_us(conn)
        finally:
            conn.close()
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    print(f"code: {sys.path[0]}; alert_if_low, armed, threshold a tenth of the pool: microseconds per check")
    for pool in POOLS:
        print(f"  {pool:>7,} codes: SQLite {sqlite_figure(pool):9.1f} µs   PostgreSQL {postgresql_figure(pool):9.1f} µs")


if __name__ == "__main__":
    main()
