"""The audit chain without a hot row (issue 18), measured (printed, not asserted).

1. PostgreSQL: audit appends + COMMITs per second from 1, 8 and 32 threads (a connection
   each), before (every append takes the chain's lock and reads the head, as up to migration
   0023) and after (appended unsealed; a sealer thread seals every 200 ms meanwhile, as the
   service's worker does).
2. The sealer's throughput: 100,000 unsealed events chained by `seal_pending`.
3. SQLite: the cost of one append, before and after (in transactions of 100, synchronous=NORMAL,
   so the append itself is measured, not the fsync).

Each PostgreSQL run uses a database of its own (promo_test_bench_*), dropped afterwards.
Run: .venv/bin/python bench/audit_chain.py [SECONDS_PER_RUN] [THREADS ...]
"""

from __future__ import annotations

import secrets
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from promo.audit import GENESIS_HASH, append_event, canonical, event_hash, seal, seal_pending, verify_chain  # noqa: E402
from promo.backends import pg_connection, pg_schema  # noqa: E402
from promo.db import connect, transaction  # noqa: E402
from promo.migrate import _statements, migrate  # noqa: E402
from promo.timeutil import db_time  # noqa: E402
from tests.support.pg import CODE_POINT_ORDER  # noqa: E402

ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
AT = datetime(2013, 8, 1, tzinfo=UTC)
DATA = {"campaign": "bench", "sku": "O365-HOME-ESD", "country": "DK", "code": "*****-*****-*****-*****-*0001",
        "terms_accepted": True}


def old_append(conn: Any, n: int, *, lock: str = "") -> None:
    """promo/audit.py's append_event up to migration 0023: the head read and chained at once."""
    if lock:
        conn.execute(lock)  # PostgreSQL: every writer queued here until its COMMIT
    head = conn.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    payload = {"seq": seq, "tag": "redemption:code:issued", "actor": f"account:u{n}@example.com",
               "subject": f"redemption:{n}", "ip": "192.0.2.1", "data": DATA, "created_at": db_time(AT)}
    conn.execute("INSERT INTO audit_events (seq, tag, actor, subject, ip, data, created_at, prev_hash, hash)"
                 " VALUES (:seq, :tag, :actor, :subject, :ip, :data, :created_at, :prev_hash, :hash)",
                 {**payload, "data": canonical(DATA), "prev_hash": prev_hash, "hash": event_hash(prev_hash, payload)})


def new_append(conn: Any, n: int) -> None:
    append_event(conn, tag="redemption:code:issued", actor=f"account:u{n}@example.com", subject=f"redemption:{n}",
                 ip="192.0.2.1", data=DATA, at=AT)


@contextmanager
def pg_database(*, before: bool) -> Iterator[str]:
    """A database of its own, at the schema of 0023 (before) or of every migration (after)."""
    name = f"promo_test_bench_{secrets.token_hex(4)}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" {CODE_POINT_ORDER}')  # the baseline migration needs it
    url = f"{ADMIN_URL.rpartition('/')[0]}/{name}"
    try:
        conn = pg_connection.connect(url)
        if before:
            (baseline,) = [sql for version, _, sql in pg_schema.available_migrations() if version == 23]
            conn.raw.execute(baseline.encode())
        else:
            pg_schema.migrate(conn)
        conn.close()
        yield url
    finally:
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def pg_appends(url: str, threads: int, seconds: float, append: Callable[[Any, int], None], *,
               sealer: bool) -> tuple[float, int, float]:
    """Appends+COMMITs per second over `seconds`, from `threads` connections; the events the
    sealer thread sealed meanwhile, and how long it took to seal the rest once writers stopped."""
    conns = [pg_connection.connect(url) for _ in range(threads)]
    counts = [0] * threads
    ready = threading.Barrier(threads + 1)
    stop, stop_sealer = threading.Event(), threading.Event()
    sealed = [0]

    def writer(i: int) -> None:
        conn, n = conns[i], i * 10_000_000
        ready.wait()
        while not stop.is_set():
            conn.execute("BEGIN")
            append(conn, n)
            conn.execute("COMMIT")
            n += 1
            counts[i] += 1

    def seal_rounds() -> None:
        conn = pg_connection.connect(url)
        try:
            while not stop_sealer.wait(0.2):
                while True:
                    with transaction(conn):
                        done = seal(conn)
                    sealed[0] += done
                    if done < 2000:
                        break
        finally:
            conn.close()

    workers = [threading.Thread(target=writer, args=(i,)) for i in range(threads)]
    sealing = threading.Thread(target=seal_rounds)
    for worker in workers:
        worker.start()
    if sealer:
        sealing.start()
    ready.wait()
    began = time.perf_counter()
    time.sleep(seconds)  # the run's length (a bench, not a test)
    stop.set()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    during, drained, drain_s = sealed[0], time.perf_counter(), 0.0
    if sealer:  # the backlog left when writers stop: how far behind the sealer was
        while conns[0].execute("SELECT count(*) FROM audit_events WHERE chain_seq IS NULL").fetchone()[0]:
            time.sleep(0.01)
        drain_s = time.perf_counter() - drained
        stop_sealer.set()
        sealing.join()
    for conn in conns:
        conn.close()
    return sum(counts) / elapsed, during, drain_s


def pg_throughput(seconds: float, thread_counts: list[int]) -> None:
    print(f"PostgreSQL: audit appends + COMMIT per second ({seconds:g} s per run, a connection per thread)")
    print(f"  {'threads':>7}  {'before (head lock)':>18}  {'after (unsealed)':>16}  {'ratio':>6}  sealed meanwhile, "
          "then the rest in")
    for threads in thread_counts:
        with pg_database(before=True) as url:
            before, _, _ = pg_appends(url, threads, seconds,
                                      lambda c, n: old_append(c, n, lock="SELECT pg_advisory_xact_lock(7001)"), sealer=False)
        with pg_database(before=False) as url:
            after, sealed, drain_s = pg_appends(url, threads, seconds, new_append, sealer=True)
            conn = pg_connection.connect(url)
            seal_pending(conn)
            state = verify_chain(conn)  # type: ignore[arg-type]
            conn.close()
            assert state.ok and state.events >= after * seconds * 0.9, state
        print(f"  {threads:>7}  {before:>16,.0f}/s  {after:>14,.0f}/s  {after / before:>5.2f}x  {sealed:,}, {drain_s:.2f} s")


def sealer_throughput(events: int = 100_000) -> None:
    with pg_database(before=False) as url:
        conn = pg_connection.connect(url)
        conn.raw.execute(
            "INSERT INTO audit_events (tag, actor, subject, ip, data, created_at)"
            " SELECT 'redemption:code:issued', 'account:u' || n || '@example.com', 'redemption:' || n, '192.0.2.1',"
            " %s, %s FROM generate_series(1, %s) AS n", (canonical(DATA), db_time(AT), events))
        began = time.perf_counter()
        sealed = seal_pending(conn)  # type: ignore[arg-type]
        elapsed = time.perf_counter() - began
        began = time.perf_counter()
        state = verify_chain(conn)  # type: ignore[arg-type]
        verified = time.perf_counter() - began
        conn.close()
    assert sealed == events and state.ok and state.events == events
    print(f"PostgreSQL sealer: {events:,} events sealed in {elapsed:.2f} s ({events / elapsed:,.0f}/s, "
          f"transactions of 2,000); verified in {verified:.2f} s ({events / verified:,.0f}/s)")


def sqlite_schema(conn: sqlite3.Connection, *, before: bool) -> None:
    if not before:
        migrate(conn)
        return
    from promo.migrate import available_migrations

    for version, _, sql in available_migrations():
        if version <= 23:
            with transaction(conn):
                for statement in _statements(sql):
                    conn.execute(statement)


def sqlite_cost(events: int = 20_000) -> None:
    print(f"SQLite: one append, in transactions of 100 ({events:,} appends, synchronous=NORMAL)")
    for label, before in (("before", True), ("after", False)):
        with tempfile.TemporaryDirectory() as tmp:
            conn = connect(Path(tmp) / "audit.sqlite3", synchronous="NORMAL")
            sqlite_schema(conn, before=before)
            began = time.perf_counter()
            for start in range(0, events, 100):
                with transaction(conn):
                    for n in range(start, start + 100):
                        old_append(conn, n) if before else new_append(conn, n)
            elapsed = time.perf_counter() - began
            conn.close()
        print(f"  {label:>6}: {elapsed / events * 1e6:6.1f} µs per append ({events / elapsed:,.0f}/s)")


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 5.0
    thread_counts = [int(a) for a in sys.argv[2:]] or [1, 8, 32]
    sqlite_cost()
    sealer_throughput()
    pg_throughput(seconds, thread_counts)


if __name__ == "__main__":
    main()
