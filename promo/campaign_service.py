"""Campaign actions and reads as the console and the API ask for them: one function per
action, each run whole by `Database.write` (one transaction) or `Database.read` (one
snapshot), so views never hold a connection. The stores they combine do the SQL:
campaign_store (definitions, state), campaign_list (the console's list), codes (batches),
stock (counts and the low-stock alert), jobs (uploads)."""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Any

from promo.campaign_list import CampaignQuery, list_page
from promo.campaign_store import StoredCampaign, campaign_exists, get_campaign, get_campaign_of, save_campaign
from promo.campaigns import kind_name
from promo.campaigns.kind import CampaignKind
from promo.codes import Batch, batch_of, batches, void_batch
from promo.errors import InputError
from promo.jobs import recent_jobs
from promo.paging import Keyset, Page
from promo.stock import StockReport, pool_counts, rearm_if_restocked, stock_report

RECENT_UPLOADS = 5  # code uploads shown on a campaign's page


def create_draft(conn: sqlite3.Connection, campaign: Any, *, actor: str, now: datetime, ip: str | None) -> int:
    """Save a new campaign as a draft (the console's "new" and "clone"); a slug already in
    use is refused on the slug field, so nothing is overwritten. Returns its id."""
    if campaign_exists(conn, campaign.slug):
        raise InputError.one("slug", f"{campaign.slug} is already taken by another campaign")
    campaign_id, _changes = save_campaign(conn, campaign, actor=actor, now=now, ip=ip, publish=False)
    return campaign_id


def save_and_rearm(conn: sqlite3.Connection, campaign: Any, *, actor: str, now: datetime, ip: str | None,
                   publish: bool = True, expected_updated_at: str | None = None) -> tuple[bool, dict[str, Any]]:
    """Insert or update a campaign (save_campaign: audited field by field, refused if
    `expected_updated_at` is stale) and, in the same transaction, re-arm its low-stock alert
    when the edit (a lower threshold, say) leaves its stock at or above the threshold.
    Returns (whether it existed before, {field: [before, after]})."""
    existed = campaign_exists(conn, campaign.slug)
    _id, changes = save_campaign(conn, campaign, actor=actor, now=now, ip=ip, publish=publish,
                                 expected_updated_at=expected_updated_at)
    rearm_if_restocked(conn, get_campaign(conn, campaign.slug), now=now, actor=actor)
    return existed, changes


def page_with_stock(conn: sqlite3.Connection, query: CampaignQuery, keyset: Keyset, *, kind: type[CampaignKind],
                    now: datetime) -> tuple[list[tuple[StoredCampaign, StockReport]], Page[StoredCampaign], int]:
    """The console's list: the page of `kind` campaigns `query` finds, each with its stock,
    and how many campaigns it finds in all."""
    page, found = list_page(conn, query, keyset, kind=kind_name(kind), now=now)
    return [(s, stock_report(conn, s, now)) for s in page.items], page, found


def campaign_overview(conn: sqlite3.Connection, slug: str, *, kind: type[CampaignKind], keyset: Keyset, now: datetime) -> dict[str, Any]:
    """A campaign's console page: the campaign (`stored`), its `stock`, a page of its code
    `batches` and its recent code upload `jobs`, read together."""
    stored = get_campaign_of(conn, slug, kind, what="campaign")
    return {"stored": stored, "stock": stock_report(conn, stored, now), "batches": batches(conn, stored.id, keyset),
            "jobs": recent_jobs(conn, campaign_slug=slug, kind="codes", limit=RECENT_UPLOADS)}


def campaign_with_counts(conn: sqlite3.Connection, slug: str, *, kind: type[CampaignKind],
                         now: datetime) -> tuple[StoredCampaign, dict[str, int]]:
    """The campaign and its pool by status, from the counters (no scan of a million codes):
    what the publish and pause confirmations state."""
    stored = get_campaign_of(conn, slug, kind, what="campaign")
    return stored, pool_counts(conn, stored, now)


def campaign_batch(conn: sqlite3.Connection, slug: str, batch_id: int, *, kind: type[CampaignKind]) -> tuple[StoredCampaign, Batch | None]:
    """The campaign and one of its code batches (None if the batch is not the campaign's)."""
    stored = get_campaign_of(conn, slug, kind, what="campaign")
    return stored, batch_of(conn, stored.id, batch_id)


def void_campaign_batch(conn: sqlite3.Connection, slug: str, batch_id: int, *, kind: type[CampaignKind], actor: str, now: datetime,
                        ip: str | None) -> int:
    """Void the unissued codes of one of the campaign's batches (codes.void_batch, R-X10).
    Returns how many codes were voided."""
    stored = get_campaign_of(conn, slug, kind, what="campaign")
    return void_batch(conn, campaign_id=stored.id, slug=slug, batch_id=batch_id, actor=actor, now=now, ip=ip)


def stock_of(conn: sqlite3.Connection, slug: str, now: datetime) -> dict[str, Any]:
    """The stock report of any campaign, as the API answers it."""
    return stock_report(conn, get_campaign(conn, slug), now).as_dict()
