"""`promo backup` while redemptions keep committing: the copy is consistent and verifiable."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from promo.backup import verify_backup
from promo.config import Settings
from tests import race_worker
from tests.conftest import product_key
from tests.test_cli import PROMO
from tests.test_concurrency import assert_invariants, prepared


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
            assert "integrity and audit chain verified" in result.stdout
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
