"""The benchmark's verification of a database after its runs (issues 6 and 18), on either store:
a SQLite file (a path) or a PostgreSQL database (a postgresql:// URL).

Each issued code belongs to exactly one redemption, no account redeemed twice, every
redemption has its outbox row and its audit event, and the audit chain verifies.

Every check stays linear in the rows (issue 18: a correlated subquery on an unindexed
`outbox.subject_ref` ran for over 4 minutes at 43,000 redemptions): the outbox check is an
anti-join, the tables are ANALYZEd first on PostgreSQL so that the planner sees their real
sizes (a hash anti-join), and the index on `outbox.subject_ref` must exist (SQLite probes it
once per redemption).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promo.audit import seal_pending, verify_chain
from promo.backends import pg_connection
from promo.db import connect

TWICE = ("SELECT COUNT(*) FROM (SELECT 1 FROM redemptions GROUP BY campaign_id, account_email"
         " HAVING COUNT(*) > 1) twice")
# An anti-join, not a correlated subquery per redemption.
WITHOUT_OUTBOX = ("SELECT COUNT(*) FROM redemptions r LEFT JOIN outbox o ON o.subject_ref = 'redemption:' || r.id"
                  " WHERE o.id IS NULL")
SQLITE_INDEXED = ("SELECT COUNT(*) FROM pragma_index_list('outbox') l"
                  " JOIN pragma_index_info(l.name) i ON i.seqno = 0 WHERE i.name = 'subject_ref'")
PG_INDEXED = ("SELECT COUNT(*) FROM pg_index x JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = x.indkey[0]"
              " WHERE x.indrelid = 'outbox'::regclass AND a.attname = 'subject_ref' AND x.indisvalid")


def is_url(target: Path | str) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def verify(target: Path | str) -> dict[str, Any]:
    """{check: passed} for every check, and the number of redemptions."""
    postgres = is_url(target)
    conn: Any = pg_connection.connect(str(target)) if postgres else connect(Path(target))
    try:
        def one(sql: str) -> Any:
            return conn.execute(sql).fetchone()[0]

        if postgres:
            seal_pending(conn)  # events are chained by the sealer a moment after commit (issue 18)
            conn.execute("ANALYZE redemptions, outbox, reward_codes, audit_events")
            integrity = one("SELECT bool_and(indisvalid) FROM pg_index WHERE indrelid = 'redemptions'::regclass") is True
        else:
            integrity = one("PRAGMA integrity_check") == "ok"
        redemptions = one("SELECT COUNT(*) FROM redemptions")
        return {
            "integrity": integrity,
            "outbox_subject_indexed": one(PG_INDEXED if postgres else SQLITE_INDEXED) > 0,
            "issued_codes_equal_redemptions": one("SELECT COUNT(*) FROM reward_codes WHERE issued_at IS NOT NULL")
            == redemptions == one("SELECT COUNT(DISTINCT code_id) FROM redemptions"),
            "no_account_twice": one(TWICE) == 0,
            "every_redemption_has_outbox_row": one(WITHOUT_OUTBOX) == 0,
            "every_redemption_has_audit_event": one("SELECT COUNT(*) FROM audit_events WHERE tag = 'redemption:code:issued'")
            == redemptions,
            "chain_verifies": verify_chain(conn).ok,
            "redemptions": redemptions,
        }
    finally:
        conn.close()


def passed(checks: dict[str, Any]) -> bool:
    return all(value for name, value in checks.items() if name != "redemptions")
