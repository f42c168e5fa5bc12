"""bench/dashboard.py runs whole and prints its table (at a small size: the times are
measured by running it, never asserted in tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_dashboard_benchmark_runs_and_prints_its_table(tmp_path: Path) -> None:
    out = tmp_path / "dashboard.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "dashboard.py"), "--codes", "300", "--redemptions", "100",
                          "--repeat", "1", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())
    assert (results["codes"], results["redemptions"]) == (300, 100)
    for size in ("empty", "big"):
        assert set(results[size]) == {"dashboard_ms", "overview_ms", "campaign_list_stock_ms", "old_pool_scan_ms"}
    assert "dashboard_ms" in run.stdout and "300 codes / 100 attempts" in run.stdout
