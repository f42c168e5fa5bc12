"""`promo backup` while redemptions keep committing: the copy is consistent and verifiable."""

from __future__ import annotations

import multiprocessing
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from promo.backup import verify_backup
from promo.config import Settings
from promo.db import transaction
from tests.support import race_worker
from tests.support.both_programs import both_programs
from tests.support.cli import PROMO
from tests.support.database import SLUG, product_key
from tests.support.invariants import assert_invariants, prepared

pytestmark = pytest.mark.sqlite_only("promo backup is SQLite's backup API and integrity_check; PostgreSQL is "
                                 "backed up with pg_dump (README), and promo backup refuses there (test_cli.py)")


@pytest.mark.slow
def test_backup_under_load_is_consistent_and_restores(settings: Settings, tmp_path: Path) -> None:
    path = prepared(settings, keys=3000, codes=3000, owner="")  # keys with no account, any account redeems (R-X5 allowed)
    ctx = multiprocessing.get_context("spawn")
    jobs = [[(f"load{p}-{n}@example.com", product_key(n)) for n in range(p, 3000, 2)] for p in range(2)]
    with ctx.Pool(2) as pool:
        load = pool.starmap_async(race_worker.run, [(str(path), time.time() + 1.0, j) for j in jobs])
        time.sleep(1.5)  # the load is running
        env = {"PROMO_CONFIG": str(settings.database_path.parent / "config.toml"), "PATH": "/usr/bin:/bin"}
        copies = []
        for i in range(3):  # several backups during the load
            target = tmp_path / f"backup-{i}.sqlite3"
            result = subprocess.run([PROMO, "backup", str(target)], env=env, capture_output=True, text=True, timeout=60)
            assert result.returncode == 0, result.stderr
            assert "the audit chain verified" in result.stdout
            copies.append(target)
        assert not load.ready(), "the load finished before the backups: make it longer"
        outcomes = [o for part in load.get(timeout=120) for o in part]
    assert outcomes.count("redeemed") == 3000
    counts = []
    for copy in copies:  # the "restore": open each copy on its own and check it
        report = verify_backup(copy)
        assert_invariants(copy)
        counts.append(report.redemptions)
    assert counts == sorted(counts) and 0 < counts[0] and counts[-1] < 3000  # snapshots taken mid-load
    assert_invariants(path)


def test_backup_refuses_to_overwrite_and_detects_a_damaged_copy(settings: Settings, conn: sqlite3.Connection,
                                                                 tmp_path: Path) -> None:
    from promo.backup import backup_database
    target = tmp_path / "b.sqlite3"
    backup_database(conn, target)
    with pytest.raises(FileExistsError):
        backup_database(conn, target)
    damaged = sqlite3.connect(target)
    damaged.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 1")
    damaged.commit()
    damaged.close()
    with pytest.raises(ValueError, match="audit chain broken at event 1"):
        verify_backup(target)


def test_a_backup_of_a_database_using_both_programs_is_verified(settings: Settings, conn: sqlite3.Connection,
                                                                tmp_path: Path) -> None:
    """Issue 14, 7: every backup was refused once one donation was granted (its licence keys
    were counted as offer codes without redemptions). Each campaign's books are checked by kind."""
    both_programs(conn)
    target = tmp_path / "copies" / "both.sqlite3"
    env = {"PROMO_CONFIG": str(settings.database_path.parent / "config.toml"), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([PROMO, "backup", str(target)], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "1 redemptions, 1 donation requests" in result.stdout and "the books of 2 campaign(s)" in result.stdout
    assert sorted(p.name for p in target.parent.iterdir()) == ["both.sqlite3"]
    report = verify_backup(target)  # the "restore": the copy on its own
    assert (report.redemptions, report.donation_requests, report.campaigns) == (1, 1, 2)
    copy = sqlite3.connect(target)
    assert copy.execute("SELECT COUNT(*) FROM donation_lines").fetchone()[0] == 2
    copy.close()


def _issue_a_code_from_nowhere(conn: sqlite3.Connection, slug: str) -> None:
    conn.execute("UPDATE reward_codes SET issued_at = '2026-03-02T10:00:00Z' WHERE id = (SELECT MIN(k.id) FROM reward_codes k"
                 " JOIN campaigns c ON c.id = k.campaign_id WHERE c.slug = ? AND k.issued_at IS NULL)", (slug,))


@pytest.mark.parametrize(("damage", "message"), [
    (lambda c: _issue_a_code_from_nowhere(c, SLUG), f"campaign {SLUG}: the issued books do not balance: 1 accepted redemptions"),
    (lambda c: _issue_a_code_from_nowhere(c, "nonprofit-donations"),
     "campaign nonprofit-donations: the issued books do not balance: 2 donation request lines but 3 issued licence keys"),
    (lambda c: c.execute("DELETE FROM outbox WHERE subject_ref LIKE 'redemption:%'"),
     f"campaign {SLUG}: the emails books do not balance: 1 issued codes but 0 emails sent + 0 pending + 0 failed"),
    (lambda c: c.execute("UPDATE audit_events SET actor = 'mallory' WHERE seq = 2"), "audit chain broken at event 2"),
], ids=["offer code without redemption", "licence key without request", "redemption without email", "audit chain"])
def test_a_copy_that_fails_verification_leaves_nothing_behind(conn: sqlite3.Connection, tmp_path: Path,
                                                              damage: object, message: str) -> None:
    from promo.backup import backup_database
    both_programs(conn)
    with transaction(conn):
        damage(conn)  # type: ignore[operator]
    target = tmp_path / "copies" / "damaged.sqlite3"
    with pytest.raises(ValueError, match=re.escape(message)):
        backup_database(conn, target)
    assert list(target.parent.iterdir()) == []  # neither the backup nor its .partial file
