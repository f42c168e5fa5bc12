"""Issue 6's promise that the benchmark runs with one command and prints its table: the
whole harness (real `promo serve`, wrk at 64 and 512 connections, refusals, the storage
figures, the relay to a sink, the database verification, the JSON), at a hundredth of
its size and 1 s per wrk run. The figures are not judged here: speed is measured by
`scripts/bench`, never asserted in tests."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("baseline_hello_post", "redeem_64", "redeem_512", "refusals_64")


@pytest.mark.slow
def test_the_benchmark_runs_whole_and_prints_its_table(tmp_path: Path) -> None:
    assert shutil.which("wrk"), "the benchmark needs Debian's wrk (scripts/test installs it when it can)"
    out, real = tmp_path / "results.json", ROOT / "bench" / "results.json"
    before = real.stat().st_mtime_ns if real.exists() else None
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--scale", "0.01", "--seconds", "3",
                          "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["codes"] == 10_000 and results["activations"] == 2_000
    table = run.stdout
    for name in (*FIGURES, "storage_redeem_64_per_commit_per_s", "storage_redeem_per_s", "mail_relay_msgs_per_s",
                 "server_peak_rss_mb", "ratio_redeem64_to_baseline", "ratio_redeem64_to_storage", "verify"):
        assert name in table and name in results
    for name in FIGURES:  # wrk answered, and nothing failed at the socket
        assert results[name]["requests"] > 0 and results[name]["socket_errors"] == 0
    assert results["refusals_64"]["all_refused"]  # every refusal line was refused
    verified = results["verify"]
    assert verified.pop("redemptions") > 0 and all(verified.values()), verified
    assert (real.stat().st_mtime_ns if real.exists() else None) == before  # the real results are left alone


@pytest.mark.slow
def test_the_signin_burst_benchmark_runs_and_prints_its_figures(tmp_path: Path) -> None:
    """`scripts/bench signin-burst` at a small size: a real `promo serve`, redemptions
    throughout, a burst of failed staff sign-ins from distinct loopback addresses (each one
    reaches the password check: all 401, none 429). Figures printed, not judged."""
    out = tmp_path / "burst.json"
    run = subprocess.run([sys.executable, str(ROOT / "bench" / "signin_burst.py"), "--rate", "20", "--quiet", "1",
                          "--burst", "5", "--after", "0.5", "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["signin_statuses"] == {"401": 5} and results["redemption_errors"] == 0
    assert results["redemptions_quiet"] > 0 and results["redemptions_during_burst"] > 0
    for line in ("quiet", "during the burst", "ratio burst / quiet"):
        assert line in run.stdout
