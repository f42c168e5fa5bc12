"""The storage layer: WAL, migrations, group commit."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from promo.db import Database, connect, transaction
from promo.migrate import applied_versions, available_migrations, migrate


def test_wal_mode_and_idempotent_migrations(tmp_path: Path) -> None:
    conn = connect(tmp_path / "d.sqlite3")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert migrate(conn) == [name for _, name, _ in available_migrations()]
    assert migrate(conn) == []
    assert applied_versions(conn) == {v for v, _, _ in available_migrations()}


def _table(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY)")


def _insert(conn: sqlite3.Connection, n: int) -> int:
    conn.execute("INSERT INTO t (n) VALUES (:n)", {"n": n})
    if n % 7 == 0:
        raise ValueError(f"job {n} fails after writing")
    return n


async def test_group_commit_isolates_failures_and_shares_commits(tmp_path: Path) -> None:
    async with Database(tmp_path / "g.sqlite3") as db:
        await db.write(_table)
        results = await asyncio.gather(*(db.write_grouped(_insert, n) for n in range(1, 201)), return_exceptions=True)
        commits = db.group_commits
    for n, result in zip(range(1, 201), results, strict=True):
        if n % 7 == 0:
            assert isinstance(result, ValueError) and str(result) == f"job {n} fails after writing"
        else:
            assert result == n
    conn = sqlite3.connect(tmp_path / "g.sqlite3")
    stored = {row[0] for row in conn.execute("SELECT n FROM t")}
    assert stored == {n for n in range(1, 201) if n % 7}  # a failed job's own write was rolled back, nobody else's
    assert 1 <= commits < 200  # writes arriving together shared commits


async def test_a_grouped_job_must_not_manage_the_transaction(tmp_path: Path) -> None:
    async with Database(tmp_path / "h.sqlite3") as db:
        with pytest.raises(sqlite3.OperationalError):
            await db.write_grouped(lambda conn: conn.execute("BEGIN"))
        assert await db.write_grouped(lambda conn: 42) == 42  # the writer is still usable


async def test_a_group_runs_on_the_event_loop_when_the_writer_thread_is_idle(tmp_path: Path) -> None:
    """The hot path makes no thread hop (and so no GIL convoy): see promo/db.py."""
    async with Database(tmp_path / "i.sqlite3") as db:
        assert await db.write_grouped(lambda conn: threading.get_ident()) == threading.get_ident()
        assert await db.lookup(lambda conn: threading.get_ident()) == threading.get_ident()
        assert await db.read(lambda conn: threading.get_ident()) != threading.get_ident()


async def test_a_group_waits_behind_a_busy_writer_thread_in_order(tmp_path: Path) -> None:
    """While a long write (an import) runs on the writer thread, the connection is that
    thread's: a group must queue behind it, not run beside it on the loop."""
    release = threading.Event()

    def long_write(conn: sqlite3.Connection) -> None:
        with transaction(conn):
            conn.execute("INSERT INTO t (n) VALUES (1)")
            assert release.wait(10)

    async with Database(tmp_path / "j.sqlite3") as db:
        await db.write(_table)
        long = asyncio.create_task(db.run_writer(long_write))
        await asyncio.sleep(0.05)
        grouped = asyncio.create_task(db.write_grouped(lambda conn: conn.execute("INSERT INTO t (n) VALUES (2)").lastrowid))
        done, _ = await asyncio.wait([grouped], timeout=0.2)
        assert not done  # queued behind the long write
        assert await db.lookup(lambda conn: conn.execute("SELECT COUNT(*) FROM t").fetchone()[0]) == 0
        release.set()
        await long
        assert await grouped == 2
        assert await db.lookup(lambda conn: [r[0] for r in conn.execute("SELECT n FROM t ORDER BY rowid")]) == [1, 2]


async def test_a_group_never_stalls_the_loop_when_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "k.sqlite3"
    async with Database(path, busy_timeout_ms=5000) as db:
        await db.write(_table)
        other = connect(path)  # another process, say a CLI import
        other.execute("BEGIN IMMEDIATE")
        other.execute("INSERT INTO t (n) VALUES (1)")
        grouped = asyncio.create_task(db.write_grouped(lambda conn: conn.execute("INSERT INTO t (n) VALUES (2)").lastrowid))
        ticks = 0
        for _ in range(10):  # the loop keeps running while the group waits on the writer thread
            await asyncio.sleep(0.01)
            ticks += 1
        assert ticks == 10 and not grouped.done()
        assert await db.lookup(lambda conn: conn.execute("SELECT COUNT(*) FROM t").fetchone()[0]) == 0
        other.execute("COMMIT")
        assert await grouped == 2
        assert await db.run_writer(lambda conn: conn.execute("PRAGMA busy_timeout").fetchone()[0]) == 5000  # restored
        other.close()


async def test_a_long_write_arriving_during_the_loops_group_waits_for_its_commit(tmp_path: Path) -> None:
    """The loop's group transaction spans several turns of the loop; a write for the writer
    thread that arrives meanwhile must wait for its COMMIT (run beside it, it would BEGIN
    inside our transaction and fail, or see half a group), and then cuts the group short."""
    started = asyncio.Event()

    def first(conn: sqlite3.Connection) -> int:
        conn.execute("INSERT INTO t (n) VALUES (1)")
        started.set()  # our coroutine resumes at the loop's next turn, inside the open transaction
        return 1

    def counted_insert(conn: sqlite3.Connection) -> int:
        with transaction(conn):
            conn.execute("INSERT INTO t (n) VALUES (1000)")
            return int(conn.execute("SELECT COUNT(*) FROM t").fetchone()[0])

    async with Database(tmp_path / "l.sqlite3") as db:
        await db.write(_table)
        numbers = [n for n in range(2, 80) if n % 7]
        jobs = [asyncio.create_task(db.write_grouped(first))] + [asyncio.create_task(db.write_grouped(_insert, n)) for n in numbers]
        await started.wait()
        seen = await db.run_writer(counted_insert)
        assert sorted(await asyncio.gather(*jobs)) == [1, *numbers]
        total = await db.lookup(lambda conn: conn.execute("SELECT COUNT(*) FROM t").fetchone()[0])
        assert total == len(numbers) + 2
        assert 2 <= seen < total  # after the cut group's COMMIT, before the rest
        assert db.group_commits >= 2


async def test_grouped_writes_fail_fast_when_the_database_cannot_be_opened(tmp_path: Path) -> None:
    """A database that is away answers each write with its error (the service says "not
    ready"); nobody waits for a group that can never commit."""
    db = Database(tmp_path / "missing" / "x.sqlite3")
    (tmp_path / "missing").write_text("a file where the directory should be")
    results = await asyncio.wait_for(asyncio.gather(*(db.write_grouped(_insert, n) for n in range(3)), return_exceptions=True), 5)
    assert all(isinstance(r, OSError | sqlite3.Error) for r in results), results
    await db.close()


async def test_close_lets_accepted_grouped_writes_commit(tmp_path: Path) -> None:
    """close() while the loop's group transaction is open between two slices: the writes
    already accepted commit first (closing the connection under them would lose them)."""
    def slow_insert(conn: sqlite3.Connection, n: int) -> int:
        time.sleep(0.01)  # slices long enough for close() to reach the writer meanwhile
        conn.execute("INSERT INTO t (n) VALUES (:n)", {"n": n})
        return n

    db = await Database(tmp_path / "m.sqlite3").open()
    await db.write(_table)
    numbers = list(range(1, 25))  # three slices
    pending = [asyncio.create_task(db.write_grouped(slow_insert, n)) for n in numbers]
    await asyncio.sleep(0)
    await db.close()
    assert await asyncio.wait_for(asyncio.gather(*pending), 5) == numbers
    assert [r[0] for r in connect(tmp_path / "m.sqlite3").execute("SELECT n FROM t ORDER BY n")] == numbers


async def test_a_commit_that_fails_saves_nobodys_work_and_tells_everyone(tmp_path: Path) -> None:
    """A deferred constraint is checked at COMMIT: one job's bad row fails the whole group's
    COMMIT, so every job of that group hears of it, and nothing of it is stored."""
    def schema(conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
        conn.execute("CREATE TABLE child (id INTEGER PRIMARY KEY,"
                     " parent_id INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED)")

    def child(conn: sqlite3.Connection, parent: int) -> int:
        return int(conn.execute("INSERT INTO child (parent_id) VALUES (:p)", {"p": parent}).lastrowid or 0)

    async with Database(tmp_path / "n.sqlite3") as db:
        await db.write(schema)
        await db.write(lambda conn: conn.execute("INSERT INTO parent (id) VALUES (1)"))
        results = await asyncio.gather(*(db.write_grouped(child, 1) for _ in range(5)), db.write_grouped(child, 99),
                                       return_exceptions=True)
        assert all(isinstance(r, sqlite3.IntegrityError) for r in results), results
        assert await db.lookup(lambda conn: conn.execute("SELECT COUNT(*) FROM child").fetchone()[0]) == 0
        assert await db.write_grouped(child, 1) >= 1  # the next group commits as usual


def test_campaigns_saved_before_their_hash_existed_get_one_when_migrated(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Migration 0023: a campaign whose definition_sha256 is NULL (saved before 0013) is keyed
    in the cache of parsed campaigns at once, not re-read and re-hashed on every redemption."""
    import promo.migrate
    from promo.campaign_store import _sha256, get_campaign
    from tests.support.database import SLUG, prepare_database

    every = available_migrations()
    monkeypatch.setattr(promo.migrate, "available_migrations", lambda: [m for m in every if m[0] != 23])
    conn = prepare_database(tmp_path / "old.sqlite3")
    conn.execute("UPDATE campaigns SET definition_sha256 = NULL")  # as a campaign saved before 0013 is
    monkeypatch.setattr(promo.migrate, "available_migrations", lambda: every)
    assert migrate(conn) == ["0023_definition_hashes.sql"]
    definition, digest = conn.execute("SELECT definition, definition_sha256 FROM campaigns WHERE slug = ?", (SLUG,)).fetchone()
    assert digest == _sha256(definition)
    get_campaign(conn, SLUG)  # parsed once
    reads: list[str] = []
    conn.set_trace_callback(reads.append)
    get_campaign(conn, SLUG)
    assert not [sql for sql in reads if "SELECT definition FROM" in sql]  # served from the cache by its hash
