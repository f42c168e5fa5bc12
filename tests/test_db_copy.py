"""`promo db copy` (issue 17, item 7): a deployment with real content (a redemption, imports,
the nonprofit program's granted donation, the demo offer) goes to an empty database of the
other store and back to a new one of its own (SQLite -> PostgreSQL -> SQLite, or PostgreSQL
-> SQLite -> PostgreSQL on that run); every row of every table comes back, and the audit
chain verifies on each target with the source's head."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from promo.audit import Checkpoint, head, seal_pending, verify_chain
from promo.backends import pg_connection
from promo.backends.copy import CopyRefused, copy_database, open_side
from promo.config import Settings
from promo.demo import install_demo
from promo.migrate import available_migrations
from tests.support.both_programs import both_programs
from tests.support.cli import PROMO
from tests.support.nonprofit import T0
from tests.support.pg import scratch_database

Rows = dict[str, list[tuple[object, ...]]]


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"  # sqlite:/// + an absolute path: sqlite:////tmp/...


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite:")


def table_rows(url: str, base: Path) -> Rows:
    """Every table but the migration history, each in primary key (or rowid) order, read as the
    copy reads them (promo.backends.copy_sides: one side per store)."""
    side = open_side(url, base, must_exist=True)
    try:
        side.begin_snapshot()  # PostgreSQL's rows come through a server-side cursor: in a transaction
        found = {table: [tuple(row) for batch in side.rows(table, side.columns(table), 1000) for row in batch]
                 for table in side.tables()}
        side.end_snapshot()
        return found
    finally:
        side.close()


def column_names(url: str, base: Path) -> dict[str, list[str]]:
    side = open_side(url, base, must_exist=True)
    try:
        return {table: side.columns(table) for table in side.tables()}
    finally:
        side.close()


def head_of(url: str, base: Path) -> Checkpoint:
    side = open_side(url, base, must_exist=True)
    try:  # sealed first: on PostgreSQL the fixture's events are appended unsealed (issue 18)
        seal_pending(side.conn)  # type: ignore[arg-type]  # the adapter's sqlite3.Connection surface
        return head(side.conn)  # type: ignore[arg-type]
    finally:
        side.close()


def jsonb_columns(pg_url: str) -> dict[str, list[str]]:
    with psycopg.connect(pg_url) as pg:
        rows = pg.execute("SELECT table_name, column_name FROM information_schema.columns"
                          " WHERE table_schema = current_schema() AND data_type = 'jsonb'").fetchall()
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(table, []).append(column)
    return found


def as_json_where(rows: Rows, order: dict[str, list[str]], columns: dict[str, list[str]]) -> Rows:
    """jsonb keeps a JSON value, not its spelling (spaces, key order): those columns compare parsed.
    Every other value must come back exactly (the audit chain hashes texts and instants)."""
    out = dict(rows)
    for table, names in columns.items():
        at = [order[table].index(n) for n in names]
        out[table] = [tuple(json.loads(v) if i in at and isinstance(v, str) else v for i, v in enumerate(row))
                      for row in rows[table]]
    return out


@pytest.fixture
def source(conn: sqlite3.Connection, settings: Settings) -> str:
    """The URL of this run's store, with content."""
    both_programs(conn)  # a redemption, an activation and a code import, the nonprofit program's donation
    install_demo(conn, T0)  # the demo offer: its codes come in through the import too
    return settings.database_url or sqlite_url(settings.database_path)


def empty_store(sqlite: bool, tmp_path: Path, name: str) -> Iterator[str]:
    if sqlite:
        yield sqlite_url(tmp_path / name / "promo.sqlite3")
    else:
        with scratch_database() as url:
            yield url


@pytest.fixture
def other(source: str, tmp_path: Path) -> Iterator[str]:
    """An empty store of the other kind: PostgreSQL beside a SQLite source, SQLite beside a PostgreSQL one."""
    yield from empty_store(not is_sqlite(source), tmp_path, "other")


@pytest.fixture
def same(source: str, tmp_path: Path) -> Iterator[str]:
    """An empty store of the source's kind: where the round trip ends."""
    yield from empty_store(is_sqlite(source), tmp_path, "back")


def test_a_round_trip_through_the_other_store_keeps_every_row_and_the_audit_head(
        source: str, other: str, same: str, tmp_path: Path) -> None:
    source_head = head_of(source, tmp_path)  # seals first (PostgreSQL), so the rows read next are sealed
    before = table_rows(source, tmp_path)
    assert source_head.seq > 5 and len(before["reward_codes"]) > 50 and before["donation_lines"] and before["redemptions"]
    result = subprocess.run([PROMO, "db", "copy", "--from", source, "--to", other, "--batch-rows", "20"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "reward_codes: 20/" in result.stdout and "reward_codes: 40/" in result.stdout  # bounded batches, with progress
    assert f"audit head {source_head}" in result.stdout
    middle = open_side(other, tmp_path, must_exist=True)
    try:
        state = verify_chain(middle.conn)  # type: ignore[arg-type]
    finally:
        middle.close()
    assert state.ok and (state.head_seq, state.head_hash) == (source_head.seq, source_head.hash)
    report = copy_database(other, same, base=tmp_path, batch_rows=1000)
    assert report.head == source_head
    after = table_rows(same, tmp_path)
    assert set(after) == set(before)
    jsonb = jsonb_columns(other if is_sqlite(source) else same)
    order = column_names(same, tmp_path)
    for table in set(before) - {"campaign_totals"}:  # table by table: a difference names its table
        assert as_json_where(after, order, jsonb)[table] == as_json_where(before, order, jsonb)[table], table
    # The counter: what was counted, per campaign, is the same; PostgreSQL got the rows it counts on (64 per
    # campaign, as its save makes them), which the way back keeps (SQLite counts on the first).
    assert counted(after["campaign_totals"]) == counted(before["campaign_totals"])
    assert {n for _, n in shards(table_rows(other if is_sqlite(source) else source, tmp_path)["campaign_totals"])} == {64}
    assert head_of(same, tmp_path) == source_head
    verified = subprocess.run([PROMO, "audit", "verify"], capture_output=True, text=True, timeout=60,
                              env={"PROMO_CONFIG": str(write_config(same, tmp_path / "verify")), "PATH": "/usr/bin:/bin"})
    assert verified.returncode == 0, verified.stderr
    assert f"head {source_head.seq}:{source_head.hash}" in verified.stdout
    # PostgreSQL's identities continue after the copied ids, as SQLite's would.
    pg = pg_connection.connect(same if is_sqlite(other) else other)
    try:
        campaign = before["code_batches"][0][1]
        next_id = pg.execute("INSERT INTO code_batches (campaign_id, source, code_count, imported_at)"
                             " VALUES (:c, 'x', 0, '2013-08-01T00:00:00.000000Z')", {"c": campaign}).lastrowid
        assert next_id == max(int(str(r[0])) for r in before["code_batches"]) + 1
    finally:
        pg.close()


def counted(rows: list[tuple[object, ...]]) -> dict[object, int]:
    """campaign_totals rows (campaign_id, shard, redeemed, …): the total per campaign."""
    totals: dict[object, int] = {}
    for campaign, _, redeemed, *_ in rows:
        totals[campaign] = totals.get(campaign, 0) + int(str(redeemed))
    return totals


def shards(rows: list[tuple[object, ...]]) -> list[tuple[object, int]]:
    """campaign_totals rows: (campaign_id, how many rows it has)."""
    found: dict[object, int] = {}
    for campaign, *_ in rows:
        found[campaign] = found.get(campaign, 0) + 1
    return list(found.items())


def write_config(url: str, folder: Path) -> Path:
    """A config.toml for `promo` on the store at `url`."""
    folder.mkdir(parents=True, exist_ok=True)
    database = f'path = "{url.removeprefix("sqlite:///")}"' if is_sqlite(url) else f'path = "unused.sqlite3"\nurl = "{url}"'
    config = folder / "config.toml"
    config.write_text(f"[database]\n{database}\n[mail]\nsink = false\n", encoding="utf-8")
    return config


def count_codes(url: str, base: Path) -> int:
    side = open_side(url, base, must_exist=True)
    try:
        return side.count("reward_codes")
    finally:
        side.close()


def test_a_target_that_holds_rows_is_refused_and_left_alone(source: str, other: str, tmp_path: Path) -> None:
    copy_database(source, other, base=tmp_path)
    codes = count_codes(other, tmp_path)
    result = subprocess.run([PROMO, "db", "copy", "--from", source, "--to", other],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 1
    assert f"error: the target {other} is not empty: " in result.stderr
    assert "copy only into a freshly migrated, empty database" in result.stderr
    assert count_codes(other, tmp_path) == codes
    # Back the other way: the source itself is not empty either.
    with pytest.raises(CopyRefused, match=r"is not empty: .*rows"):
        copy_database(other, source, base=tmp_path)


def test_a_target_at_another_schema_version_is_refused(source: str, other: str, tmp_path: Path) -> None:
    history = "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at {} NOT NULL)"
    if is_sqlite(other):
        path = Path(other.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True)
        target = sqlite3.connect(path)
        target.execute(history.format("text"))
        target.execute("INSERT INTO schema_migrations VALUES (22, '0022_older.sql', '2013-08-01T00:00:00.000000Z')")
        target.commit()
        target.close()
    else:
        with psycopg.connect(other, autocommit=True) as pg:
            pg.execute(history.format("timestamptz"))
            pg.execute("INSERT INTO schema_migrations VALUES (22, '0022_older.sql', now())")
    latest = max(version for version, _, _ in available_migrations())
    with pytest.raises(CopyRefused, match=rf"is at schema version {latest}, the target .* at 22: run `promo migrate` on the older one"):
        copy_database(source, other, base=tmp_path)


@pytest.mark.sqlite_only("a SQLite column holding text that is no instant; PostgreSQL's timestamptz cannot hold one")
def test_an_instant_that_would_not_read_back_the_same_stops_the_copy(source: str, other: str, tmp_path: Path) -> None:
    db = sqlite3.connect(source.removeprefix("sqlite:///"))
    db.execute("UPDATE code_batches SET imported_at = '2013-08-01 10:00:00' WHERE id = (SELECT min(id) FROM code_batches)")
    db.commit()
    db.close()
    with pytest.raises(CopyRefused, match=r"code_batches.imported_at holds '2013-08-01 10:00:00' .*not an instant as Promo writes it"):
        copy_database(source, other, base=tmp_path)


def test_a_url_that_is_not_a_database_is_named(tmp_path: Path, source: str) -> None:
    result = subprocess.run([PROMO, "db", "copy", "--from", source, "--to", "mysql://x/y"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and "--from/--to: 'mysql://x/y' is not a database URL" in result.stderr
