"""A prepared database for races between processes, and the invariants every redemption must
keep, on either store: a SQLite file's path, a PostgreSQL URL, or an open connection."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from promo.audit import ChainState, seal_pending, verify_chain
from promo.backends import pg_connection
from promo.campaign_store import get_campaign
from promo.config import Settings
from promo.db import connect
from tests.support.database import SLUG
from tests.support.prepared import prepared_store
from tests.support.redemption import add_activations, add_codes, allow_unbound_keys

# A store: the path of a SQLite file, the URL of a PostgreSQL database, or a connection to either.
Target = Path | str | Any


def prepared(settings: Settings, keys: int, codes: int, owner: str | None = None) -> Path | str:
    """Key n is bound to `owner`, or else to user{n} (R-X5); owner "" leaves the keys unbound
    and allows that in the campaign, for the race of many accounts over one key. Returns the
    store as worker processes open it (race_worker.run): the file's path or the URL."""
    conn = prepared_store(settings)
    if owner == "":
        allow_unbound_keys(conn)
    add_activations(conn, [(n, "O365-HOME-ESD", "DK", f"user{n}@example.com" if owner is None else owner or None)
                           for n in range(keys)])
    add_codes(conn, get_campaign(conn, SLUG), codes)
    conn.close()
    return settings.database_url or settings.database_path


def open_store(target: Path | str) -> Any:
    """A connection of its own to a SQLite file (a path) or a PostgreSQL database (a URL)."""
    if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
        return pg_connection.connect(target)
    return connect(target)


@contextlib.contextmanager
def opened(target: Target) -> Iterator[Any]:
    """The connection given, or one opened to the path or URL given (and closed afterwards)."""
    if not isinstance(target, Path | str):
        yield target
        return
    conn = open_store(target)
    try:
        yield conn
    finally:
        conn.close()


def count(conn: Any, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0])


def assert_invariants(target: Target, *, chain: bool = False) -> None:
    """Each issued code has one redemption and each redemption one code; no account has two;
    every redemption has its outbox row and its audit event; each campaign's counter rows add up
    to its redemptions, and none passed the allotment of a cap shared out (promo/totals.py);
    with `chain`, the audit chain verifies, sealed first (assert_chain_verifies)."""
    with opened(target) as conn:
        redemptions = count(conn, "SELECT COUNT(*) FROM redemptions")
        assert count(conn, "SELECT COUNT(*) FROM reward_codes WHERE issued_at IS NOT NULL") == \
            count(conn, "SELECT COUNT(DISTINCT code_id) FROM redemptions") == redemptions
        assert conn.execute("SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM redemptions GROUP BY account_email) per_account"
                            ).fetchone()[0] in (None, 1)
        assert count(conn, "SELECT COUNT(*) FROM redemptions r JOIN outbox o"
                           " ON o.subject_ref = 'redemption:' || r.id") == redemptions
        assert count(conn, "SELECT COUNT(*) FROM audit_events WHERE tag = 'redemption:code:issued'") == redemptions
        assert count(conn, "SELECT COUNT(*) FROM campaigns c WHERE (SELECT COUNT(*) FROM redemptions r WHERE r.campaign_id = c.id)"
                           " <> (SELECT COALESCE(SUM(redeemed), 0) FROM campaign_totals t WHERE t.campaign_id = c.id)") == 0
        assert count(conn, "SELECT COUNT(*) FROM campaign_totals WHERE cap_basis IS NOT NULL AND redeemed > allotment") == 0
        if chain:
            assert_chain_verifies(conn)


def assert_chain_verifies(conn: Any) -> ChainState:
    """Seal what has committed, then verify the chain. On PostgreSQL events join the chain after
    COMMIT (issue 18) and verify_chain checks sealed events only: without sealing first, a
    test's fresh events would be left out and the check could not fail on them. SQLite seals
    at append (sealing is a no-op there)."""
    seal_pending(conn)
    state = verify_chain(conn)
    assert state.ok, state
    return state


def integrity_ok(target: Target) -> bool:
    """SQLite's own check of its file after a crash; PostgreSQL recovers by its WAL (True)."""
    with opened(target) as conn:
        if isinstance(conn, sqlite3.Connection):
            return bool(conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok")
        return True

