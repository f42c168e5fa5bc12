"""Who waits for whom on the redemption path (issue 18 item 2): N redemptions on PostgreSQL
from C connections at once, through promo.redemption.redeem on PostgresDatabase, with the
lock waits sampled from pg_stat_activity meanwhile.

    .venv/bin/python bench/hot_rows.py                          # 8, 16 and 32 connections
    .venv/bin/python bench/hot_rows.py --connections 16 --redemptions 4000 --cap
    PROMO_BENCH_CODE=/path/to/other/checkout .venv/bin/python bench/hot_rows.py   # "before"

Each run redeems fresh accounts and keys on the shipped campaign (unbound keys allowed, a
code for every request). `--cap` gives the campaign a total cap far above the runs, so a
capped campaign's one counter row is measured. A thread samples pg_stat_activity every
SAMPLE_S seconds: the share of the run's active backend samples spent waiting for a lock,
split by what was waited for (the relation of the row or the lock, or "advisory"), and the
statement the waiter was running. Prints one block per run; figures vary with the
machine's load (2 cores shared): compare runs of one invocation.

`--without-chain` leaves out the audit event of a redemption (promo.redemption's
append_event becomes a no-op): today every append takes one advisory lock (the chain's
head), which serialises whole transactions and hides every other wait; without it the run
shows what else redemptions would still wait for (the chain's own fix is another branch's).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import os
import secrets
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.environ.get("PROMO_BENCH_CODE", str(Path(__file__).resolve().parent.parent)))

import psycopg  # noqa: E402

from promo import redemption  # noqa: E402
from promo.backends import pg_connection, pg_schema  # noqa: E402
from promo.backends.postgresql import PostgresDatabase  # noqa: E402
from promo.campaign_store import get_campaign, save_campaign  # noqa: E402
from promo.campaigns import parse_campaign_file, shipped_campaign_text  # noqa: E402
from promo.catalog import load_catalog, shipped_catalog, upsert_skus  # noqa: E402
from promo.db import transaction  # noqa: E402
from promo.redemption import RedeemRequest, redeem  # noqa: E402
from tests.support.database import DURING, SLUG, product_key  # noqa: E402
from tests.support.redemption import add_activations, add_codes  # noqa: E402

ADMIN_URL = os.environ.get("PROMO_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
SAMPLE_S = 0.005

# Each non-idle backend of the bench database but the sampler's: what it waits for, the
# relation of the lock it waits on (a row lock: the tuple lock it holds or waits on), and
# the statement it runs.
SAMPLE = """
SELECT a.wait_event_type, a.wait_event,
       COALESCE(w.relation::regclass::text, t.relation::regclass::text, w.locktype) AS what,
       left(regexp_replace(a.query, '\\s+', ' ', 'g'), 60) AS query
FROM pg_stat_activity a
LEFT JOIN LATERAL (SELECT locktype, relation FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted LIMIT 1) w ON true
LEFT JOIN LATERAL (SELECT relation FROM pg_locks l WHERE l.pid = a.pid AND l.locktype = 'tuple' LIMIT 1) t ON true
WHERE a.datname = current_database() AND a.pid <> pg_backend_pid() AND a.state NOT IN ('idle')
  AND a.backend_type = 'client backend'
"""


def setup(url: str, keys: int, cap: bool) -> None:
    conn = pg_connection.connect(url)
    pg_schema.migrate(conn)
    conn.close()
    conn = pg_connection.connect(url)
    with transaction(conn):
        upsert_skus(conn, shipped_catalog())
        campaign = parse_campaign_file(shipped_campaign_text(SLUG), load_catalog(conn))
        save_campaign(conn, replace(campaign, allow_unbound_keys=True, total_cap=10**9 if cap else None),
                      actor="bench", now=DURING)
    add_activations(conn, [(n, "O365-HOME-ESD", "DK", None) for n in range(1, keys + 1)])
    add_codes(conn, get_campaign(conn, SLUG), keys)
    conn.raw.execute("VACUUM ANALYZE")
    conn.close()


class Sampler(threading.Thread):
    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.stop = url, threading.Event()
        self.active = 0
        self.waits: collections.Counter[str] = collections.Counter()
        self.statements: collections.Counter[str] = collections.Counter()
        self.kinds: collections.Counter[str] = collections.Counter()  # every wait event type, and "running"

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stop.is_set():
                for kind, event, what, query in conn.execute(SAMPLE).fetchall():
                    self.active += 1
                    self.kinds[kind or "running"] += 1
                    if kind == "Lock":
                        self.waits[f"{event}: {what}"] += 1
                        self.statements[query] += 1
                self.stop.wait(SAMPLE_S)


async def run(url: str, connections: int, numbers: range) -> tuple[float, int, int]:
    async with PostgresDatabase(url, pool_size=connections) as db:
        started = time.perf_counter()
        results = await asyncio.gather(*(redeem(db, RedeemRequest(
            campaign=SLUG, account_email=f"user{n}@example.com", product_key=product_key(n), terms_accepted=True), DURING)
            for n in numbers))
        elapsed = time.perf_counter() - started
    redeemed = sum(r.redeemed for r in results)
    return elapsed, redeemed, len(results) - redeemed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, nargs="+", default=[8, 16, 32])
    parser.add_argument("--redemptions", type=int, default=2000, help="per run")
    parser.add_argument("--cap", action="store_true", help="the campaign has a (never reached) total cap")
    parser.add_argument("--without-chain", action="store_true", help="redemptions append no audit event (see above)")
    args = parser.parse_args()
    if args.without_chain:
        redemption.append_event = lambda *a, **k: None  # type: ignore[assignment]
    name = f"promo_test_hot_rows_{secrets.token_hex(4)}"
    url = ADMIN_URL.rpartition("/")[0] + "/" + name
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE template0 LC_COLLATE \'C.UTF-8\' LC_CTYPE \'C.UTF-8\'')
    try:
        setup(url, args.redemptions * len(args.connections), args.cap)
        print(f"code: {sys.path[0]}; campaign {'with' if args.cap else 'without'} a total cap; "
              f"{'no audit events; ' if args.without_chain else ''}{args.redemptions} redemptions per run")
        for i, connections in enumerate(args.connections):
            sampler = Sampler(url)
            sampler.start()
            first = 1 + i * args.redemptions
            elapsed, redeemed, refused = asyncio.run(run(url, connections, range(first, first + args.redemptions)))
            sampler.stop.set()
            sampler.join()
            waiting = sum(sampler.waits.values())
            print(f"\n{connections} connections: {redeemed / elapsed:.0f} redemptions/s ({redeemed} redeemed, "
                  f"{refused} refused, {elapsed:.1f} s); lock waits {100 * waiting / max(sampler.active, 1):.1f} % "
                  f"of {sampler.active} active backend samples")
            print("  samples: " + ", ".join(f"{k} {100 * n / max(sampler.active, 1):.1f} %" for k, n in sampler.kinds.most_common()))
            for what, n in sampler.waits.most_common(6):
                print(f"  {100 * n / max(waiting, 1):5.1f} % of waits  {what}")
            for query, n in sampler.statements.most_common(4):
                print(f"  {100 * n / max(waiting, 1):5.1f} % waiting in  {query}")
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
