"""`promo db copy` (issue 17, item 7): a SQLite deployment with real content (a redemption,
imports, the nonprofit program's granted donation, the demo offer) goes to an empty
PostgreSQL database and back to a new SQLite file; every row of every table comes back, and
the audit chain verifies on each target with the source's head."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from promo.audit import head, verify_chain
from promo.backends import pg_connection
from promo.backends.copy import CopyRefused, copy_database
from promo.config import Settings
from promo.db import connect
from promo.demo import install_demo
from tests.support.both_programs import both_programs
from tests.support.cli import PROMO
from tests.support.nonprofit import T0
from tests.support.pg_scratch import scratch_database


def sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"  # sqlite:/// + an absolute path: sqlite:////tmp/...


def table_rows(conn: sqlite3.Connection) -> dict[str, list[tuple[object, ...]]]:
    """Every table but the migration history, each in primary key (or rowid) order."""
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"
                                         " AND name NOT LIKE 'sqlite_%' AND name != 'schema_migrations' ORDER BY name")]
    found = {}
    for table in tables:
        key = [r[1] for r in sorted(conn.execute(f"PRAGMA table_info({table})"), key=lambda r: r[5]) if r[5]] or ["rowid"]
        found[table] = [tuple(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY {', '.join(key)}")]
    return found


def jsonb_columns(pg_url: str) -> dict[str, list[str]]:
    with psycopg.connect(pg_url) as pg:
        rows = pg.execute("SELECT table_name, column_name FROM information_schema.columns"
                          " WHERE table_schema = current_schema() AND data_type = 'jsonb'").fetchall()
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(table, []).append(column)
    return found


def as_json_where(conn: sqlite3.Connection, rows: dict[str, list[tuple[object, ...]]],
                  columns: dict[str, list[str]]) -> dict[str, list[tuple[object, ...]]]:
    """jsonb keeps a JSON value, not its spelling (spaces, key order): those columns compare parsed.
    Every other value must come back exactly (the audit chain hashes texts and instants)."""
    out = dict(rows)
    for table, names in columns.items():
        order = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
        at = [order.index(n) for n in names]
        out[table] = [tuple(json.loads(v) if i in at and isinstance(v, str) else v for i, v in enumerate(row))
                      for row in rows[table]]
    return out


@pytest.fixture
def scratch_pg() -> Iterator[str]:
    with scratch_database() as url:
        yield url


@pytest.fixture
def source(conn: sqlite3.Connection, settings: Settings) -> Iterator[Path]:
    both_programs(conn)  # a redemption, an activation and a code import, the nonprofit program's donation
    install_demo(conn, T0)  # the demo offer: its codes come in through the import too
    yield settings.database_path


def test_a_round_trip_through_postgresql_keeps_every_row_and_the_audit_head(source: Path, tmp_path: Path) -> None:
    original = connect(source)
    before = table_rows(original)
    source_head = head(original)
    assert source_head.seq > 5 and len(before["reward_codes"]) > 50 and before["donation_lines"] and before["redemptions"]
    with scratch_database() as pg_url:
        result = subprocess.run([PROMO, "db", "copy", "--from", sqlite_url(source), "--to", pg_url, "--batch-rows", "20"],
                                capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert "reward_codes: 20/" in result.stdout and "reward_codes: 40/" in result.stdout  # bounded batches, with progress
        assert f"audit head {source_head}" in result.stdout
        pg = pg_connection.connect(pg_url)
        state = verify_chain(pg)
        assert state.ok and (state.head_seq, state.head_hash) == (source_head.seq, source_head.hash)
        # The identities continue after the copied ids, as SQLite's would.
        campaign = before["code_batches"][0][1]
        next_id = pg.execute("INSERT INTO code_batches (campaign_id, source, code_count, imported_at)"
                             " VALUES (:c, 'x', 0, '2013-08-01T00:00:00.000000Z')", {"c": campaign}).lastrowid
        assert next_id == max(r[0] for r in before["code_batches"]) + 1
        pg.execute("DELETE FROM code_batches WHERE id = :i", {"i": next_id})
        pg.close()
        back = tmp_path / "back" / "promo.sqlite3"
        report = copy_database(pg_url, sqlite_url(back), base=tmp_path, batch_rows=1000)
        assert report.head == source_head
        jsonb = jsonb_columns(pg_url)
    copied = connect(back)
    after = table_rows(copied)
    assert set(after) == set(before)
    for table in before:  # table by table: a difference names its table
        assert as_json_where(copied, after, jsonb)[table] == as_json_where(original, before, jsonb)[table], table
    assert head(copied) == source_head
    verified = subprocess.run([PROMO, "audit", "verify"], capture_output=True, text=True, timeout=60,
                              env={"PROMO_CONFIG": str(write_config(back)), "PATH": "/usr/bin:/bin"})
    assert verified.returncode == 0, verified.stderr
    assert f"head {source_head.seq}:{source_head.hash}" in verified.stdout


def write_config(database: Path) -> Path:
    config = database.parent / "config.toml"
    config.write_text(f'[database]\npath = "{database.name}"\n[mail]\nsink = false\n', encoding="utf-8")
    return config


def test_a_target_that_holds_rows_is_refused_and_left_alone(source: Path, scratch_pg: str, tmp_path: Path) -> None:
    copy_database(sqlite_url(source), scratch_pg, base=tmp_path)
    with psycopg.connect(scratch_pg) as pg:
        codes = pg.execute("SELECT count(*) FROM reward_codes").fetchone()
    result = subprocess.run([PROMO, "db", "copy", "--from", sqlite_url(source), "--to", scratch_pg],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 1
    assert f"error: the target {scratch_pg} is not empty: " in result.stderr
    assert "copy only into a freshly migrated, empty database" in result.stderr
    with psycopg.connect(scratch_pg) as pg:
        assert pg.execute("SELECT count(*) FROM reward_codes").fetchone() == codes
    # Back to SQLite: the source's own file is not empty either.
    with pytest.raises(CopyRefused, match=r"is not empty: .*rows"):
        copy_database(scratch_pg, sqlite_url(source), base=tmp_path)


def test_a_target_at_another_schema_version_is_refused(source: Path, scratch_pg: str, tmp_path: Path) -> None:
    pg = pg_connection.connect(scratch_pg)
    pg.raw.execute("CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL)")
    pg.raw.execute("INSERT INTO schema_migrations VALUES (22, '0022_older.sql', now())")
    pg.close()
    with pytest.raises(CopyRefused, match=r"is at schema version \d+, the target .* at 22: run `promo migrate` on the older one"):
        copy_database(sqlite_url(source), scratch_pg, base=tmp_path)


def test_an_instant_that_would_not_read_back_the_same_stops_the_copy(source: Path, scratch_pg: str, tmp_path: Path) -> None:
    db = sqlite3.connect(source)
    db.execute("UPDATE code_batches SET imported_at = '2013-08-01 10:00:00' WHERE id = (SELECT min(id) FROM code_batches)")
    db.commit()
    db.close()
    with pytest.raises(CopyRefused, match=r"code_batches.imported_at holds '2013-08-01 10:00:00' .*not an instant as Promo writes it"):
        copy_database(sqlite_url(source), scratch_pg, base=tmp_path)


def test_a_url_that_is_not_a_database_is_named(tmp_path: Path, source: Path) -> None:
    result = subprocess.run([PROMO, "db", "copy", "--from", sqlite_url(source), "--to", "mysql://x/y"],
                            capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert result.returncode == 2 and "--from/--to: 'mysql://x/y' is not a database URL" in result.stderr
