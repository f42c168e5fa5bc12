"""promo/operations.py on a real SQLite file: readiness names pending migrations, and the
snapshot behind /metrics counts codes by status, decisions by outcome and refusals by rule
(an attempt refused by two rules counts once for each)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from promo.campaign_store import StoredCampaign
from promo.db import connect
from promo.operations import operations_snapshot, readiness
from tests.support.database import DURING, SLUG
from tests.support.redemption import add_activations, add_codes, redeem


def test_a_migrated_database_is_ready_and_a_new_one_names_its_pending_migrations(conn: sqlite3.Connection, tmp_path: Path) -> None:
    assert readiness(conn) == {"database": "ok", "pending_migrations": []}
    empty = connect(tmp_path / "new.sqlite3")
    try:
        pending = readiness(empty)["pending_migrations"]
    finally:
        empty.close()
    assert isinstance(pending, list) and pending[0].startswith("0001") and len(pending) > 10


def test_the_snapshot_counts_codes_decisions_and_refusals_by_rule(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    add_codes(conn, stored, 4)
    add_activations(conn, [(1, "O365-HOME-ESD", "DK", "user1@example.com"), (2, "O365-HOME-ESD", "US", "user2@example.com")])
    assert redeem(conn, 1, "user1@example.com").redeemed
    assert not redeem(conn, 1, "user9@example.com").redeemed  # somebody else's key: R-X5
    assert not redeem(conn, 2, "user2@example.com", terms=False).redeemed  # bought in the US (R-X2), terms refused (R-X8)
    snapshot = operations_snapshot(conn, DURING)
    assert snapshot.stock[SLUG] == {"available": 3, "issued": 1, "expired": 0, "voided": 0}
    assert snapshot.decisions == {(SLUG, "redeemed"): 1, (SLUG, "refused"): 2}
    assert snapshot.refusals_by_rule[(SLUG, "R-X5")] == 1
    assert snapshot.refusals_by_rule[(SLUG, "R-X2")] == 1 and snapshot.refusals_by_rule[(SLUG, "R-X8")] == 1
