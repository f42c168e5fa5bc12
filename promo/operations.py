"""Read-only checks for operations: readiness and stock, as storage functions."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime

from promo.backends.store import pending_migrations
from promo.campaign_store import list_campaigns
from promo.codes import stock


def readiness(conn: sqlite3.Connection) -> dict[str, object]:
    conn.execute("SELECT 1").fetchone()
    pending = [name for _, name, _ in pending_migrations(conn)]
    return {"database": "ok", "pending_migrations": pending}


@dataclass(frozen=True)
class OperationsSnapshot:
    stock: dict[str, dict[str, int]]  # campaign -> status -> codes
    decisions: dict[tuple[str, str], int]  # (campaign, outcome) -> attempts
    refusals_by_rule: dict[tuple[str, str], int]  # (campaign, rule id) -> refused attempts


def operations_snapshot(conn: sqlite3.Connection, now: datetime) -> OperationsSnapshot:
    campaigns = list_campaigns(conn)
    slug_of = {s.id: s.campaign.slug for s in campaigns}
    decisions: dict[tuple[str, str], int] = {}
    by_rule: dict[tuple[str, str], int] = {}
    rows = conn.execute(
        "SELECT campaign_id, outcome, failed_rules, COUNT(*) AS n FROM redemption_attempts"
        " GROUP BY campaign_id, outcome, failed_rules"
    )
    for row in rows:
        slug = slug_of.get(row["campaign_id"], str(row["campaign_id"]))
        decisions[(slug, row["outcome"])] = decisions.get((slug, row["outcome"]), 0) + row["n"]
        for rule in row["failed_rules"].split():
            by_rule[(slug, rule)] = by_rule.get((slug, rule), 0) + row["n"]
    return OperationsSnapshot(
        stock={s.campaign.slug: stock(conn, campaign_id=s.id, not_expiring_before=s.campaign.code_expires_at, now=now)
               for s in campaigns},
        decisions=decisions,
        refusals_by_rule=by_rule,
    )
