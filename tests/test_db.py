"""The storage layer: WAL, migrations, group commit."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest

from promo.db import Database, applied_versions, available_migrations, connect, migrate


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
