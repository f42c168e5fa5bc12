"""Redemptions during a 1,000,000-code import, on SQLite and on PostgreSQL (issue 17, item 6).

    .venv/bin/python bench/import_under_load.py                  # both stores, about 5 minutes
    .venv/bin/python bench/import_under_load.py --stores postgresql --codes 200000

For each store, one process: the service's own store object (promo.db.Database: one writer
with group commit; promo.backends.postgresql.PostgresDatabase: a pool on worker threads)
serves `promo.redemption.redeem` to `--clients` concurrent tasks, each a fresh account and
product key (the shipped offer, keys bound to no account). After `--baseline` seconds, the
import of a `--codes`-line CSV file starts through `run_writer`, as a console upload does
(promo/jobs.py); the redemptions go on. Printed per store: redemptions per second and p50,
p99 and longest latency before and during the import, the import's length, and the ratio
during/before. SQLite's import holds the one write lock for its whole transaction; on
PostgreSQL it COPYs into a staging table and moves the rows in with one INSERT ... SELECT
(promo/backends/bulk.py), so redemptions need not wait for it.

The import's CSV parsing runs in this same process (as an upload does) and holds the GIL
while it runs: that costs the redemptions on both stores alike. Read ratios within one run:
the machine is shared.

PostgreSQL: a database promo_test_bench_<random> on PROMO_BENCH_PG_ADMIN's server, dropped after.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from promo.activations import import_activations  # noqa: E402
from promo.backends import pg_connection, pg_schema  # noqa: E402
from promo.backends.postgresql import PostgresDatabase  # noqa: E402
from promo.campaign_store import get_campaign, save_campaign  # noqa: E402
from promo.campaigns import parse_campaign_file, shipped_campaign_text  # noqa: E402
from promo.catalog import load_catalog, shipped_catalog, upsert_skus  # noqa: E402
from promo.codes import import_codes  # noqa: E402
from promo.db import Database, transaction  # noqa: E402
from promo.db import connect as connect_sqlite  # noqa: E402
from promo.migrate import migrate as migrate_sqlite  # noqa: E402
from promo.redemption import RedeemRequest, redeem  # noqa: E402

ADMIN_URL = os.environ.get("PROMO_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
SLUG = "office365-xbox-gold-2013"
DURING = datetime(2013, 9, 1, 12, 0, tzinfo=UTC)  # inside the shipped offer's windows


def product_key(n: int) -> str:
    raw = f"PK{n:023d}"
    return "-".join(raw[i:i + 5] for i in range(0, 25, 5))


def reward_code(n: int) -> str:
    raw = f"XB{n:023d}"
    return "-".join(raw[i:i + 5] for i in range(0, 25, 5))


def write_csv(path: Path, header: list[str], rows: Any) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def prepare(conn: Any, work: Path, keys: int) -> None:
    """The shipped catalog and offer (keys bound to no account), `keys` activation records and
    as many free codes: through the same storage functions on both stores."""
    with transaction(conn):
        upsert_skus(conn, shipped_catalog())
        campaign = parse_campaign_file(shipped_campaign_text(SLUG), load_catalog(conn))
        save_campaign(conn, replace(campaign, allow_unbound_keys=True), actor="bench", now=datetime(2013, 7, 1, tzinfo=UTC))
    records = write_csv(work / "keys.csv", ["product_key", "sku", "country", "purchased_at", "activated_at"],
                        ([product_key(n), "O365-HOME-ESD", "DK", "2013-08-01", "2013-08-02"] for n in range(keys)))
    import_activations(conn, source=str(records), catalog=load_catalog(conn), now=DURING, actor="bench")
    stored = get_campaign(conn, SLUG)
    pool = write_csv(work / "pool.csv", ["code"], ([reward_code(n)] for n in range(keys)))
    import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source=str(pool), source_name="pool.csv",
                 now=DURING, actor="bench")


@contextmanager
def postgres_database() -> Any:
    name = f"promo_test_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE \"{name}\" TEMPLATE template0 LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8'")
    try:
        yield ADMIN_URL.rpartition("/")[0] + "/" + name
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Phase:
    seconds: float
    completed: int
    latencies: list[float]

    def line(self, label: str) -> str:
        ms = sorted(x * 1000 for x in self.latencies)
        if not ms:
            return f"  {label:<16} no redemption completed in {self.seconds:.1f} s"
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        return (f"  {label:<16} {self.completed:>6} redemptions in {self.seconds:5.1f} s = {self.rate:7.1f}/s   "
                f"p50 {statistics.median(ms):7.1f} ms   p99 {p99:7.1f} ms   longest {ms[-1]:7.1f} ms")

    @property
    def rate(self) -> float:
        return self.completed / self.seconds if self.seconds else 0.0

    @property
    def p99(self) -> float:
        ms = sorted(self.latencies)
        return ms[min(len(ms) - 1, int(len(ms) * 0.99))] * 1000 if ms else float("nan")


async def measure(db: Any, import_file: Path, *, clients: int, baseline_s: float, keys: int) -> tuple[Phase, Phase, float, int]:
    done: list[tuple[float, float]] = []  # (started at, finished at)
    next_key = iter(range(keys))
    stop = asyncio.Event()
    failures = 0

    async def client() -> None:
        nonlocal failures
        while not stop.is_set():
            n = next(next_key, None)
            if n is None:
                return
            request = RedeemRequest(campaign=SLUG, account_email=f"bench{n}@example.com", product_key=product_key(n),
                                    terms_accepted=True)
            started = time.perf_counter()
            result = await redeem(db, request, DURING)
            finished = time.perf_counter()
            if not result.redeemed:
                failures += 1
            done.append((started, finished))

    def run_import(conn: Any) -> int:
        stored = get_campaign(conn, SLUG)
        return import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source=str(import_file),
                            source_name="restock.csv", now=DURING, actor="bench").imported

    tasks = [asyncio.create_task(client()) for _ in range(clients)]
    await asyncio.sleep(1.0)  # warm up: pools full, caches warm
    t0 = time.perf_counter()
    await asyncio.sleep(baseline_s)
    t1 = time.perf_counter()
    imported = await db.run_writer(run_import)
    t2 = time.perf_counter()
    stop.set()
    await asyncio.gather(*tasks)
    if failures:
        print(f"  ({failures} redemptions refused: out of keys or codes?)")
    # Throughput: completions within the phase. Latency: every redemption in flight at some
    # point of the phase (one that waited out the whole import counts, though it ended after).
    before = Phase(t1 - t0, sum(t0 <= end < t1 for _, end in done), [end - start for start, end in done if t0 <= start and end < t1])
    during = Phase(t2 - t1, sum(t1 <= end < t2 for _, end in done), [end - start for start, end in done if start < t2 and end >= t1])
    return before, during, t2 - t1, imported


def run_store(store: str, args: argparse.Namespace, import_file: Path, work: Path) -> tuple[Phase, Phase, float]:
    place: AbstractContextManager[Any] = postgres_database() if store == "postgresql" else nullcontext(work / "bench.sqlite3")
    with place as where:
        started = time.perf_counter()
        if store == "postgresql":
            conn = pg_connection.connect(where)
            pg_schema.migrate(conn)
            conn.close()
            conn = pg_connection.connect(where)  # after the migration: it reads the identity columns
        else:
            conn = connect_sqlite(where)
            migrate_sqlite(conn)
        prepare(conn, work, args.keys)
        conn.close()
        print(f"{store}: prepared {args.keys} keys and codes in {time.perf_counter() - started:.1f} s")
        make: Callable[[], Any] = (lambda: PostgresDatabase(where)) if store == "postgresql" else (lambda: Database(where))

        async def main() -> tuple[Phase, Phase, float, int]:
            async with make() as db:
                return await measure(db, import_file, clients=args.clients, baseline_s=args.baseline, keys=args.keys)

        before, during, import_s, imported = asyncio.run(main())
    print(f"{store}: import of {imported} codes took {import_s:.1f} s while {args.clients} clients redeemed")
    print(before.line("before import"))
    print(during.line("during import"))
    print(f"  during/before: throughput {during.rate / before.rate if before.rate else float('nan'):.2f}x, "
          f"p99 {during.p99 / before.p99 if before.latencies else float('nan'):.1f}x")
    return before, during, import_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stores", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"])
    parser.add_argument("--codes", type=int, default=1_000_000, help="lines of the imported file")
    parser.add_argument("--keys", type=int, default=60_000, help="activation records and pooled codes (redemptions available)")
    parser.add_argument("--clients", type=int, default=16, help="concurrent redemptions")
    parser.add_argument("--baseline", type=float, default=10.0, help="seconds of redemptions before the import")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()[0]:.1f}; {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="promo_test_bench_") as tmp:
        work = Path(tmp)
        import_file = write_csv(work / "restock.csv", ["code"], ([reward_code(10_000_000 + n)] for n in range(args.codes)))
        for store in args.stores:
            run_store(store, args, import_file, work)
            print(f"load average now: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
