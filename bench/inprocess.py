"""Where a redemption's CPU goes, without HTTP (issue 18's cost model, bench/README.md).

    .venv/bin/python bench/inprocess.py                      # about a minute
    .venv/bin/python bench/inprocess.py --redemptions 500 --pools 10

1. One at a time on one connection, SQLite then PostgreSQL, the same data (the shipped offer, a
   fresh account and key each): statements per redemption (the connection's trace callback),
   round trips (libpq's trace, on a sample apart), CPU of this process and of the PostgreSQL
   backend (/proc) per redemption, and WAL written per redemption (`pg_current_wal_lsn()`
   before and after). On PostgreSQL twice: through `redeem_sync` (each statement waits for its
   answer) and as the service's store writes it (`in_transaction`, pipelined).
2. Through `PostgresDatabase` (the pool on worker threads the service uses), 64 redemptions in
   flight, for each pool size: redemptions/s, this process's and the backends' CPU per redemption.
Figures are per redemption; compare them within one run (this machine drifts by ±30 %).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.sampling import CpuMeter, backend_pids, cpu_seconds  # noqa: E402
from promo.backends import pg_connection, pg_schema  # noqa: E402
from promo.backends.postgresql import PostgresDatabase, in_transaction  # noqa: E402
from promo.campaign_store import get_campaign, save_campaign  # noqa: E402
from promo.campaigns import parse_campaign_file, shipped_campaign_text  # noqa: E402
from promo.catalog import load_catalog, shipped_catalog, upsert_skus  # noqa: E402
from promo.db import connect, transaction  # noqa: E402
from promo.migrate import migrate  # noqa: E402
from promo.redemption import RedeemRequest, redeem, redeem_sync, redeem_unit  # noqa: E402
from tests.support.database import product_key  # noqa: E402
from tests.support.pg import ADMIN_URL, counting_round_trips, scratch_database  # noqa: E402
from tests.support.redemption import add_activations, add_codes  # noqa: E402

SLUG = "office365-xbox-gold-2013"
NOW = datetime(2013, 9, 1, 12, tzinfo=UTC)
IN_FLIGHT = 64
SAMPLE = 20  # redemptions whose round trips are counted (from a trace, apart from the CPU figures)


def load(conn: Any, n: int) -> None:
    """The shipped offer (unbound keys allowed), n activation records and n codes."""
    with transaction(conn):
        upsert_skus(conn, shipped_catalog())
        campaign = parse_campaign_file(shipped_campaign_text(SLUG), load_catalog(conn))
        save_campaign(conn, replace(campaign, allow_unbound_keys=True), actor="bench", now=datetime(2013, 7, 1, tzinfo=UTC))
    add_activations(conn, [(i, "O365-HOME-ESD", "DK", None) for i in range(n)])
    add_codes(conn, get_campaign(conn, SLUG), n)


def request(i: int) -> RedeemRequest:
    return RedeemRequest(campaign=SLUG, account_email=f"u{i}@example.com", product_key=product_key(i), terms_accepted=True)


def backend_seconds(conn: Any) -> float:
    if not hasattr(conn, "raw"):
        return 0.0
    return cpu_seconds(conn.raw.execute("SELECT pg_backend_pid()").fetchone()[0]) or 0.0


def by_redeem_sync(conn: Any, i: int) -> bool:
    """The redemption as the CLI and tests run it: each statement waits for its answer."""
    return redeem_sync(conn, request(i).normalized(), NOW, guess_limit=10**6).redeemed


def by_service_write(conn: Any, i: int) -> bool:
    """The redemption as the service's PostgreSQL store runs it: in_transaction, pipelined."""
    return in_transaction(conn, redeem_unit, (request(i).normalized(), NOW), {"guess_limit": 10**6, "alone": True}).redeemed


def one_at_a_time(conn: Any, keys: range, redeem_one: Callable[[Any, int], bool] = by_redeem_sync) -> dict[str, float]:
    n = len(keys)
    statements: collections.Counter[str] = collections.Counter()
    conn.set_trace_callback(lambda sql: statements.update([sql]))
    server0, app0 = backend_seconds(conn), time.process_time()
    redeemed = sum(redeem_one(conn, i) for i in keys)
    app, server = time.process_time() - app0, backend_seconds(conn) - server0
    conn.set_trace_callback(None)
    assert redeemed == n, f"{redeemed} of {n} redeemed"
    return {"statements": sum(statements.values()) / n, "app_ms": app / n * 1000, "server_ms": server / n * 1000}


def round_trips(conn: Any, keys: range, redeem_one: Callable[[Any, int], bool]) -> float:
    """Waits for the server per redemption, from libpq's trace (apart: tracing costs CPU)."""
    counted = []
    for i in keys:
        with counting_round_trips(conn.raw) as trips:
            assert redeem_one(conn, i)
        counted.append(trips.count)
    return sum(counted) / len(counted)


@contextmanager
def pg_database(n: int) -> Iterator[str]:
    """A scratch PostgreSQL database (tests.support.pg) with the schema and load(n); its URL."""
    with scratch_database() as url:
        conn = pg_connection.connect(url)
        pg_schema.migrate(conn)
        conn.close()
        conn = pg_connection.connect(url)  # after the migration: it reads the identity columns
        load(conn, n)
        conn.close()
        yield url


async def in_flight(db: Any, n: int, at_once: int = IN_FLIGHT) -> dict[str, float]:
    """n redemptions through a store (the service's Database or PostgresDatabase), `at_once` in
    flight: redemptions/s and this process's CPU ms per redemption."""
    gate = asyncio.Semaphore(at_once)

    async def one(i: int) -> bool:
        async with gate:
            return (await redeem(db, request(i), NOW, guess_limit=10**6)).redeemed

    app0, started = time.process_time(), time.perf_counter()
    redeemed = sum(await asyncio.gather(*(one(i) for i in range(n))))
    wall, app = time.perf_counter() - started, time.process_time() - app0
    assert redeemed == n, f"{redeemed} of {n} redeemed"
    return {"per_s": n / wall, "app_ms": app / n * 1000}


async def through_pool(url: str, n: int, pool: int) -> dict[str, float]:
    async with PostgresDatabase(url, pool_size=pool) as db:
        server = CpuMeter(backend_pids(ADMIN_URL, url.rpartition("/")[2])).start()
        got = await in_flight(db, n)
        server_s = server.stop()
    return got | {"server_ms": server_s / n * 1000}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--redemptions", type=int, default=2000)
    parser.add_argument("--pools", type=int, nargs="+", default=[1, 4, 10])
    args = parser.parse_args()
    n = args.redemptions

    with tempfile.TemporaryDirectory() as tmp:
        sqlite = connect(Path(tmp) / "inprocess.sqlite3")
        migrate(sqlite)
        load(sqlite, n)
        lite = one_at_a_time(sqlite, range(n))
        sqlite.close()
    with pg_database(2 * n + 2 * SAMPLE) as url:
        conn = pg_connection.connect(url)
        lsn = conn.raw.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        pg = one_at_a_time(conn, range(n))
        wal = int(conn.raw.execute("SELECT pg_current_wal_lsn() - %s::pg_lsn", (str(lsn),)).fetchone()[0])
        piped = one_at_a_time(conn, range(n, 2 * n), by_service_write)
        trips = {way.__name__: round_trips(conn, range(2 * n + k * SAMPLE, 2 * n + (k + 1) * SAMPLE), way)
                 for k, way in enumerate((by_redeem_sync, by_service_write))}
        conn.close()
    print(f"one at a time, {n} redemptions           statements   round trips   app ms   server ms")
    print(f"  SQLite                                   {lite['statements']:6.1f}                {lite['app_ms']:6.2f}")
    print(f"  PostgreSQL, redeem_sync                  {pg['statements']:6.1f}   {trips['by_redeem_sync']:11.1f}"
          f"   {pg['app_ms']:6.2f}   {pg['server_ms']:6.2f}   WAL {wal / n:,.0f} bytes per redemption")
    print(f"  PostgreSQL, the service's write          {piped['statements']:6.1f}   {trips['by_service_write']:11.1f}"
          f"   {piped['app_ms']:6.2f}   {piped['server_ms']:6.2f}   (pipelined)")
    print(f"through PostgresDatabase, {IN_FLIGHT} in flight      per s   app ms   server ms")
    for pool in args.pools:
        with pg_database(n) as url:
            got = asyncio.run(through_pool(url, n, pool))
        print(f"  pool of {pool:2d}                            {got['per_s']:6.0f}   {got['app_ms']:6.2f}   {got['server_ms']:6.2f}")


if __name__ == "__main__":
    main()
