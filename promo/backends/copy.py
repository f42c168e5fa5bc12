"""`promo db copy --from URL --to URL`: move a whole deployment between stores (issue 17, item 7).

SQLite to an empty PostgreSQL database and back. The source is read in one snapshot; the
target is written table by table, parents before the tables that refer to them (foreign
keys), in transactions of at most `batch_rows` rows, with progress. Ids are copied as they
are, and PostgreSQL's identities are set after the largest (setval).

The audit chain must verify on the target with the source's head: every hashed field must
read back byte for byte. Instants do when they are promo.timeutil.db_time text (what the
service writes); one that is not would come back in another spelling and break the chain,
so the copy stops on it, naming the row. Refused up front: a target that holds any row, and
a target whose schema version is not the source's (an empty target is migrated first).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from promo import totals
from promo.audit import Checkpoint, seal_pending, verify_chain
from promo.backends.copy_sides import PostgresSide, Row, Side, SqliteSide
from promo.backends.store import SCHEMES, StoreUrlError, redacted, sqlite_path
from promo.db import transaction

BATCH_ROWS = 10_000
DB_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")  # promo.timeutil.db_time's one spelling


class CopyRefused(Exception):
    """The copy cannot start, or had to stop; the message says why and what to do."""


@dataclass(frozen=True)
class CopyReport:
    tables: int
    rows: int
    head: Checkpoint


def open_side(url: str, base: Path, *, must_exist: bool) -> Side:
    scheme = url.partition(":")[0].lower()
    if scheme not in SCHEMES or "://" not in url:
        raise StoreUrlError(f"{redacted(url)!r} is not a database URL: use sqlite:///var/promo.sqlite3 "
                            "or postgresql://user@host:5432/dbname")
    if scheme == "sqlite":
        path = sqlite_path(url, base)
        if must_exist and not path.is_file():
            raise CopyRefused(f"{url}: no such SQLite file ({path})")
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteSide(path, url)
    return PostgresSide(url, redacted(url))


def copy_database(source_url: str, target_url: str, *, base: Path, batch_rows: int = BATCH_ROWS,
                  progress: Callable[[str], None] = lambda line: None) -> CopyReport:
    """Copy every row of the source into the empty target; the target's verified audit head."""
    if batch_rows < 1:
        raise CopyRefused(f"--batch-rows must be at least 1, not {batch_rows}")
    source = open_side(source_url, base, must_exist=True)
    try:
        target = open_side(target_url, base, must_exist=False)
        try:
            return _copy(source, target, batch_rows, progress)
        finally:
            target.close()
    finally:
        source.close()


def _copy(source: Side, target: Side, batch_rows: int, progress: Callable[[str], None]) -> CopyReport:
    version = source.version()
    if version is None:
        raise CopyRefused(f"the source {source.name} holds no Promo schema (no schema_migrations)")
    if target.version() is None:
        applied = target.migrate()
        progress(f"migrated the empty target: {', '.join(applied)}")
    if target.version() != version:
        raise CopyRefused(f"the source {source.name} is at schema version {version}, the target {target.name} at "
                          f"{target.version()}: run `promo migrate` on the older one first, so both hold the same schema")
    filled = [f"{t} ({n} rows)" for t in target.tables() if (n := target.count(t))]
    if filled:
        raise CopyRefused(f"the target {target.name} is not empty: {', '.join(filled[:5])}"
                          f"{' …' if len(filled) > 5 else ''}; copy only into a freshly migrated, empty database")
    order = copy_order(source, target)
    sealed = seal_pending(source.conn)  # PostgreSQL's unsealed events join the chain first: the head covers them
    if sealed:
        progress(f"sealed {sealed} audit events on the source before copying")
    source.begin_snapshot()
    try:
        source_head = source.snapshot_head()
        total = 0
        for table in order:
            total += _copy_table(source, target, table, batch_rows, progress)
    finally:
        source.end_snapshot()
    target.finish()
    made = make_counter_rows(target)
    if made:
        progress(f"made {made} campaign counter rows the target's store counts on (PostgreSQL: one per writer at once)")
    state = verify_chain(target.conn, source_head)
    if not state.ok or Checkpoint(state.head_seq, state.head_hash) != source_head:
        raise CopyRefused(f"the audit chain does not verify on the target (event {state.first_broken}: {state.problem}); "
                          f"the source's head is {source_head}")
    progress(f"done: {total} rows in {len(order)} tables; audit head {source_head} verified on the target")
    return CopyReport(len(order), total, source_head)


def make_counter_rows(target: Side) -> int:
    """Each campaign's counter rows as its store makes them at save (totals.make_rows): a
    campaign copied from SQLite has one, and on PostgreSQL its first concurrent redemptions
    would otherwise wait for each other to make the rest. What was counted is unchanged (the
    new rows hold 0). How many rows were made."""
    with transaction(target.conn):
        ids = [int(r[0]) for r in target.conn.execute("SELECT id FROM campaigns ORDER BY id").fetchall()]
        return sum(len(totals.make_rows(target.conn, campaign_id)) for campaign_id in ids)


def copy_order(source: Side, target: Side) -> list[str]:
    """The source's tables, each after the tables it refers to (the target's foreign keys)."""
    tables = source.tables()
    known = set(target.tables())
    missing = [t for t in tables if t not in known and source.count(t)]
    if missing:
        raise CopyRefused(f"the target {target.name} has no table {', '.join(missing)}: both stores must hold the same schema")
    tables = [t for t in tables if t in known]
    parents = {t: target.refers_to(t) & set(tables) for t in tables}
    order: list[str] = []
    while len(order) < len(tables):
        ready = [t for t in tables if t not in order and parents[t] <= set(order)]
        if not ready:
            raise CopyRefused(f"the foreign keys of {', '.join(t for t in tables if t not in order)} form a cycle")
        order.extend(ready)
    return order


def _copy_table(source: Side, target: Side, table: str, batch_rows: int, progress: Callable[[str], None]) -> int:
    columns = source.columns(table)
    absent = [c for c in columns if c not in set(target.columns(table))]
    if absent:
        raise CopyRefused(f"the target's table {table} has no column {', '.join(absent)}: both stores must hold the same schema")
    times = [i for i, c in enumerate(columns) if c in target.time_columns(table)]
    expected, done = source.count(table), 0
    for batch in source.rows(table, columns, batch_rows):
        for row in batch:
            _check_times(table, columns, times, row)
        target.write(table, columns, batch)
        done += len(batch)
        progress(f"{table}: {done}/{expected} rows")
    if not expected:
        progress(f"{table}: empty")
    return done


def _check_times(table: str, columns: list[str], times: list[int], row: Row) -> None:
    for i in times:
        value = row[i]
        if value is not None and not (isinstance(value, str) and DB_TIME.fullmatch(value)):
            raise CopyRefused(f"{table}.{columns[i]} holds {value!r} (row {list(row)[:1]}), not an instant as Promo writes it "
                              "(2026-01-31T12:00:00.000000Z): it would not read back the same. The target is partly "
                              "filled: drop it, fix the row on the source, and copy again")
