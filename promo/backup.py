"""Online backups: SQLite's backup API copies a consistent snapshot while the service keeps
writing, then the copy is checked: integrity, each campaign's books (the same ones
/audit/reconciliation keeps, per campaign kind: a donation program's licence keys balance
against its request lines, an offer's codes against its redemptions), and the audit chain.
A copy that fails a check is deleted: only a verified backup is ever left behind."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from promo.audit import verify_chain
from promo.reconciliation import reconcile
from promo.timeutil import utcnow


@dataclass(frozen=True)
class BackupReport:
    path: Path
    pages: int
    redemptions: int
    audit_events: int
    donation_requests: int = 0
    campaigns: int = 0


def backup_database(source: sqlite3.Connection, target: Path, *, now: datetime | None = None) -> BackupReport:
    """Copy `source` into a new file at `target` (refuses to overwrite) and verify the copy.
    On any failure nothing is left at `target` or beside it (no `.partial` file)."""
    if target.exists():
        raise FileExistsError(f"{target} already exists; choose a new file")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        copy = sqlite3.connect(partial)
        try:
            # pages=-1: one step, so the snapshot is consistent even while writers continue.
            source.backup(copy, pages=-1)
            copy.execute("PRAGMA journal_mode=DELETE")  # a self-contained single file
        finally:
            copy.close()
        report = verify_backup(partial, now=now)
        partial.rename(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return BackupReport(target, report.pages, report.redemptions, report.audit_events, report.donation_requests,
                        report.campaigns)


def verify_backup(path: Path, *, now: datetime | None = None) -> BackupReport:
    """Open a backup read-only and check it: integrity, every campaign's books, the chain.
    Raises ValueError naming the first thing that does not hold."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            raise ValueError(f"{path}: integrity check failed: {integrity}")
        slugs = [row[0] for row in conn.execute("SELECT slug FROM campaigns ORDER BY id")]
        for slug in slugs:
            _check_books(conn, path, slug, now or utcnow())
        chain = verify_chain(conn)
        if not chain.ok:
            raise ValueError(f"{path}: audit chain broken at event {chain.first_broken}: {chain.problem}")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        redemptions = conn.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0]
        donations = conn.execute("SELECT COUNT(*) FROM donation_requests").fetchone()[0]
        return BackupReport(path, pages, redemptions, chain.events, donations, len(slugs))
    finally:
        conn.close()


def _check_books(conn: sqlite3.Connection, path: Path, slug: str, now: datetime) -> None:
    for check in reconcile(conn, slug, now).checks:
        if not check.ok:
            right = " + ".join(f"{n} {name}" for name, n in check.right)
            detail = f" ({'; '.join(check.rows[:3])})" if check.rows else ""
            raise ValueError(f"{path}: campaign {slug}: the {check.name} books do not balance: "
                             f"{check.left[1]} {check.left[0]} but {right}{detail}")
