"""Online backups: SQLite's backup API copies a consistent snapshot while the service keeps
writing, then the copy is checked (integrity and the redemption invariants)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from promo.audit import verify_chain


@dataclass(frozen=True)
class BackupReport:
    path: Path
    pages: int
    redemptions: int
    audit_events: int


def backup_database(source: sqlite3.Connection, target: Path) -> BackupReport:
    """Copy `source` into a new file at `target` (refuses to overwrite) and verify the copy."""
    if target.exists():
        raise FileExistsError(f"{target} already exists; choose a new file")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    copy = sqlite3.connect(partial)
    try:
        # pages=-1: one step, so the snapshot is consistent even while writers continue.
        source.backup(copy, pages=-1)
        copy.execute("PRAGMA journal_mode=DELETE")  # a self-contained single file
    finally:
        copy.close()
    report = verify_backup(partial)
    partial.rename(target)
    return BackupReport(target, report.pages, report.redemptions, report.audit_events)


def verify_backup(path: Path) -> BackupReport:
    """Open a backup read-only and check it: integrity, one code per redemption, the chain."""
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if integrity != "ok":
            raise ValueError(f"{path}: integrity check failed: {integrity}")
        issued = conn.execute("SELECT COUNT(*) FROM reward_codes WHERE issued_at IS NOT NULL").fetchone()[0]
        redemptions = conn.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0]
        if issued != redemptions:
            raise ValueError(f"{path}: {issued} issued codes but {redemptions} redemptions")
        chain = verify_chain(conn)
        if not chain.ok:
            raise ValueError(f"{path}: audit chain broken at event {chain.first_broken}: {chain.problem}")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        return BackupReport(path, pages, redemptions, chain.events)
    finally:
        conn.close()
