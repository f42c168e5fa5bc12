"""What the benchmark samples while a load runs (issue 18): CPU seconds of processes from /proc
(the app's `promo serve` processes, the PostgreSQL backends serving the bench database), and
lock waits from pg_stat_activity.

CPU: /proc/<pid>/stat's utime + stime (every thread of the process), read at the start, at
every sampling interval and at the end; a process first seen after the start counts from zero
(it started during the run), one that exits keeps its last reading. PostgreSQL's shared
processes (WAL writer, checkpointer) are left out: the server is shared, so they cannot be
attributed to one database.

Lock waits: every `interval` s, each client backend of the database that is not idle is one
sample of "backend time"; a sample whose wait_event_type is Lock is waiting on a lock. The
share, and its breakdown by (lock, relation, query): a hot row shared by all redemptions shows
as one relation and statement holding most of the waits.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import psycopg

TICKS = os.sysconf("SC_CLK_TCK")
# The LockSampler's own backend is named so that backend_pids() leaves it out: its queries are
# the measurement's CPU, not the server's work for the redemptions.
SAMPLER_NAME = "promo-bench-sampler"


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (all its threads) in seconds; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the name, in parentheses, may hold spaces
    return (int(fields[11]) + int(fields[12])) / TICKS  # fields 14 and 15 of proc(5)


class CpuMeter:
    """CPU seconds used by the processes `pids()` names, from start() to stop(), sampled in a
    thread of its own every `interval` s (so short-lived and late-starting processes count)."""

    def __init__(self, pids: Callable[[], Iterable[int]], interval: float = 0.5):
        self.pids, self.interval = pids, interval
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _read(self, *, starting: bool = False) -> None:
        for pid in self.pids():
            seconds = cpu_seconds(pid)
            if seconds is None:
                continue
            self.first.setdefault(pid, seconds if starting else 0.0)
            self.last[pid] = seconds

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._read()

    def start(self) -> CpuMeter:
        self._read(starting=True)
        self._thread.start()
        return self

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        self._read()
        return round(sum(self.last[pid] - self.first[pid] for pid in self.last), 3)


def backend_pids(admin_url: str, database: str) -> Callable[[], list[int]]:
    """pids() of the client backends connected to `database` (for a CpuMeter), but a
    LockSampler's."""
    def pids() -> list[int]:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            return [row[0] for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = %s AND backend_type = 'client backend'"
                " AND pid <> pg_backend_pid() AND application_name <> %s", (database, SAMPLER_NAME))]
    return pids


# The relation of a lock wait: the waited lock's, else the row's (the tuple lock held while
# waiting for its holder's transaction), else the waited lock's type ("advisory").
SAMPLE = """
SELECT a.wait_event_type, a.wait_event, left(regexp_replace(a.query, '\\s+', ' ', 'g'), 160),
       CASE WHEN a.wait_event_type = 'Lock' THEN COALESCE(
         (SELECT l.relation::regclass::text FROM pg_locks l WHERE l.pid = a.pid AND l.relation IS NOT NULL
            AND (NOT l.granted OR l.locktype = 'tuple') ORDER BY l.granted LIMIT 1),
         (SELECT l.locktype FROM pg_locks l WHERE l.pid = a.pid AND NOT l.granted LIMIT 1)) END
FROM pg_stat_activity a
WHERE a.datname = current_database() AND a.backend_type = 'client backend' AND a.state <> 'idle'
  AND a.pid <> pg_backend_pid()
"""


class LockSampler:
    """Samples the database's busy client backends every `interval` s, in a thread, until stop()."""

    def __init__(self, url: str, interval: float = 0.05):
        self.url, self.interval = url, interval
        self.busy = 0  # backend samples not idle
        self.waits: Counter[tuple[str, str, str]] = Counter()  # (lock, relation, query) -> samples
        self.events: Counter[str] = Counter()  # "type:event" of every busy sample (CPU is "running")
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True, application_name=SAMPLER_NAME) as conn:
            while not self._stop.is_set():
                for kind, event, query, relation in conn.execute(SAMPLE):
                    self.busy += 1
                    self.events[f"{kind}:{event}" if kind else "running"] += 1
                    if kind == "Lock":
                        self.waits[(event, relation or "-", query or "")] += 1
                self.rounds += 1
                self._stop.wait(self.interval)

    def start(self) -> LockSampler:
        self._thread.start()
        return self

    def stop(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join()
        return self.summary()

    def summary(self, top: int = 5) -> dict[str, Any]:
        waiting = sum(self.waits.values())
        return {
            "rounds": self.rounds, "busy_backend_samples": self.busy, "lock_wait_samples": waiting,
            "lock_wait_share": round(waiting / self.busy, 4) if self.busy else 0.0,
            "by_lock": [{"lock": lock, "relation": relation, "query": query, "samples": n,
                         "share_of_busy": round(n / self.busy, 4)}
                        for (lock, relation, query), n in self.waits.most_common(top)],
            "wait_events": dict(self.events.most_common(8)),
        }
