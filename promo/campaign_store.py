"""Campaigns in the database: save (insert or update, audited field by field), load, list.

The definition is stored as canonical JSON of the campaign file; parsed campaigns are
cached by that text, so the redemption transaction loads its campaign with one indexed
read and no re-parsing, and still sees an edit the moment it commits."""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from promo.audit import append_event
from promo.campaigns import campaign_from_json, campaign_to_json
from promo.catalog import load_catalog
from promo.errors import NotFound
from promo.timeutil import db_time

_CACHE_SIZE = 64
_parsed: OrderedDict[str, Any] = OrderedDict()


@dataclass(frozen=True)
class StoredCampaign:
    id: int
    campaign: Any  # a campaign kind instance, e.g. PurchaseOffer
    updated_at: str


def save_campaign(
    conn: sqlite3.Connection, campaign: Any, *, actor: str, now: datetime, ip: str | None = None
) -> tuple[int, dict[str, Any]]:
    """Insert or update by slug (inside a transaction). Returns (id, {field: [before, after]})."""
    definition = campaign_to_json(campaign)
    row = conn.execute("SELECT id, definition FROM campaigns WHERE slug = :slug", {"slug": campaign.slug}).fetchone()
    if row is None:
        campaign_id = conn.execute(
            "INSERT INTO campaigns (slug, kind, definition, created_at, updated_at) VALUES (:slug, :kind, :d, :t, :t)",
            {"slug": campaign.slug, "kind": campaign.kind, "d": definition, "t": db_time(now)},
        ).lastrowid
        assert campaign_id is not None
        changes = {k: [None, v] for k, v in _flatten(json.loads(definition)).items()}
        append_event(conn, tag="campaign:definition:created", actor=actor, subject=f"campaign:{campaign.slug}",
                     data={"changes": changes}, at=now, ip=ip)
        return campaign_id, changes
    changes = diff(json.loads(row["definition"]), json.loads(definition))
    if changes:
        conn.execute(
            "UPDATE campaigns SET definition = :d, kind = :kind, updated_at = :t WHERE id = :id",
            {"d": definition, "kind": campaign.kind, "t": db_time(now), "id": row["id"]},
        )
        append_event(conn, tag="campaign:definition:changed", actor=actor, subject=f"campaign:{campaign.slug}",
                     data={"changes": changes}, at=now, ip=ip)
    return row["id"], changes


def get_campaign(conn: sqlite3.Connection, slug: str) -> StoredCampaign:
    row = conn.execute(
        "SELECT id, definition, updated_at FROM campaigns WHERE slug = :slug", {"slug": slug}
    ).fetchone()
    if row is None:
        raise NotFound("campaign", slug)
    return StoredCampaign(id=row["id"], campaign=_parse(conn, row["definition"]), updated_at=row["updated_at"])


def list_campaigns(conn: sqlite3.Connection) -> list[StoredCampaign]:
    rows = conn.execute("SELECT id, definition, updated_at FROM campaigns ORDER BY slug").fetchall()
    return [StoredCampaign(id=r["id"], campaign=_parse(conn, r["definition"]), updated_at=r["updated_at"]) for r in rows]


def _parse(conn: sqlite3.Connection, definition: str) -> Any:
    if definition in _parsed:
        _parsed.move_to_end(definition)
        return _parsed[definition]
    campaign = campaign_from_json(definition, load_catalog(conn))
    _parsed[definition] = campaign
    if len(_parsed) > _CACHE_SIZE:
        _parsed.popitem(last=False)
    return campaign


def diff(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    """Field-level changes between two definitions: {'reward.name': [old, new], ...}."""
    old, new = _flatten(before), _flatten(after)
    return {k: [old.get(k), new.get(k)] for k in sorted(old.keys() | new.keys()) if old.get(k) != new.get(k)}


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out
