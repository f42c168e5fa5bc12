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
import os
import secrets
import sys
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, os.environ.get("PROMO_BENCH_CODE", str(Path(__file__).resolve().parent.parent)))
# The sampler comes from this checkout (bench/ is a namespace package: an older checkout's adds to it).
sys.path.append(str(Path(__file__).resolve().parent.parent))

import psycopg  # noqa: E402

from bench.sampling import LockSampler  # noqa: E402
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


def breakdown(sampler: LockSampler) -> tuple[Counter[str], Counter[str], Counter[str]]:
    """The sampler's samples by wait event type ("running" on the CPU), its lock waits by
    "event: relation" and by statement (its first 60 characters)."""
    kinds: Counter[str] = Counter()
    for event, n in sampler.events.items():
        kinds[event.split(":")[0]] += n
    waits: Counter[str] = Counter()
    statements: Counter[str] = Counter()
    for (lock, relation, query), n in sampler.waits.items():
        waits[f"{lock}: {relation}"] += n
        statements[query[:60]] += n
    return kinds, waits, statements


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
            sampler = LockSampler(url, interval=SAMPLE_S).start()
            first = 1 + i * args.redemptions
            elapsed, redeemed, refused = asyncio.run(run(url, connections, range(first, first + args.redemptions)))
            sampler.stop()
            kinds, waits, statements = breakdown(sampler)
            waiting, active = sum(waits.values()), sampler.busy
            print(f"\n{connections} connections: {redeemed / elapsed:.0f} redemptions/s ({redeemed} redeemed, "
                  f"{refused} refused, {elapsed:.1f} s); lock waits {100 * waiting / max(active, 1):.1f} % "
                  f"of {active} active backend samples")
            print("  samples: " + ", ".join(f"{k} {100 * n / max(active, 1):.1f} %" for k, n in kinds.most_common()))
            for what, n in waits.most_common(6):
                print(f"  {100 * n / max(waiting, 1):5.1f} % of waits  {what}")
            for query, n in statements.most_common(4):
                print(f"  {100 * n / max(waiting, 1):5.1f} % waiting in  {query}")
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
