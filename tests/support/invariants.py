"""A prepared database file for races between processes, and the invariants every redemption must keep."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from promo.config import Settings
from tests.support.database import SLUG, prepare_database
from tests.support.redemption import add_activations, add_codes, allow_unbound_keys


def prepared(settings: Settings, keys: int, codes: int, owner: str | None = None) -> Path:
    """Key n is bound to `owner`, or else to user{n} (R-X5); owner "" leaves the keys unbound
    and allows that in the campaign, for the race of many accounts over one key."""
    conn = prepare_database(settings.database_path)
    from promo.campaign_store import get_campaign
    if owner == "":
        allow_unbound_keys(conn)
    add_activations(conn, [(n, "O365-HOME-ESD", "DK", f"user{n}@example.com" if owner is None else owner or None)
                           for n in range(keys)])
    add_codes(conn, get_campaign(conn, SLUG), codes)
    conn.close()
    return settings.database_path


def assert_invariants(path: Path) -> None:
    conn = sqlite3.connect(path)
    # every issued code belongs to exactly one redemption, and every redemption to one code
    assert conn.execute("SELECT COUNT(*) FROM reward_codes WHERE issued_at IS NOT NULL").fetchone()[0] == \
        conn.execute("SELECT COUNT(DISTINCT code_id) FROM redemptions").fetchone()[0] == \
        conn.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0]
    assert conn.execute("SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM redemptions GROUP BY account_email)").fetchone()[0] in (None, 1)
    # every redemption has its outbox row and its audit event
    assert conn.execute("SELECT COUNT(*) FROM redemptions r JOIN outbox o ON o.subject_ref = 'redemption:' || r.id").fetchone()[0] == \
        conn.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0]
    assert conn.execute("SELECT COUNT(*) FROM audit_events WHERE tag = 'redemption:code:issued'").fetchone()[0] == \
        conn.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0]
    conn.close()
