"""The campaign actions the console and the API call (promo/campaign_service.py), each one
transaction or read, on a real SQLite file."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime

import pytest

from promo.campaign_service import campaign_batch, campaign_with_counts, create_draft, save_and_rearm, stock_of
from promo.campaign_store import StoredCampaign, get_campaign, get_campaign_of
from promo.campaigns.donation_program import DonationProgram
from promo.campaigns.purchase_offer import PurchaseOffer
from promo.db import transaction
from promo.errors import InputError, NotFound
from promo.timeutil import db_time
from tests.support.database import SLUG

NOW = datetime(2013, 7, 2, tzinfo=UTC)
KIND = PurchaseOffer


def events(conn: sqlite3.Connection, tag: str) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM audit_events WHERE tag = :t", {"t": tag}).fetchone()[0])


def test_a_draft_cannot_take_a_slug_in_use(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    with pytest.raises(InputError) as info, transaction(conn):
        create_draft(conn, stored.campaign, actor="staff:mia@example.com", now=NOW, ip=None)
    assert info.value.errors[0].field == "slug" and "already taken" in info.value.errors[0].message


def test_a_new_draft_is_saved_unpublished(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    copy = dataclasses.replace(stored.campaign, slug="copy-of-gold")
    with transaction(conn):
        campaign_id = create_draft(conn, copy, actor="staff:mia@example.com", now=NOW, ip="192.0.2.1")
    saved = get_campaign(conn, "copy-of-gold")
    assert saved.id == campaign_id and not saved.published


def test_save_and_rearm_says_whether_the_campaign_existed(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    renamed = dataclasses.replace(stored.campaign, name="Gold, renamed")
    with transaction(conn):
        existed, changes = save_and_rearm(conn, renamed, actor="api", now=NOW, ip=None, publish=False)
    assert existed and changes["name"] == [stored.campaign.name, "Gold, renamed"]
    new = dataclasses.replace(stored.campaign, slug="brand-new")
    with transaction(conn):
        existed, changes = save_and_rearm(conn, new, actor="api", now=NOW, ip=None, publish=False)
    assert not existed and changes and not get_campaign(conn, "brand-new").published


def test_save_and_rearm_rearms_a_fired_alert_once_stock_is_back(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    with transaction(conn):
        conn.execute("INSERT INTO stock_alerts (campaign_id, threshold, available, fired_at) VALUES (:c, 1, 0, :t)",
                     {"c": stored.id, "t": db_time(NOW)})
    no_threshold = dataclasses.replace(stored.campaign, low_stock_threshold=None)
    with transaction(conn):
        save_and_rearm(conn, no_threshold, actor="staff:mia@example.com", now=NOW, ip=None)
    assert events(conn, "codes:stock:rearmed") == 1
    assert conn.execute("SELECT rearmed_at FROM stock_alerts WHERE campaign_id = :c", {"c": stored.id}).fetchone()[0]


def test_a_stale_edit_is_refused_and_changes_nothing(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    renamed = dataclasses.replace(stored.campaign, name="Too late")
    with pytest.raises(InputError), transaction(conn):
        save_and_rearm(conn, renamed, actor="staff:mia@example.com", now=NOW, ip=None, expected_updated_at="1999-01-01")
    assert get_campaign(conn, SLUG).campaign.name == stored.campaign.name


def test_another_kind_is_not_found(conn: sqlite3.Connection) -> None:
    assert get_campaign_of(conn, SLUG, KIND).campaign.slug == SLUG
    with pytest.raises(NotFound):
        get_campaign_of(conn, SLUG, DonationProgram)
    with pytest.raises(NotFound):
        campaign_with_counts(conn, SLUG, kind=DonationProgram, now=NOW)


def test_reads_for_the_console_and_the_api(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    found, counts = campaign_with_counts(conn, SLUG, kind=KIND, now=NOW)
    assert found.id == stored.id and set(counts) >= {"available", "issued"}
    assert campaign_batch(conn, SLUG, 12345, kind=KIND) == (found, None)
    report = stock_of(conn, SLUG, NOW)
    assert {status: report[status] for status in counts} == counts and "projected_run_out" in report
