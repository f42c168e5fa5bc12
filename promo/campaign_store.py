"""Campaigns in the database: save (insert or update, audited field by field), load, list.

The definition is stored as canonical JSON of the campaign file; parsed campaigns are
cached by its sha256 (stored beside it), so the redemption transaction loads its campaign
with one indexed read, without reading the definition or re-parsing it, and still sees an
edit the moment it commits."""

from __future__ import annotations

import json
import sqlite3
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

from promo import totals
from promo.audit import append_event
from promo.backends import ask
from promo.campaigns import campaign_from_json, campaign_to_json
from promo.campaigns.kind import CampaignKind
from promo.catalog import load_catalog
from promo.db import sha256_hex
from promo.errors import InputError, NotFound
from promo.terms_store import record_terms_version
from promo.timeutil import db_time

_CACHE_SIZE = 64
_parsed: OrderedDict[str, CampaignKind] = OrderedDict()


STATES = ("draft", "scheduled", "live", "paused", "ended")
STATE_ACTIONS = ("publish", "pause", "resume")


@dataclass(frozen=True)
class StoredCampaign:
    id: int
    campaign: CampaignKind  # of any kind; get_campaign_of gives one kind's, typed
    updated_at: str
    published_at: str | None = None
    paused_at: str | None = None

    @property
    def published(self) -> bool:
        return self.published_at is not None

    @property
    def paused(self) -> bool:
        return self.paused_at is not None

    def status(self, now: datetime) -> str:
        """draft, scheduled, live, paused or ended: what a marketer sees in the console."""
        if not self.published:
            return "draft"
        window = self.campaign.redemption_window()
        if window is None:  # not redeemed: live from its publication
            return "paused" if self.paused else "live"
        if window.is_before(now):
            return "scheduled"
        if not window.contains(now):
            return "ended"
        return "paused" if self.paused else "live"


K = TypeVar("K", bound=CampaignKind, covariant=True)


@dataclass(frozen=True)
class StoredOf(StoredCampaign, Generic[K]):
    """A stored campaign of one kind (K: PurchaseOffer, DonationProgram)."""

    campaign: K


def save_campaign(
    conn: sqlite3.Connection, campaign: CampaignKind, *, actor: str, now: datetime, ip: str | None = None,
    publish: bool = True, expected_updated_at: str | None = None,
) -> tuple[int, dict[str, Any]]:
    """Insert or update by slug (inside a transaction). Returns (id, {field: [before, after]}).
    A new campaign is published at once (`publish`, the CLI) or starts as a draft (the
    console); an update keeps its state. `expected_updated_at` refuses an edit made on
    top of a version that someone else has changed meanwhile."""
    definition = campaign_to_json(campaign)
    digest = _sha256(definition)
    row = conn.execute("SELECT id, definition, definition_sha256, updated_at FROM campaigns WHERE slug = :slug",
                       {"slug": campaign.slug}).fetchone()
    if row is not None and expected_updated_at is not None and row["updated_at"] != expected_updated_at:
        raise InputError.one("campaign", "was changed by someone else while you edited it; reload it and apply your change again")
    if row is None:
        campaign_id = conn.execute(
            "INSERT INTO campaigns (slug, kind, definition, definition_sha256, created_at, updated_at, published_at)"
            " VALUES (:slug, :kind, :d, :sha, :t, :t, :published)",
            {"slug": campaign.slug, "kind": campaign.kind, "d": definition, "sha": digest, "t": db_time(now),
             "published": db_time(now) if publish else None},
        ).lastrowid
        assert campaign_id is not None
        totals.make_rows(conn, campaign_id)  # now, not by its first redemptions (issue 18)
        record_terms_version(conn, campaign_id, campaign.terms, now=now)
        changes = {k: [None, v] for k, v in _flatten(json.loads(definition)).items()}
        append_event(conn, tag="campaign:definition:created", actor=actor, subject=f"campaign:{campaign.slug}",
                     data={"changes": changes, "state": "published" if publish else "draft"}, at=now, ip=ip)
        return campaign_id, changes
    changes = diff(json.loads(row["definition"]), json.loads(definition))
    record_terms_version(conn, row["id"], campaign.terms, now=now)  # R-X22
    if changes:
        conn.execute(
            "UPDATE campaigns SET definition = :d, definition_sha256 = :sha, kind = :kind, updated_at = :t WHERE id = :id",
            {"d": definition, "sha": digest, "kind": campaign.kind, "t": db_time(now), "id": row["id"]},
        )
        append_event(conn, tag="campaign:definition:changed", actor=actor, subject=f"campaign:{campaign.slug}",
                     data={"changes": changes}, at=now, ip=ip)
    elif row["definition_sha256"] != digest:  # saved before the column existed
        conn.execute("UPDATE campaigns SET definition_sha256 = :sha WHERE id = :id", {"sha": digest, "id": row["id"]})
    return row["id"], changes


_COLUMNS = "id, definition_sha256, updated_at, published_at, paused_at"


def ask_campaign(conn: sqlite3.Connection, slug: str) -> Any:
    """Ask for the campaign `slug` now, read it later (campaign_of): in a pipelined write on
    PostgreSQL, the statements asked before it is read go out with it."""
    return ask(conn, lambda: conn.execute(f"SELECT {_COLUMNS} FROM campaigns WHERE slug = :slug", {"slug": slug}))


def get_campaign(conn: sqlite3.Connection, slug: str) -> StoredCampaign:
    return _found(conn, ask_campaign(conn, slug), slug)


def _found(conn: sqlite3.Connection, asked: Any, slug: str) -> StoredCampaign:
    row = asked.fetchone()
    if row is None:
        raise NotFound("campaign", slug)
    return _stored(conn, row)


def get_campaign_of(conn: sqlite3.Connection, slug: str, kind: type[K], *, what: str = "campaign") -> StoredOf[K]:
    """The campaign `slug` if it is of `kind`. NotFound("campaign") when there is no such
    campaign, NotFound(what) when it is of another kind: to a consumer a donation program
    is no offer, to the nonprofit pages a purchase offer is no donation program."""
    return campaign_of(conn, ask_campaign(conn, slug), slug, kind, what=what)


def campaign_of(conn: sqlite3.Connection, asked: Any, slug: str, kind: type[K], *, what: str = "campaign") -> StoredOf[K]:
    """get_campaign_of's answer from what ask_campaign(conn, slug) asked."""
    stored = _found(conn, asked, slug)
    campaign = stored.campaign
    if not isinstance(campaign, kind):
        raise NotFound(what, slug)
    return StoredOf(stored.id, campaign, stored.updated_at, stored.published_at, stored.paused_at)


def campaign_exists(conn: sqlite3.Connection, slug: str) -> bool:
    return conn.execute("SELECT 1 FROM campaigns WHERE slug = :s", {"s": slug}).fetchone() is not None


def list_campaigns(conn: sqlite3.Connection) -> list[StoredCampaign]:
    return [_stored(conn, r) for r in conn.execute(f"SELECT {_COLUMNS} FROM campaigns ORDER BY slug").fetchall()]


def _stored(conn: sqlite3.Connection, row: sqlite3.Row) -> StoredCampaign:
    return StoredCampaign(id=row["id"], campaign=_parse(conn, row["id"], row["definition_sha256"]), updated_at=row["updated_at"],
                          published_at=row["published_at"], paused_at=row["paused_at"])


def change_state(conn: sqlite3.Connection, slug: str, action: str, *, actor: str, now: datetime,
                 ip: str | None = None) -> StoredCampaign:
    """Publish a draft, pause or resume (inside a transaction); audited with before and after."""
    stored = get_campaign(conn, slug)
    before = stored.status(now)
    allowed = {"publish": not stored.published, "pause": stored.published and not stored.paused,
               "resume": stored.paused}
    if action not in allowed:
        raise InputError.one("action", f"must be one of {', '.join(STATE_ACTIONS)}")
    if not allowed[action]:
        raise InputError.one("action", f"cannot {action} a campaign that is {before}")
    column, value = {"publish": ("published_at", db_time(now)), "pause": ("paused_at", db_time(now)),
                     "resume": ("paused_at", None)}[action]
    conn.execute(f"UPDATE campaigns SET {column} = :v, updated_at = :t WHERE id = :id",
                 {"v": value, "t": db_time(now), "id": stored.id})
    after = get_campaign(conn, slug)
    append_event(conn, tag=f"campaign:state:{action}", actor=actor, subject=f"campaign:{slug}", at=now, ip=ip,
                 data={"changes": {"status": [before, after.status(now)]}})
    return after


def _parse(conn: sqlite3.Connection, campaign_id: int, digest: str | None) -> CampaignKind:
    if digest is not None and digest in _parsed:
        _parsed.move_to_end(digest)
        return _parsed[digest]
    # Missed: read the definition and key it by its own hash (a save may have come between
    # the two statements; the text read is what was parsed).
    definition = conn.execute("SELECT definition FROM campaigns WHERE id = :id", {"id": campaign_id}).fetchone()[0]
    digest = _sha256(definition)
    if digest in _parsed:
        return _parsed[digest]
    campaign = campaign_from_json(definition, load_catalog(conn))
    _parsed[digest] = campaign
    if len(_parsed) > _CACHE_SIZE:
        _parsed.popitem(last=False)
    return campaign


def _sha256(definition: str) -> str:
    return sha256_hex(definition) or ""


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
