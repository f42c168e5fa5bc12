"""Which PostgreSQL driver for Promo: the redemption transaction, three ways, one process run.

    .venv/bin/pip install -e '.[bench]'   # asyncpg: the benchmark's only, never Promo's
    .venv/bin/python bench/pg_driver.py                    # about two minutes
    .venv/bin/python bench/pg_driver.py --seconds 2 --rounds 1 --clients 1 4

Runs the statement sequence of one redemption (promo/redemption.py redeem_unit, traced on
SQLite: campaign, idempotency replay, guess cap, activation, SKU, prior redemptions,
mailbox sibling, the code claim, its UPDATE, the redemption, the campaign total, the outbox
row, the audit chain's head and event, the decision log row, the hourly counter, inside
BEGIN ... SAVEPOINT ... RELEASE ... COMMIT) against PostgreSQL with
  (a) psycopg 3 synchronous connections from psycopg_pool on worker threads, dispatched
      from the event loop, through promo.backends.pg_connection.PgConnection (the adapter
      Promo would ship: :name translation, rows by name, timestamptz read as db_time text);
  (a') the same without the adapter (psycopg's placeholders, tuple rows): the adapter's cost;
  (b) psycopg 3 asynchronous connections (AsyncConnectionPool), tasks on the event loop;
  (c) asyncpg (its pool), tasks on the event loop,
at 1, 4 and 16 concurrent clients. Runs alternate (driver order rotates each round), so
the machine's drift (±30 %) hits all three alike: compare ratios within one run.

Data: the real schema (promo/migrations_pg), one campaign, a pool of free codes with the
partial index the claim walks, an activation record per key, the per-account and per-key
UNIQUE constraints. Each transaction redeems a fresh account and key.

`--hot-rows off` spreads the campaign total and the audit head over 64 rows, to see the
drivers without the two rows every redemption must lock today (issue 18 removes them).
Printed per run: tx/s, p50 and p99 latency, client CPU per transaction (time.process_time,
all threads) and server CPU per transaction (utime+stime of this run's backends, /proc).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import re
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import asyncpg  # noqa: E402
import psycopg  # noqa: E402
from psycopg_pool import AsyncConnectionPool, ConnectionPool  # noqa: E402

from promo.backends import pg_connection, pg_schema  # noqa: E402
from promo.backends.pg_sql import translate  # noqa: E402
from promo.timeutil import db_time  # noqa: E402

ADMIN_URL = os.environ.get("PROMO_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
DATABASE = "h17p_bench"
URL = ADMIN_URL.rpartition("/")[0] + "/" + DATABASE
POOL_SIZE = 400_000  # codes and activation records: more than all runs redeem
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
SHARDS = 64  # --hot-rows off: rows the campaign total and the audit head are spread over

# The redemption's statements in order, in the shared SQL spelling (:name), as redeem_unit
# runs them; PostgreSQL's spellings where the shared SQL needs a dialect hook (right(),
# subquery aliases) and the claim's FOR UPDATE SKIP LOCKED. (name, sql, params(tx) -> dict)
SEQUENCE: list[tuple[str, str]] = [
    ("begin", "BEGIN"),
    ("savepoint", "SAVEPOINT redeem"),
    ("campaign", "SELECT id, definition_sha256, updated_at, published_at, paused_at FROM campaigns WHERE slug = :slug"),
    ("replay", "SELECT a.result, a.redemption_id, c.code, c.expires_at FROM redemption_attempts a"
               " LEFT JOIN redemptions r ON r.id = a.redemption_id LEFT JOIN reward_codes c ON c.id = r.code_id"
               " WHERE a.campaign_id = :c AND a.account_email = :a AND a.idempotency_key = :ik"),
    ("guess_cap", "SELECT (SELECT COUNT(*) FROM (SELECT 1 FROM redemption_attempts WHERE guess_failure = 1"
                  " AND account_email = :a AND attempted_at >= :since LIMIT :limit) AS f),"
                  " (SELECT COUNT(*) FROM (SELECT 1 FROM redemption_attempts WHERE guess_failure = 1 AND client_ip = :ip"
                  " AND attempted_at >= :since LIMIT :limit) AS g)"),
    ("activation", "SELECT product_key, sku, country, COALESCE(activation_country, country) AS activation_country,"
                   " purchased_at, activated_at, account_email FROM activations WHERE product_key = :k"),
    ("sku", "SELECT s.sku, s.name, s.family, s.edition, s.channel, s.term, s.product_class, c.country"
            " FROM skus s LEFT JOIN sku_countries c ON c.sku = s.sku WHERE s.sku = :sku"),
    ("prior", "SELECT (SELECT COUNT(*) FROM redemptions WHERE campaign_id = :c AND account_email = :a),"
              " EXISTS (SELECT 1 FROM redemptions WHERE campaign_id = :c AND product_key = :k)"),
    ("sibling", "SELECT account_email FROM redemptions WHERE campaign_id = :c AND account_email = :base AND account_email <> :a"
                " UNION ALL SELECT account_email FROM redemptions WHERE campaign_id = :c AND account_email >= :lo"
                " AND account_email < :hi AND account_email <> :a AND right(account_email, :n) = :at_domain LIMIT 1"),
    ("claim", "SELECT id, code, expires_at FROM reward_codes WHERE campaign_id = :c AND issued_at IS NULL"
              " AND voided_at IS NULL AND expires_at >= :min_expiry ORDER BY expires_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"),
    ("take", "UPDATE reward_codes SET issued_at = :now WHERE id = :code AND issued_at IS NULL"),
    ("redemption", "INSERT INTO redemptions (campaign_id, account_email, slot, product_key, code_id, terms_url,"
                   " terms_accepted_at, redeemed_at, client_ip, residence_country, terms_version)"
                   " VALUES (:c, :a, 1, :k, :code, :terms, :now, :now, :ip, 'DK', :version) RETURNING id"),
    ("total", "INSERT INTO campaign_totals (campaign_id, shard, redeemed) VALUES (:total_row, 0, 1)"  # one shard: the hot row
              " ON CONFLICT (campaign_id, shard) DO UPDATE SET redeemed = campaign_totals.redeemed + 1"),
    ("outbox", "INSERT INTO outbox (message_id, template, recipient, subject_ref, status, attempts, next_attempt_at,"
               " created_at, locale, payload, campaign_id) VALUES (:mid, 'reward_code', :a, :ref, 'queued', 0, :now, :now,"
               " 'en', NULL, :c) RETURNING id"),
    ("chain_lock", "SELECT pg_advisory_xact_lock(:chain)"),  # one chain head: what SQLite's write lock gives today
    ("chain_head", "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1"),
    ("audit", "INSERT INTO audit_events (tag, actor, subject, ip, data, created_at, prev_hash, hash)"
              " VALUES ('redemption:code:issued', :actor, :ref, :ip, :data, :now, :prev, :hash) RETURNING seq"),
    ("attempt", "INSERT INTO redemption_attempts (campaign_id, account_email, idempotency_key, product_key, sku, country,"
                " outcome, failed_rules, result, redemption_id, attempted_at, client_ip, guess_failure)"
                " VALUES (:c, :a, :ik, :k, 'BENCH-SKU', 'DK', 'redeemed', '', :result, :rid, :now, :ip, 0) RETURNING id"),
    ("activity", "INSERT INTO campaign_activity (campaign_id, outcome, hour, reason, shard, n)"
                 " VALUES (:c, 'redeemed', :hour, '', :shard, 1)"
                 " ON CONFLICT (campaign_id, outcome, hour, reason, shard) DO UPDATE SET n = campaign_activity.n + 1"),
    ("release", "RELEASE redeem"),
    ("commit", "COMMIT"),
]
TIME_PARAMS = {"since", "min_expiry", "now", "hour"}  # asyncpg binds these as datetime, not text


def parameters(n: int, hot_rows: bool, results: dict[str, Any]) -> dict[str, Any]:
    """The values for transaction n: a fresh account and key; `results` holds what earlier
    statements returned (the code claimed, the redemption's id, the chain head)."""
    account = f"user{n}@example.com"
    code = results.get("claim")
    head = results.get("chain_head")
    return {
        "slug": "bench-offer", "c": 1, "a": account, "ik": f"idem-{n}", "since": db_time(NOW - timedelta(hours=1)), "limit": 10,
        "ip": f"10.{n % 250}.{n // 250 % 250}.1", "k": key_of(n), "sku": "BENCH-SKU", "base": account, "lo": f"user{n}+",
        "hi": f"user{n},", "n": 12, "at_domain": "@example.com", "min_expiry": db_time(NOW), "now": db_time(NOW),
        "code": code[0] if code else 0, "terms": "https://example.com/terms", "version": "v" * 64,
        "total_row": 1 if hot_rows else 1 + n % SHARDS, "mid": f"<redemption-{n}@bench.invalid>", "ref": f"redemption:{n}",
        "chain": 1 if hot_rows else n % SHARDS, "actor": f"account:{account}", "data": '{"campaign":"bench-offer","code":"*****"}',
        "prev": head[1] if head else "0" * 64, "hash": f"{n:064x}", "result": '{"outcome": "redeemed", "failures": []}',
        "rid": results.get("redemption", (0,))[0], "hour": db_time(NOW.replace(minute=0)), "shard": n % 4,
    }


def key_of(n: int) -> str:
    return f"PK{n:023d}"


def setup() -> None:
    """A fresh database with the real schema and the pool (generate_series: seconds)."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{DATABASE}"')
    conn = pg_connection.connect(URL)
    pg_schema.migrate(conn)
    t = db_time(NOW)
    conn.raw.execute("INSERT INTO skus VALUES ('BENCH-SKU', 'Bench', 'office', 'home', 'esd', 'annual', 'desktop')")
    conn.raw.execute("INSERT INTO campaigns (id, slug, kind, definition, created_at, updated_at, published_at)"
                     " OVERRIDING SYSTEM VALUE VALUES (1, 'bench-offer', 'purchase_offer', '{}', %s, %s, %s)", (t, t, t))
    for shard in range(2, SHARDS + 2):  # rows the total is spread over with --hot-rows off
        conn.raw.execute("INSERT INTO campaigns (id, slug, kind, definition, created_at, updated_at) OVERRIDING SYSTEM VALUE"
                         " VALUES (%s, %s, 'purchase_offer', '{}', %s, %s)", (shard, f"shard-{shard}", t, t))
    conn.raw.execute("INSERT INTO code_batches (campaign_id, source, code_count, imported_at) VALUES (1, 'bench', %s, %s)", (POOL_SIZE, t))
    conn.raw.execute("INSERT INTO reward_codes (campaign_id, batch_id, code, expires_at)"
                     " SELECT 1, 1, md5(i::text), %s::timestamptz + (i %% 1000) * interval '1 minute'"
                     " FROM generate_series(1, %s) AS i", (db_time(NOW + timedelta(days=365)), POOL_SIZE))
    conn.raw.execute("INSERT INTO activations (product_key, sku, country, purchased_at, activated_at, imported_at, import_batch)"
                     " SELECT 'PK' || lpad(i::text, 23, '0'), 'BENCH-SKU', 'DK', '2026-11-01', '2026-11-02', %s, 'bench'"
                     " FROM generate_series(0, %s) AS i", (t, POOL_SIZE))
    conn.raw.execute("VACUUM ANALYZE")
    conn.close()


# ---- the three drivers: each runs one whole transaction for number n ---------------------


def to_dollars(sql: str) -> tuple[str, list[str]]:
    """asyncpg's $1.. placeholders, and the names in their order (from the quote-aware
    translation to psycopg's %(name)s, so ':code' inside a string literal stays text)."""
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match.group(1) not in names:
            names.append(match.group(1))
        return f"${names.index(match.group(1)) + 1}"

    return re.sub(r"%\((\w+)\)s", number, translate(sql)).replace("%%", "%"), names


class PsycopgThreads:
    """(a) What PostgresDatabase does: a thread from a pool runs the synchronous function."""

    name = "psycopg sync+threads"

    def __init__(self, clients: int, hot_rows: bool):
        self.hot_rows = hot_rows
        self.pool = ConnectionPool(URL, min_size=clients, max_size=clients, open=True,
                                   kwargs={"autocommit": True, "options": pg_connection.CONNECT_OPTIONS},
                                   configure=pg_connection.configure)
        self.pool.wait()
        with self.pool.connection() as raw:
            self.identities = pg_connection.read_identities(raw)
        self.threads = ThreadPoolExecutor(clients)

    def transaction(self, n: int) -> None:
        with self.pool.connection() as raw:
            conn = pg_connection.PgConnection(raw, self.identities)
            results: dict[str, Any] = {}
            for name, sql in SEQUENCE:
                if name == "chain_lock" and not self.hot_rows:
                    continue
                cursor = conn.execute(sql, parameters(n, self.hot_rows, results))
                results[name] = cursor.fetchone()

    async def run(self, n: int) -> None:
        await asyncio.get_running_loop().run_in_executor(self.threads, self.transaction, n)

    async def close(self) -> None:
        self.threads.shutdown()
        self.pool.close()


class PsycopgThreadsRaw(PsycopgThreads):
    """(a) without Promo's adapter: psycopg's own placeholders and tuple rows. The difference
    to (a) is what the adapter costs (translation lookup, rows by name, RETURNING for lastrowid)."""

    name = "psycopg sync raw"

    def __init__(self, clients: int, hot_rows: bool):
        super().__init__(clients, hot_rows)
        self.statements = [(name, translate(sql)) for name, sql in SEQUENCE]

    def transaction(self, n: int) -> None:
        with self.pool.connection() as raw:
            results: dict[str, Any] = {}
            for name, sql in self.statements:
                if name == "chain_lock" and not self.hot_rows:
                    continue
                cursor = raw.execute(sql, parameters(n, self.hot_rows, results))
                results[name] = cursor.fetchone() if cursor.description else None


class PsycopgAsync:
    name = "psycopg async"

    def __init__(self, clients: int, hot_rows: bool):
        self.hot_rows = hot_rows
        self.clients = clients
        self.statements = [(name, translate(sql)) for name, sql in SEQUENCE]

    async def open(self) -> None:
        async def configure(conn: psycopg.AsyncConnection[Any]) -> None:
            conn.adapters.register_loader("timestamptz", pg_connection.DbTimeLoader)

        self.pool = AsyncConnectionPool(URL, min_size=self.clients, max_size=self.clients, open=False,
                                        kwargs={"autocommit": True, "options": pg_connection.CONNECT_OPTIONS}, configure=configure)
        await self.pool.open(wait=True)

    async def run(self, n: int) -> None:
        async with self.pool.connection() as conn:
            results: dict[str, Any] = {}
            for name, sql in self.statements:
                if name == "chain_lock" and not self.hot_rows:
                    continue
                cursor = await conn.execute(sql, parameters(n, self.hot_rows, results))
                results[name] = await cursor.fetchone() if cursor.description else None

    async def close(self) -> None:
        await self.pool.close()


class Asyncpg:
    name = "asyncpg"

    def __init__(self, clients: int, hot_rows: bool):
        self.hot_rows = hot_rows
        self.clients = clients
        self.statements = [(name, *to_dollars(sql)) for name, sql in SEQUENCE]

    async def open(self) -> None:
        self.pool = await asyncpg.create_pool(URL, min_size=self.clients, max_size=self.clients,
                                              server_settings={"TimeZone": "UTC"})

    async def run(self, n: int) -> None:
        async with self.pool.acquire() as conn:
            results: dict[str, Any] = {}
            for name, sql, names in self.statements:
                if name == "chain_lock" and not self.hot_rows:
                    continue
                values = parameters(n, self.hot_rows, results)
                args = [datetime.fromisoformat(values[k][:-1]).replace(tzinfo=UTC) if k in TIME_PARAMS else values[k]
                        for k in names]  # asyncpg binds timestamptz from datetime only: the domain's text would not do
                if name in ("begin", "savepoint", "release", "commit") or name in ("take", "total", "activity"):
                    await conn.execute(sql, *args)
                    results[name] = None
                else:
                    results[name] = await conn.fetchrow(sql, *args)

    async def close(self) -> None:
        await self.pool.close()


# ---- measuring ---------------------------------------------------------------------------


def backend_cpu_seconds() -> float:
    """utime+stime of every backend connected to the bench database (from /proc)."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        pids = [p for (p,) in admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (DATABASE,)).fetchall()]
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLOCK_TICKS


async def measure(driver: Any, clients: int, seconds: float, counter: itertools.count[int]) -> dict[str, float]:
    run: Callable[[int], Awaitable[None]] = driver.run
    for _ in range(clients * 20):  # warm-up: prepared statements, pool connections
        await run(next(counter))
    latencies: list[float] = []
    stop = time.perf_counter() + seconds

    async def client() -> None:
        while time.perf_counter() < stop:
            started = time.perf_counter()
            await run(next(counter))
            latencies.append(time.perf_counter() - started)

    cpu0, server0, wall0 = time.process_time(), backend_cpu_seconds(), time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall, cpu, server = time.perf_counter() - wall0, time.process_time() - cpu0, backend_cpu_seconds() - server0
    latencies.sort()
    done = len(latencies)
    return {"tx_s": done / wall, "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[min(done - 1, int(done * 0.99))] * 1000,
            "client_cpu_us": cpu / done * 1e6, "server_cpu_us": server / done * 1e6, "n": done}


async def make(kind: type[Any], clients: int, hot_rows: bool) -> Any:
    driver = kind(clients, hot_rows)
    if hasattr(driver, "open"):
        await driver.open()
    return driver


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--hot-rows", choices=["on", "off"], default="on")
    args = parser.parse_args()
    hot_rows = args.hot_rows == "on"
    print(f"setting up {DATABASE} ({POOL_SIZE:,} codes and activation records) ...", flush=True)
    setup()
    counter = itertools.count(1)
    kinds: list[type[Any]] = [PsycopgThreads, PsycopgThreadsRaw, PsycopgAsync, Asyncpg]
    figures: dict[tuple[str, int], list[dict[str, float]]] = {}
    for round_ in range(args.rounds):
        for clients in args.clients:
            order = kinds[round_ % len(kinds):] + kinds[:round_ % len(kinds)]
            for kind in order:
                driver = await make(kind, clients, hot_rows)
                try:
                    result = await measure(driver, clients, args.seconds, counter)
                finally:
                    await driver.close()
                figures.setdefault((driver.name, clients), []).append(result)
                print(f"round {round_ + 1} {driver.name:22} {clients:3} clients: {result['tx_s']:7.0f} tx/s"
                      f"  p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms"
                      f"  client CPU {result['client_cpu_us']:5.0f} µs/tx  server CPU {result['server_cpu_us']:5.0f} µs/tx", flush=True)
    print(f"\nmedians over {args.rounds} rounds (hot rows {args.hot_rows}; ratios vs psycopg sync+threads)")
    print(f"{'driver':22} {'clients':>7} {'tx/s':>7} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7} {'client µs/tx':>12} {'server µs/tx':>12}")
    for clients in args.clients:
        base = statistics.median(r["tx_s"] for r in figures[(PsycopgThreads.name, clients)])
        for kind in kinds:
            runs = figures[(kind.name, clients)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"{kind.name:22} {clients:7} {med['tx_s']:7.0f} {med['tx_s'] / base:6.2f} {med['p50_ms']:7.2f} {med['p99_ms']:7.2f}"
                  f" {med['client_cpu_us']:12.0f} {med['server_cpu_us']:12.0f}")


if __name__ == "__main__":
    try:
        import uvloop
    except ImportError:  # the service runs on uvloop (uvicorn[standard]); plain asyncio otherwise
        asyncio.run(main())
    else:
        uvloop.run(main())
