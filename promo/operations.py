"""Read-only checks for operations: readiness and stock, as storage functions."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from promo.campaign_store import list_campaigns
from promo.codes import stock
from promo.db import pending_migrations


def readiness(conn: sqlite3.Connection) -> dict[str, object]:
    conn.execute("SELECT 1").fetchone()
    pending = [name for _, name, _ in pending_migrations(conn)]
    return {"database": "ok", "pending_migrations": pending}


def stock_by_campaign(conn: sqlite3.Connection, now: datetime) -> dict[str, dict[str, int]]:
    return {
        s.campaign.slug: stock(conn, campaign_id=s.id, not_expiring_before=s.campaign.code_expires_at, now=now)
        for s in list_campaigns(conn)
    }
