"""bench/pg_floor.py (issue 18) at its smallest: the redemption it records becomes pgbench
scripts that run on PostgreSQL and write what the service writes (the script checks every
transaction's redemption, outbox row, audit event and decision-log row, and no code twice,
and exits non-zero otherwise), and the comparison with SQLite is printed."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(shutil.which("pgbench") is None, reason="pgbench comes with PostgreSQL's server packages")
def test_the_floor_bench_runs_the_recorded_redemption_through_pgbench_and_checks_what_it_wrote() -> None:
    # pgbench stops a client that finds no code left: 12,000 codes last a 1 s run at 12,000/s,
    # several times what this machine does (about 1,500/s at 4 connections)
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "pg_floor.py"), "--seconds", "1", "--records", "12000",
                           "--sqlite", "200", "--in-flight", "8", "--connections", "4"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    for way in ("waited", "one round trip"):
        line = next(line for line in done.stdout.splitlines() if line.strip().startswith(f"pgbench, {way}, 4 connections"))
        per_s, client_ms, server_ms, total_ms = (float(x) for x in re.findall(r"\d+\.?\d*", line.split("connections")[1])[:4])
        assert per_s > 0 and server_ms > 0 and total_ms == pytest.approx(client_ms + server_ms, abs=0.02)
    assert "SQLite, group commit, 8 in flight" in done.stdout
