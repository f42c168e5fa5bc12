"""The versions of a campaign's terms (R-X22), kept whole: each redemption records the
version its customer accepted (redemptions.terms_version), and this is the text behind it."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime
from typing import Any

from promo.campaigns.terms import Terms, terms_from_list, terms_version
from promo.timeutil import db_time


def record_terms_version(conn: sqlite3.Connection, campaign_id: int, terms: Terms | None, *, now: datetime) -> None:
    """Keep this version of the terms (inside the transaction that saves the campaign)."""
    if terms is None:
        return
    conn.execute(
        "INSERT INTO terms_versions (campaign_id, version, terms, recorded_at) VALUES (:c, :v, :t, :now)"
        " ON CONFLICT (campaign_id, version) DO NOTHING",
        {"c": campaign_id, "v": terms.version, "t": terms.canonical, "now": db_time(now)},
    )


def terms_of_version(conn: sqlite3.Connection, campaign_id: int, version: str) -> list[dict[str, Any]] | None:
    """The sections of one recorded version, checked against their hash; None if unknown."""
    row = conn.execute("SELECT terms FROM terms_versions WHERE campaign_id = :c AND version = :v",
                       {"c": campaign_id, "v": version}).fetchone()
    if row is None or terms_version(row[0]) != version:
        return None
    sections: list[dict[str, Any]] = json.loads(row[0])
    return sections


def accepted_terms(conn: sqlite3.Connection, campaign_id: int, version: str | None, *,
                   current: Terms | None = None) -> Terms | None:
    """The terms of a recorded version (what a redemption accepted), or None. `current`, the
    campaign's terms already parsed, is that version nearly always: then nothing is read."""
    if current is not None and version == current.version:
        return current
    sections = terms_of_version(conn, campaign_id, version) if version else None
    return terms_from_list(sections) if sections else None
