"""The audit chain under tampering, through `promo audit verify` and `checkpoint`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from promo.audit import append_event, seal_pending
from promo.db import transaction
from tests.support.cli import Cli


@pytest.fixture
def chain(bare_cli: Cli) -> Iterator[tuple[Cli, sqlite3.Connection]]:
    cli = bare_cli
    cli("migrate")
    conn = cli.connect()
    start = datetime(2013, 8, 1, tzinfo=UTC)
    with transaction(conn):
        for n in range(1, 21):
            append_event(conn, tag="test:event:made", actor=f"account:u{n}@example.com", subject=f"thing:{n}",
                         data={"n": n}, at=start + timedelta(seconds=n))
    seal_pending(conn)  # PostgreSQL chains them after COMMIT; tampering below is with sealed events
    yield cli, conn
    conn.close()


def broken_at(cli: Cli, *args: str) -> str:
    result = cli("audit", "verify", *args)
    assert result.returncode == 1, result.stdout
    return result.stderr


def test_an_untouched_log_verifies(chain: tuple[Cli, sqlite3.Connection]) -> None:
    cli, _ = chain
    result = cli("audit", "verify")
    assert result.returncode == 0 and result.stdout.startswith("ok: 20 events, head 20:")


def test_an_edited_field_breaks_at_that_event(chain: tuple[Cli, sqlite3.Connection]) -> None:
    cli, conn = chain
    conn.execute("UPDATE audit_events SET data = '{\"n\":999}' WHERE seq = 7")
    assert "BROKEN at event 7: its content does not match its hash (altered)" in broken_at(cli)


def test_an_edit_that_also_rewrites_the_hash_breaks_at_the_next_event(chain: tuple[Cli, sqlite3.Connection]) -> None:
    cli, conn = chain
    conn.execute("UPDATE audit_events SET actor = 'mallory', hash = :h WHERE seq = 7", {"h": "f" * 64})
    assert "BROKEN at event 7" in broken_at(cli)


def test_a_deleted_row_breaks_at_the_gap(chain: tuple[Cli, sqlite3.Connection]) -> None:
    cli, conn = chain
    conn.execute("DELETE FROM audit_events WHERE seq = 12")
    assert "BROKEN at event 13: expected event 12, found 13 (deleted or reordered)" in broken_at(cli)


def test_two_swapped_rows_break_at_the_first(chain: tuple[Cli, sqlite3.Connection]) -> None:
    cli, conn = chain
    with transaction(conn):
        conn.execute("UPDATE audit_events SET seq = -5 WHERE seq = 5")
        conn.execute("UPDATE audit_events SET seq = 5 WHERE seq = 6")
        conn.execute("UPDATE audit_events SET seq = 6 WHERE seq = -5")
    assert "BROKEN at event 5" in broken_at(cli)


def test_a_truncated_tail_is_caught_only_with_a_checkpoint(chain: tuple[Cli, sqlite3.Connection]) -> None:
    cli, conn = chain
    saved = cli("audit", "checkpoint").stdout.strip()
    assert saved.startswith("20:") and len(saved) == 3 + 64
    conn.execute("DELETE FROM audit_events WHERE seq > 15")
    assert cli("audit", "verify").returncode == 0  # the chain itself is intact up to 15
    assert "the log ends at event 15 but the checkpoint names event 20 (truncated)" in broken_at(cli, "--checkpoint", saved)


def test_a_rewritten_log_does_not_match_its_checkpoint(chain: tuple[Cli, sqlite3.Connection]) -> None:
    cli, conn = chain
    saved = cli("audit", "checkpoint").stdout.strip()
    assert cli("audit", "verify", "--checkpoint", saved).stdout.find("checkpoint 20 matches") > 0
    conn.execute("UPDATE audit_events SET hash = :h WHERE seq = 20", {"h": "0" * 64})
    assert "BROKEN at event 20" in broken_at(cli, "--checkpoint", saved)


def test_a_malformed_checkpoint_is_bad_input(chain: tuple[Cli, sqlite3.Connection]) -> None:
    cli, _ = chain
    result = cli("audit", "verify", "--checkpoint", "yesterday")
    assert result.returncode == 2 and "checkpoint: a checkpoint looks like" in result.stderr
