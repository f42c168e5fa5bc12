"""The benchmark's samplers (bench/sampling.py, issue 18): CPU seconds from /proc count what a
process burned, from zero for one that starts during the run; lock waits from pg_stat_activity
name the relation and the statement that waits on a row another transaction holds."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg

from bench.sampling import SAMPLER_NAME, CpuMeter, LockSampler, backend_pids, cpu_seconds
from tests.support.pg import ADMIN_URL

# Burns `seconds` of its own CPU time, then waits for its stdin to close.
BURN = ("import sys, time\nwhile time.process_time() < float(sys.argv[1]): pass\n"
        "print('burnt', flush=True)\nsys.stdin.read()")


def burner(seconds: float) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", BURN, str(seconds)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)


def test_cpu_seconds_count_what_each_process_burnt_including_one_started_during_the_run() -> None:
    idle = burner(0)
    assert idle.stdout is not None and idle.stdout.readline() == "burnt\n"
    pids = [idle.pid]
    meter = CpuMeter(lambda: pids, interval=0.05).start()
    late = burner(0.6)  # starts after the meter did: counted from zero
    pids.append(late.pid)
    assert late.stdout is not None and late.stdout.readline() == "burnt\n"
    burnt = meter.stop()
    for process in (idle, late):
        process.communicate("")
    assert burnt >= 0.55  # the late burner's 0.6 s (ticks of 10 ms), the idle one's ~0
    assert meter.last[idle.pid] - meter.first[idle.pid] < 0.3
    assert cpu_seconds(late.pid) is None  # gone: None, not an error


def sample_a_wait(pg_url: str, statement: str, release: Callable[[], object], *, samples: int) -> dict[str, Any]:
    """A LockSampler's summary while another connection runs `statement`, which waits on a lock
    held here, for at least `samples` lock-wait samples; then release() and the wait ends."""
    def waiter() -> None:
        with psycopg.connect(pg_url, autocommit=True) as conn:
            conn.execute(statement)

    waiting = threading.Thread(target=waiter)
    sampler = LockSampler(pg_url, interval=0.01).start()
    waiting.start()
    deadline = time.monotonic() + 30
    while sum(sampler.waits.values()) < samples:
        assert time.monotonic() < deadline, sampler.summary()
        time.sleep(0.02)
    release()
    waiting.join(10)
    return sampler.stop()


def test_lock_waits_name_the_relation_and_the_statement_that_waits(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as setup:
        setup.execute("CREATE TABLE hot (id int PRIMARY KEY, n int)")
        setup.execute("INSERT INTO hot VALUES (1, 0), (2, 0)")
    holder = psycopg.connect(pg_url)
    holder.execute("UPDATE hot SET n = 1 WHERE id = 1")  # holds the row until it commits
    summary = sample_a_wait(pg_url, "UPDATE hot SET n = 2 WHERE id = 1", holder.commit, samples=20)
    holder.close()
    top = summary["by_lock"][0]
    assert top["lock"] == "transactionid" and top["relation"] == "hot" and "UPDATE hot SET n = 2" in top["query"]
    # The holder is idle in transaction (busy, not waiting): the waiter's share is below one.
    assert 0 < summary["lock_wait_share"] < 1 and summary["lock_wait_samples"] >= 20
    assert all("UPDATE hot SET n = 1" not in entry["query"] for entry in summary["by_lock"])


def test_the_backends_of_a_database_are_found_for_the_cpu_meter(pg_url: str) -> None:
    name = pg_url.rpartition("/")[2]
    with psycopg.connect(pg_url) as conn:
        pid = conn.info.backend_pid
        assert pid in backend_pids(ADMIN_URL, name)()
        meter = CpuMeter(backend_pids(ADMIN_URL, name), interval=0.05).start()
        conn.execute("SELECT count(*) FROM generate_series(1, 3000000)").fetchone()
        assert meter.stop() > 0 and pid in meter.last


def test_the_lock_samplers_own_backend_is_not_counted_as_the_servers_cpu(pg_url: str) -> None:
    """The sampler queries pg_stat_activity every few ms on the bench database: its backend's CPU
    is the measurement's, not the redemptions'."""
    name = pg_url.rpartition("/")[2]
    sampler = LockSampler(pg_url, interval=0.01).start()
    try:
        deadline = time.monotonic() + 30
        while sampler.rounds == 0:
            assert time.monotonic() < deadline, "the sampler never sampled"
            time.sleep(0.01)
        with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
            row = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                                (name, SAMPLER_NAME)).fetchone()
        assert row is not None
        with psycopg.connect(pg_url) as other:
            found = backend_pids(ADMIN_URL, name)()
            assert other.info.backend_pid in found and row[0] not in found
    finally:
        sampler.stop()


def test_a_wait_on_an_advisory_lock_is_named_by_its_lock_type(pg_url: str) -> None:
    """No relation to name (the audit chain's head lock was one, bench/hot_rows.py): "advisory"."""
    holder = psycopg.connect(pg_url, autocommit=True)
    holder.execute("SELECT pg_advisory_lock(7001)")
    summary = sample_a_wait(pg_url, "SELECT pg_advisory_lock(7001)", lambda: holder.execute("SELECT pg_advisory_unlock(7001)"),
                            samples=5)
    holder.close()
    top = summary["by_lock"][0]
    assert top["lock"] == "advisory" and top["relation"] == "advisory" and "pg_advisory_lock" in top["query"]
