"""Connections and transactions (the migration runner is promo/migrate.py).

Storage functions are plain synchronous functions that take a `sqlite3.Connection`; all
SQL lives in them. `Database` runs such a function on aiosqlite's connection thread as
*one* queued call, so a whole transaction costs one hop between the event loop and the
database thread instead of one per statement (see ../shared/PERF_NOTES.md).

One writer connection: SQLite has one writer anyway, and a single queue keeps writes in
order without a lock; every write is a short `BEGIN IMMEDIATE … COMMIT`. A separate
reader connection serves reads concurrently (WAL).

The hot path skips the threads. A thread that releases the GIL at every SQLite statement
and wants it back queues behind the busy event loop (a convoy): under load a redemption
group took twice as long on the writer thread as in-process. So a group commit runs on the
event loop itself whenever the writer thread is idle (it is nearly always), and short point
reads (`lookup`: the session, the campaign) run there on a connection of their own. A group
that finds the write lock held by another process goes to the writer thread instead, which
may wait for it without stalling the loop.

So: short, frequent writes (a redemption, a session touch, a sign-in, the relay's lease and
its outcomes) go through `write_grouped`; long ones (imports, voiding a batch) through
`write`, on the writer thread, where they never hold up the loop. While such a write runs,
groups queue behind it on the thread. Slow work that needs no lock stays out of both: a
staff sign-in's argon2 check runs before its write (promo/passwords.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite
import psycopg

from promo.backends.postgresql import RetriesExhausted
from promo.backends.postgresql import is_unavailable as postgresql_unavailable

T = TypeVar("T")

def connect(path: Path | str, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL") -> sqlite3.Connection:
    """A configured synchronous connection (CLI tools, worker processes, tests)."""
    conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
    configure(conn, busy_timeout_ms=busy_timeout_ms, synchronous=synchronous)
    return conn


def sha256_hex(text: str | None) -> str | None:
    """The hex sha256 of a text's UTF-8; in SQL, sha256_hex(column) (a migration that keys
    rows by their content, as campaigns.definition_sha256 is)."""
    return None if text is None else hashlib.sha256(text.encode("utf-8")).hexdigest()


def configure(conn: sqlite3.Connection, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL") -> None:
    conn.row_factory = sqlite3.Row
    conn.create_function("sha256_hex", 1, sha256_hex, deterministic=True)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
    if synchronous not in {"FULL", "NORMAL"}:
        raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA foreign_keys=ON")


# SQLite's primary result codes that mean "not now", not "wrong": the write lock held past
# the busy timeout (another process importing, a backup), a full disk, an I/O failure, a
# file that cannot be opened. Syntax and constraint errors are bugs and stay bugs.
_UNAVAILABLE_CODES = {
    5,  # SQLITE_BUSY
    6,  # SQLITE_LOCKED
    10,  # SQLITE_IOERR
    13,  # SQLITE_FULL
    14,  # SQLITE_CANTOPEN
    15,  # SQLITE_PROTOCOL
}


# What is_unavailable() may say yes to: SQLite's, PostgreSQL's connection errors (server
# gone, starting, full) and a transaction PostgreSQL kept asking to rerun (issue 17).
DRIVER_ERRORS: tuple[type[Exception], ...] = (sqlite3.OperationalError, psycopg.OperationalError, RetriesExhausted)

# Any error of either store's driver (the relay waits such an error out, then tries again).
STORE_ERRORS: tuple[type[Exception], ...] = (sqlite3.Error, psycopg.Error, RetriesExhausted)


def is_unavailable(exc: BaseException) -> bool:
    """Whether the database refused for now (a 503 and "try again"), not because of a bug."""
    if isinstance(exc, psycopg.Error | RetriesExhausted):
        return postgresql_unavailable(exc)
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in _UNAVAILABLE_CODES


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A short write transaction. IMMEDIATE takes the write lock up front, so two writers
    never both read and then collide on upgrade (which SQLite would fail with SQLITE_BUSY)."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


# A bulk import's unique index on random keys (reward codes, product keys) outgrows the
# default 2 MB page cache after about 50,000 rows; from then on most inserts evict a page
# and read another. 64 MB holds a million codes' index: 1M random codes imported in
# 6.2 s of SQLite time instead of 11.6 s (bench/README.md). Only for the import's length.
IMPORT_CACHE_MIB = 64


@contextmanager
def larger_cache(conn: sqlite3.Connection, mib: int = IMPORT_CACHE_MIB) -> Iterator[sqlite3.Connection]:
    """A bigger page cache for one bulk write, then the connection's own again (which
    frees the extra pages)."""
    (before,) = conn.execute("PRAGMA cache_size").fetchone()
    conn.execute(f"PRAGMA cache_size={-int(mib) * 1024}")
    try:
        yield conn
    finally:
        conn.execute(f"PRAGMA cache_size={int(before)}")


WriteJob = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any]]  # fn(conn, *args, **kwargs)
WriteOutcome = tuple[bool, Any]  # (True, its value) or (False, the exception it raised)
Pending = tuple[Callable[..., Any], tuple[Any, ...], dict[str, Any], asyncio.Future[Any]]  # a job and its caller's future

MAX_GROUP = 128  # jobs in one group commit
SLICE = 8  # jobs run on the event loop between two turns of the loop (1-2 ms)
# uvloop accepts one new connection per turn of the loop. A few turns between slices let a
# burst of new connections in sooner: 512 opened at once waited up to 0.7 s behind one
# turn per slice and 0.3 s behind three. Redemptions/s at 64 connections did not change.
TURNS_BETWEEN_SLICES = 3
LOOKUP_BUSY_MS = 100  # the longest a lookup may hold up the event loop


def run_group(conn: sqlite3.Connection, jobs: list[WriteJob]) -> list[WriteOutcome]:
    """Run jobs in one transaction, each inside its own SAVEPOINT: a job that raises is
    rolled back alone; the rest commit together with one COMMIT (one fsync)."""
    with transaction(conn):
        return run_jobs(conn, jobs)


def run_jobs(conn: sqlite3.Connection, jobs: list[WriteJob]) -> list[WriteOutcome]:
    """Inside a transaction: each job in its own SAVEPOINT, so one that raises undoes only itself."""
    outcomes: list[WriteOutcome] = []
    for fn, args, kwargs in jobs:
        conn.execute("SAVEPOINT job")
        try:
            value = fn(conn, *args, **kwargs)
        except Exception as exc:
            conn.execute("ROLLBACK TO job")
            conn.execute("RELEASE job")
            outcomes.append((False, exc))
        else:
            conn.execute("RELEASE job")
            outcomes.append((True, value))
    return outcomes


class Database:
    groups_writes = True  # write_grouped shares one COMMIT among the calls in flight

    def __init__(self, path: Path | str, *, busy_timeout_ms: int = 5000, synchronous: str = "FULL"):
        self.path = Path(path)
        self._options = {"busy_timeout_ms": busy_timeout_ms, "synchronous": synchronous}
        self._busy_timeout_ms = int(busy_timeout_ms)
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._inline: sqlite3.Connection | None = None  # the event loop's own, for lookups
        self._writer_calls = 0  # calls queued on or running in the writer thread
        self._loop_transaction: asyncio.Event | None = None  # set when the loop's group transaction ends
        self._group: list[Pending] = []
        self._committer: asyncio.Task[None] | None = None
        self.group_commits = 0  # how many shared COMMITs write_grouped has made (observability)
        self.group_commits_on_thread = 0  # of those, how many had to queue on the writer thread
        self.grouped_writes = 0  # jobs those COMMITs saved

    async def open(self) -> Database:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._writer = await self._connect()
            self._reader = await self._connect()
            # Lookups must never stall the loop: WAL readers do not wait for writers, and the
            # short timeout bounds the rare wait (a recovery) anyway.
            self._inline = connect(self.path, busy_timeout_ms=LOOKUP_BUSY_MS,
                                   synchronous=str(self._options["synchronous"]))
        except BaseException:
            await self.close()
            raise
        return self

    @property
    def is_open(self) -> bool:
        return self._writer is not None and self._reader is not None and self._inline is not None

    def pool_stats(self) -> dict[str, Any]:
        """For /readyz: SQLite has one writer connection (and one reader): whether it is open,
        the calls queued on or running in its thread, and the writes waiting to be group-committed."""
        return {"writer": "open" if self._writer is not None else "closed", "writer_calls": self._writer_calls,
                "grouped_waiting": len(self._group)}

    async def _ensure_open(self) -> None:
        # A database that could not be opened at start-up is retried on use, so the
        # service reports "not ready" instead of dying (and recovers when it can).
        if not self.is_open:
            await self.open()

    async def _connect(self) -> aiosqlite.Connection:
        conn = await aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False)
        await self._call(conn, configure, **self._options)
        return conn

    async def close(self) -> None:
        if self._committer is not None:  # writes already accepted finish first
            with contextlib.suppress(Exception):
                await self._committer
        for conn in (self._reader, self._writer):
            if conn is not None:
                await conn.close()
        if self._inline is not None:
            self._inline.close()
        self._writer = self._reader = self._inline = None

    async def __aenter__(self) -> Database:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @staticmethod
    async def _call(conn: aiosqlite.Connection, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        # aiosqlite's queue-a-callable primitive: the one place we reach past its public
        # API, because it is what makes a transaction one hop (pinned version, tested).
        def run() -> T:
            return fn(conn._conn, *args, **kwargs)

        execute: Callable[[Callable[[], T]], Awaitable[T]] = conn._execute  # untyped in aiosqlite: its signature, typed
        return await execute(run)

    async def run_writer(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn(conn, ...) on the writer thread; fn manages its own transaction(s)."""
        await self._ensure_open()
        assert self._writer is not None
        self._writer_calls += 1
        try:
            while self._loop_transaction is not None:  # the loop holds the connection: wait for its COMMIT
                await self._loop_transaction.wait()
            return await self._call(self._writer, fn, *args, **kwargs)
        finally:
            self._writer_calls -= 1

    async def write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn(conn, ...) inside one BEGIN IMMEDIATE transaction on the writer thread."""

        def in_transaction(conn: sqlite3.Connection) -> T:
            with transaction(conn):
                return fn(conn, *args, **kwargs)

        return await self.run_writer(in_transaction)

    async def write_grouped(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Group commit: run fn(conn, ...) in a SAVEPOINT of a transaction shared with the
        writes that arrive meanwhile. fn must not BEGIN or COMMIT. Returns only after the
        shared COMMIT, so durability is the same as write(); a job's exception is raised
        to its own caller and rolls back its own work only."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._group.append((fn, args, kwargs, future))
        if self._committer is None:
            self._committer = asyncio.create_task(self._commit_groups())
        return await future

    async def _commit_groups(self) -> None:
        try:
            await asyncio.sleep(0)  # requests that arrived with this one join its group
            while self._group:
                if self._writer is not None and not self._writer_calls and await self._commit_on_loop():
                    continue
                await asyncio.sleep(0)  # a write that waited for the loop's COMMIT queues first
                batch, self._group = self._group[:MAX_GROUP], self._group[MAX_GROUP:]
                try:
                    outcomes = await self.run_writer(run_group, [(fn, a, kw) for fn, a, kw, _ in batch])
                except BaseException as exc:
                    self._settle(batch, exc)
                    if isinstance(exc, asyncio.CancelledError):
                        raise
                    continue
                self.group_commits_on_thread += 1
                self._settle(batch, outcomes)
        finally:
            self._committer = None

    async def _commit_on_loop(self) -> bool:
        """One group transaction on the event loop, on the writer's connection while its
        thread is idle (run_writer waits for our COMMIT meanwhile). The jobs run SLICE at a
        time with a turn of the loop in between, and jobs that arrive meanwhile join: uvloop
        accepts one new connection per turn, so a loop held for a whole group (20-30 ms)
        let hundreds of new connections wait seconds. False: no transaction could begin (the
        write lock is held by another process, say); the caller queues the group on the
        writer thread, which may wait for the lock, and reports any other error to each job."""
        assert self._writer is not None
        conn = self._writer._conn
        try:
            conn.execute("PRAGMA busy_timeout=0")  # never wait on the loop: fall back instead
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error:
            return False
        finally:
            with contextlib.suppress(sqlite3.Error):
                conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        ended = self._loop_transaction = asyncio.Event()
        done: list[Pending] = []
        outcomes: list[WriteOutcome] = []
        try:
            while self._group and len(done) < MAX_GROUP:
                if done:
                    for _ in range(TURNS_BETWEEN_SLICES):
                        await asyncio.sleep(0)
                take = min(SLICE, MAX_GROUP - len(done))
                batch, self._group = self._group[:take], self._group[take:]
                done.extend(batch)
                outcomes.extend(run_jobs(conn, [(fn, a, kw) for fn, a, kw, _ in batch]))
                if self._writer_calls:  # a long write is waiting for the connection: let it in
                    break
            conn.execute("COMMIT")
        except BaseException as exc:  # nobody's work in this transaction is saved
            with contextlib.suppress(sqlite3.Error):  # (a closed connection has nothing to undo)
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            self._settle(done, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return True
        finally:
            self._loop_transaction = None
            ended.set()
        self._settle(done, outcomes)
        return True

    def _settle(self, batch: list[Pending], outcomes: list[WriteOutcome] | BaseException) -> None:
        """Tell each job's caller its outcome, once its transaction has committed (or failed)."""
        if isinstance(outcomes, BaseException):
            for *_, future in batch:
                if not future.done():
                    future.set_exception(outcomes)
            return
        self.group_commits += 1
        self.grouped_writes += sum(ok for ok, _ in outcomes)
        for (*_, future), (ok, value) in zip(batch, outcomes, strict=True):
            if future.done():
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

    async def lookup(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a short point read (a few index lookups, no scans) at once, on the event
        loop's own connection: no thread hop. Anything longer belongs in `read`."""
        await self._ensure_open()
        assert self._inline is not None
        return fn(self._inline, *args, **kwargs)

    async def read(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run fn(conn, ...) on the reader connection (sees the last committed state)."""
        await self._ensure_open()
        assert self._reader is not None
        return await self._call(self._reader, fn, *args, **kwargs)


def insert_each(conn: sqlite3.Connection, sql: str, rows: Iterable[Any], refused: Callable[[Any], bool]) -> int:
    """executemany for a bulk import that goes on past a refused row, returning how many
    rows went in. When a constraint refuses a row, only that row is undone (the statement
    aborts, the transaction stays); `refused(row)` reports it and returns True, or returns
    False when the refusal is not one it expected, and the error is raised. Then the rest
    of the rows go in. Unique indexes thus find duplicates without a copy of every key in
    memory. SQLite only: PostgreSQL aborts the transaction instead (backends.bulk stages the
    rows with COPY there)."""
    offered, refusals = 0, 0
    current: Any = None

    def tracked() -> Iterator[Any]:  # executemany takes a row only once the one before is in
        nonlocal offered, current
        for row in rows:
            offered += 1
            current = row
            yield row

    pending = tracked()
    while True:
        try:
            conn.executemany(sql, pending)
            return offered - refusals
        except sqlite3.IntegrityError:
            if not refused(current):
                raise
            refusals += 1
