"""Issue 14, section 5: no limit costs more as an attacker tries harder. Every attempt limit
that counts a time window (bench/limits.py lists them: product keys per IP and per account,
staff sign-ins per IP, sign-in links per address, resends, partner look-ups) is checked with
as many prior failures as its limit, and with 10,000 more plus 10,000 of other people's:
the work SQLite does (virtual machine steps, counted by a progress handler: deterministic,
not a stopwatch) must stay the same, and the check must still see the limit reached."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from bench.limits import LIMITS, Limit, database, fill


def vm_steps(conn: sqlite3.Connection, limit: Limit) -> tuple[int, int]:
    """(what the check counted, SQLite VM instructions it took)."""
    steps = 0

    def step() -> int:
        nonlocal steps
        steps += 1
        return 0  # go on

    conn.set_progress_handler(step, 1)
    try:
        counted = limit.check(conn)
    finally:
        conn.set_progress_handler(None, 1)
    return counted, steps


@pytest.mark.parametrize("limit", LIMITS, ids=[limit.name for limit in LIMITS])
def test_the_check_costs_the_same_with_10000_more_failures(tmp_path: Path, limit: Limit) -> None:
    conn = database(tmp_path / "limits.sqlite3")
    assert vm_steps(conn, limit)[0] == 0
    fill(conn, limit, limit.limit, mine=True)
    at_limit, work_at_limit = vm_steps(conn, limit)
    assert at_limit == limit.limit
    fill(conn, limit, 10_000, mine=True)  # the attacker tries harder
    fill(conn, limit, 10_000, mine=False)  # and the service has a history
    counted, work = vm_steps(conn, limit)
    assert counted == limit.limit  # still refused
    # A constant more than at the limit (the mailbox's OR of two index ranges costs a few steps
    # once more rows exist), and not one step more when the rows double again.
    assert work <= work_at_limit + 40, f"{limit.name}: {work} VM steps with 20,000 more rows, {work_at_limit} at the limit"
    fill(conn, limit, 10_000, mine=True)
    fill(conn, limit, 10_000, mine=False)
    assert vm_steps(conn, limit) == (limit.limit, work), f"{limit.name}: the work grew with 20,000 more rows"
    conn.close()
