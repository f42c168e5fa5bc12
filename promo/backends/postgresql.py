"""PostgresDatabase: promo.db.Database's interface on a pool of psycopg connections.

The storage functions stay synchronous `fn(conn, ...)`; here each call borrows a pooled
connection on a worker thread (psycopg releases the GIL while it waits on the server), so
several transactions really run at once, which SQLite's one writer never does. Hence:
- every write is its own transaction at READ COMMITTED; the UNIQUE constraints and the
  code claim's FOR UPDATE SKIP LOCKED keep the invariants (R-X5, R-X6) under concurrency;
- a serialization failure, a deadlock or a lost race (RerunTransaction: a redemption alone in
  its transaction, promo/redemption.py) reruns the whole function, a bounded number of
  times with a short random backoff, so a person never sees it as a 500;
- `write_grouped` needs no group commit (commits of different connections overlap), so it
  is `write`: the function still gets a transaction it must not BEGIN or COMMIT itself;
- `lookup` runs on a worker thread too (a PostgreSQL round trip must never block the event
  loop), in autocommit: each of its few statements sees the latest commit;
- `read` runs in one REPEATABLE READ READ ONLY transaction: a page's figures agree;
- a call waits at most CONNECTION_WAIT_S for a connection: while the server is away (a
  restart) requests fail fast as 503s instead of piling up (issue 18, item 5). The pool
  replaces broken connections by itself (psycopg_pool reconnects; see RECONNECT_S), and the
  first broken one found makes it check the idle others; a transaction whose connection is
  found dead at BEGIN (nothing sent) runs once more on another. So a restart costs a 503 for
  the requests in flight or waiting during it, not one per stale pooled connection.
The driver was chosen by measurement: bench/pg_driver.py, bench/README.md (PostgreSQL).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from promo.backends import RerunTransaction, is_pipelined
from promo.backends.notify import Announcer, notify
from promo.backends.pg_connection import CONNECT_OPTIONS, PgConnection, configure, read_identities
from promo.backends.pg_sql import POSTGRESQL

T = TypeVar("T")

MAX_ATTEMPTS = 5  # a transaction is tried at most this often when PostgreSQL asks for a rerun
BACKOFF_S = 0.005  # the first retry waits up to this long (randomised), doubling each time
POOL_SIZE = 10  # connections, and the worker threads that use them
POOL_TIMEOUT_S = 10.0  # the longest open() waits for the pool's connections
# The longest a call waits for a free connection: during an outage every request would
# otherwise wait this long before its 503 (a person gives up after a few seconds).
CONNECTION_WAIT_S = 2.0
# How long the pool retries one lost connection (with psycopg_pool's doubling backoff: 1 s,
# 2 s, 4 s...) before it gives that attempt up; the next call that finds no connection then
# starts a new attempt at once. Short, so a server back after a long outage is found within
# about a second, not after the backoff has grown to minutes (the library's default: 300 s).
RECONNECT_S = 1.0


class RetriesExhausted(RuntimeError):
    """PostgreSQL asked to rerun a transaction MAX_ATTEMPTS times in a row (serialization
    failures or deadlocks): the store is overloaded with conflicting writes; try again later."""


class NotBegun(Exception):
    """The pooled connection was found dead at BEGIN (the server restarted since it was last
    used): the transaction never started, so it may run on another connection."""


def is_retryable(exc: BaseException) -> bool:
    """A serialization failure, a deadlock, or a redemption that lost a race (RerunTransaction):
    rerunning the whole transaction is correct."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:  # a cause chain may loop back
        seen.add(id(cause))
        if isinstance(cause, RerunTransaction) or isinstance(cause, psycopg.Error) and cause.sqlstate in POSTGRESQL.retry_sqlstates:
            return True
        cause = cause.__cause__
    return False


def is_unavailable(exc: BaseException) -> bool:
    """The server refused for now (gone, starting, full): a 503, not a bug. The hook promo.db's
    is_unavailable needs for this store."""
    if isinstance(exc, RetriesExhausted):
        return True
    if isinstance(exc, psycopg.OperationalError) and not isinstance(exc, psycopg.errors.TransactionRollback):
        return exc.sqlstate is None or exc.sqlstate in POSTGRESQL.unavailable_sqlstates
    return False


def in_transaction(conn: PgConnection, fn: Callable[..., T], args: tuple[Any, ...], kwargs: dict[str, Any], *,
                   begin: str = "BEGIN ISOLATION LEVEL READ COMMITTED") -> T:
    """fn(conn, ...) inside BEGIN ... COMMIT, rerun from the start on a serialization failure
    or deadlock (at most MAX_ATTEMPTS times); any other exception rolls back and propagates.
    A `pipelined` fn runs in a pipeline from after BEGIN to COMMIT: the statements whose answers
    it does not read go out with the next one it does read, or with the COMMIT."""
    pipelined = is_pipelined(fn)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            conn.execute(begin)
        except psycopg.OperationalError as exc:
            if attempt == 1 and conn.raw.broken:  # nothing was sent that could have taken effect
                raise NotBegun() from exc
            raise
        try:
            with conn.pipeline() if pipelined else contextlib.nullcontext():
                value = fn(conn, *args, **kwargs)
                conn.execute("COMMIT")  # in a pipeline: sent with what fn left queued, answered at its end
            return value
        except BaseException as exc:
            with contextlib.suppress(psycopg.Error):  # a broken connection has nothing to undo
                conn.execute("ROLLBACK")
            if not is_retryable(exc):
                raise
            if attempt == MAX_ATTEMPTS:
                raise RetriesExhausted(f"PostgreSQL asked to rerun the transaction {MAX_ATTEMPTS} times") from exc
            if not isinstance(exc, RerunTransaction):  # a lost race's winner has committed: nothing to wait for
                time.sleep(random.uniform(0, BACKOFF_S * 2 ** (attempt - 1)))
    raise AssertionError("unreachable")


class PostgresDatabase:
    """The same async interface as promo.db.Database, on PostgreSQL."""

    groups_writes = False  # write_grouped is write: each call its own transaction

    def __init__(self, url: str, *, pool_size: int = POOL_SIZE, timeout_s: float = POOL_TIMEOUT_S,
                 wait_s: float = CONNECTION_WAIT_S):
        self.url = url
        self._pool_size = pool_size
        self._timeout_s = timeout_s
        self._wait_s = wait_s
        self._checking = False  # a pool.check() is running (one at a time)
        self._pool: ConnectionPool[Any] | None = None
        self._threads: ThreadPoolExecutor | None = None
        self._identities: dict[str, str] = {}
        self.listen_url = url  # where a relay LISTENs (backends/notify.py); SQLite's store has none
        self.announcer = Announcer(self._notify)  # NOTIFY after the commits that queued email
        # What promo.metrics reads from Database: no group commits here (kept for its gauges).
        self.group_commits = self.group_commits_on_thread = self.grouped_writes = 0

    async def open(self) -> PostgresDatabase:
        threads = ThreadPoolExecutor(self._pool_size, thread_name_prefix="promo-pg")
        pool: ConnectionPool[Any] = ConnectionPool(
            self.url, min_size=self._pool_size, max_size=self._pool_size, open=False, timeout=self._timeout_s,
            reconnect_timeout=RECONNECT_S,
            kwargs={"autocommit": True, "options": CONNECT_OPTIONS}, configure=configure, name="promo")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(threads, lambda: pool.open(wait=True, timeout=self._timeout_s))
            self._identities = await loop.run_in_executor(threads, self._read_identities, pool, self._timeout_s)
        except BaseException:
            await loop.run_in_executor(threads, pool.close)
            threads.shutdown(wait=False)
            raise
        self._pool, self._threads = pool, threads
        return self

    @staticmethod
    def _read_identities(pool: ConnectionPool[Any], timeout_s: float) -> dict[str, str]:
        with pool.connection(timeout=timeout_s) as raw:
            return read_identities(raw)

    @property
    def is_open(self) -> bool:
        return self._pool is not None

    def pool_stats(self) -> dict[str, Any]:
        """For /readyz: connections open (size, counting those being made) and the most there
        may be; how many are lent out and idle; calls waiting for one; connections found broken."""
        if self._pool is None:
            return {"size": 0, "max": self._pool_size, "in_use": 0, "available": 0, "waiting": 0, "connections_lost": 0}
        stats = self._pool.get_stats()
        size, available = stats.get("pool_size", 0), stats.get("pool_available", 0)
        return {"size": size, "max": stats.get("pool_max", self._pool_size), "in_use": max(size - available, 0),
                "available": available, "waiting": stats.get("requests_waiting", 0),
                "connections_lost": stats.get("connections_lost", 0) + stats.get("returns_bad", 0)}

    async def close(self) -> None:
        await self.announcer.close()
        pool, threads = self._pool, self._threads
        self._pool = self._threads = None
        if pool is not None and threads is not None:
            await asyncio.get_running_loop().run_in_executor(threads, pool.close)
            threads.shutdown(wait=True)

    async def __aenter__(self) -> PostgresDatabase:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # A pool that could not be opened at start-up is retried on use, as Database does.
        if not self.is_open:
            await self.open()
        pool, threads = self._pool, self._threads
        assert pool is not None and threads is not None

        def run() -> tuple[T, bool]:
            for attempt in (1, 2):
                with pool.connection(timeout=self._wait_s) as raw:
                    conn = PgConnection(raw, self._identities)
                    try:
                        return fn(conn, *args, **kwargs), conn.mail_queued
                    except (psycopg.OperationalError, NotBegun) as exc:
                        if raw.broken:  # the server went away: its other idle connections are likely dead too
                            self._check_idle(pool, threads)
                        if not isinstance(exc, NotBegun):
                            raise
                        if attempt == 2 and isinstance(exc.__cause__, psycopg.OperationalError):
                            raise exc.__cause__ from None  # as if it had not been caught: the 503 path
            raise AssertionError("unreachable")

        value, mail_queued = await asyncio.get_running_loop().run_in_executor(threads, run)
        if mail_queued:  # committed by now: the relays of every instance hear of it (backends/notify.py)
            self.announcer.mark()
        return value

    async def _notify(self) -> None:
        if self.is_open:  # never reopen a closed pool just to announce
            await self._call(notify)

    def _check_idle(self, pool: ConnectionPool[Any], threads: ThreadPoolExecutor) -> None:
        """Let the pool test its idle connections and replace the broken ones, in the background
        (at most one check at a time)."""
        if self._checking:
            return
        self._checking = True

        def check() -> None:
            try:
                pool.check()
            except Exception:  # a pool closing under us: nothing to check
                pass
            finally:
                self._checking = False

        with contextlib.suppress(RuntimeError):  # the executor shut down (closing)
            threads.submit(check)

    async def run_writer(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(conn, ...) on a pooled connection; fn manages its own transaction(s)."""
        return await self._call(fn, *args, **kwargs)

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(conn, ...) in one READ COMMITTED transaction, rerun on serialization failure or deadlock."""
        return await self._call(in_transaction, fn, args, kwargs)

    async def write_grouped(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """As write: concurrent transactions commit side by side, so there is nothing to group."""
        return await self.write(fn, *args, **kwargs)

    async def lookup(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A short point read, in autocommit, off the event loop."""
        return await self._call(fn, *args, **kwargs)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """fn(conn, ...) in one read-only snapshot (REPEATABLE READ): its statements agree."""
        return await self._call(in_transaction, fn, args, kwargs, begin="BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
