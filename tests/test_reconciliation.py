"""promo/reconciliation.py on a real SQLite file, for a redeemed campaign: the books balance
after real redemptions, and each kind of break (a code issued without a redemption, a
redemption without its email) is found with the rows behind it, codes masked. The donation
program's books are in tests/test_nonprofit_decisions.py."""

from __future__ import annotations

import sqlite3

from promo.campaign_store import StoredCampaign
from promo.db import transaction
from promo.reconciliation import reconcile
from tests.support.database import DURING, SLUG, reward_code
from tests.support.redemption import add_activations, add_codes, redeem


def books(conn: sqlite3.Connection) -> dict[str, tuple[bool, tuple[str, int], list[tuple[str, int]], list[str]]]:
    found = reconcile(conn, SLUG, DURING)
    return {c.name: (c.ok, c.left, c.right, c.rows) for c in found.checks}


def redeemed(conn: sqlite3.Connection, stored: StoredCampaign, accounts: int, codes: int) -> None:
    add_codes(conn, stored, codes)
    add_activations(conn, [(n, "O365-HOME-ESD", "DK", f"user{n}@example.com") for n in range(1, accounts + 1)])
    assert all(redeem(conn, n, f"user{n}@example.com").redeemed for n in range(1, accounts + 1))


def test_after_real_redemptions_the_books_balance(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    redeemed(conn, stored, accounts=2, codes=5)
    assert reconcile(conn, SLUG, DURING).ok
    found = books(conn)
    assert found["codes"] == (True, ("imported", 5), [("available", 3), ("issued", 2), ("expired", 0), ("voided", 0)], [])
    assert found["issued"] == (True, ("accepted redemptions", 2), [("issued codes", 2)], [])
    assert found["emails"] == (True, ("issued codes", 2), [("emails sent", 0), ("pending", 2), ("failed", 0)], [])


def test_a_code_issued_without_a_redemption_is_shown_masked(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    redeemed(conn, stored, accounts=1, codes=3)
    with transaction(conn):
        conn.execute("UPDATE reward_codes SET issued_at = '2013-09-01T12:00:00.000000Z' WHERE issued_at IS NULL"
                     " AND code = ?", (reward_code(2),))
    found = reconcile(conn, SLUG, DURING)
    assert not found.ok
    ok, left, right, rows = books(conn)["issued"]
    assert not ok and left == ("accepted redemptions", 1) and right == [("issued codes", 2)]
    assert len(rows) == 1 and "without a redemption" in rows[0] and reward_code(2) not in rows[0]
    assert reward_code(2)[-4:] in rows[0]  # masked, not hidden: the tail finds it


def test_a_redemption_without_its_email_is_named(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    redeemed(conn, stored, accounts=2, codes=2)
    with transaction(conn):
        conn.execute("DELETE FROM outbox WHERE subject_ref = (SELECT 'redemption:' || MIN(id) FROM redemptions)")
    ok, left, right, rows = books(conn)["emails"]
    assert not ok and left == ("issued codes", 2) and sum(n for _, n in right) == 1
    assert rows == ["redemption 1 (user1@example.com) has no email in the outbox"]
