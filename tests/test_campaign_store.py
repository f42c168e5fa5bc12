"""promo/campaign_store.py on a real SQLite file: saving a definition (created, changed,
unchanged, edited on top of a stale version), its state (draft, scheduled, live, paused,
ended) and the actions that move it, each audited with before and after, and the typed
lookup that refuses a campaign of another kind."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime

import pytest

from promo.campaign_store import (
    StoredCampaign,
    change_state,
    diff,
    get_campaign,
    get_campaign_of,
    list_campaigns,
    save_campaign,
)
from promo.campaigns import parse_campaign_file, shipped_campaign_text
from promo.campaigns.purchase_offer import PurchaseOffer
from promo.catalog import load_catalog
from promo.db import transaction
from promo.errors import InputError, NotFound
from promo.timeutil import db_time
from tests.support.console import audit_changes
from tests.support.database import DURING, SLUG

BEFORE = datetime(2013, 7, 1, tzinfo=UTC)  # before the shipped offer's redemption window (2013-07-18)
AFTER = datetime(2013, 11, 15, tzinfo=UTC)  # after it (2013-10-31)


def offer(conn: sqlite3.Connection, slug: str = "draft-offer", **changes: object) -> PurchaseOffer:
    shipped = parse_campaign_file(shipped_campaign_text(SLUG), load_catalog(conn))
    return dataclasses.replace(shipped, slug=slug, **changes)  # type: ignore[type-var]


def save(conn: sqlite3.Connection, campaign: PurchaseOffer, **options: object) -> tuple[int, dict[str, list[object]]]:
    with transaction(conn):
        return save_campaign(conn, campaign, actor="test", now=DURING, **options)  # type: ignore[arg-type]


def act(conn: sqlite3.Connection, action: str, now: datetime = DURING, slug: str = "draft-offer") -> StoredCampaign:
    with transaction(conn):
        return change_state(conn, slug, action, actor="test", now=now)


def test_a_new_campaign_from_the_console_is_a_draft_and_its_creation_is_audited(conn: sqlite3.Connection) -> None:
    campaign_id, changes = save(conn, offer(conn), publish=False)
    stored = get_campaign(conn, "draft-offer")
    assert stored.id == campaign_id and not stored.published and stored.status(DURING) == "draft"
    assert changes["slug"] == [None, "draft-offer"] and all(before is None for before, _ in changes.values())
    created = audit_changes(conn, "campaign:definition:created")[-1]
    assert created["state"] == "draft" and created["changes"]["slug"] == [None, "draft-offer"]


def test_a_new_campaign_from_the_cli_is_published_at_once(conn: sqlite3.Connection) -> None:
    save(conn, offer(conn))
    stored = get_campaign(conn, "draft-offer")
    assert stored.published_at == db_time(DURING) and stored.status(DURING) == "live"
    assert audit_changes(conn, "campaign:definition:created")[-1]["state"] == "published"


def test_a_change_is_saved_field_by_field_and_an_unchanged_save_records_nothing(conn: sqlite3.Connection) -> None:
    save(conn, offer(conn), publish=False)
    _, changes = save(conn, offer(conn, name="Renamed offer"))
    assert changes == {"name": ["Free 12-month Xbox Live Gold membership with Office 365", "Renamed offer"]}
    assert get_campaign(conn, "draft-offer").campaign.name == "Renamed offer"
    assert not get_campaign(conn, "draft-offer").published  # an update keeps the state it had
    assert audit_changes(conn, "campaign:definition:changed")[-1]["changes"] == changes
    events = len(audit_changes(conn, "campaign:definition:changed"))
    assert save(conn, offer(conn, name="Renamed offer"))[1] == {}
    assert len(audit_changes(conn, "campaign:definition:changed")) == events


def test_an_edit_on_top_of_a_version_someone_else_changed_is_refused(conn: sqlite3.Connection) -> None:
    save(conn, offer(conn), publish=False)
    seen = get_campaign(conn, "draft-offer").updated_at
    with transaction(conn):
        save_campaign(conn, offer(conn, name="Their change"), actor="other", now=datetime(2013, 9, 2, tzinfo=UTC))
    with pytest.raises(InputError) as refused:
        save(conn, offer(conn, name="My change"), expected_updated_at=seen)
    assert refused.value.errors[0].field == "campaign" and "changed by someone else" in refused.value.errors[0].message
    assert get_campaign(conn, "draft-offer").campaign.name == "Their change"


@pytest.mark.parametrize(("now", "status"), [(BEFORE, "scheduled"), (DURING, "live"), (AFTER, "ended")])
def test_a_published_campaign_is_scheduled_live_or_ended_by_its_redemption_window(
        conn: sqlite3.Connection, now: datetime, status: str) -> None:
    save(conn, offer(conn), publish=False)
    assert act(conn, "publish", now=BEFORE).status(now) == status


def test_publish_pause_and_resume_move_the_state_and_are_audited_with_before_and_after(conn: sqlite3.Connection) -> None:
    save(conn, offer(conn), publish=False)
    assert act(conn, "publish").status(DURING) == "live"
    paused = act(conn, "pause")
    assert paused.paused and paused.status(DURING) == "paused"
    assert act(conn, "resume").status(DURING) == "live"
    assert [audit_changes(conn, f"campaign:state:{a}")[-1]["changes"]["status"] for a in ("publish", "pause", "resume")] == [
        ["draft", "live"], ["live", "paused"], ["paused", "live"]]


@pytest.mark.parametrize(("published", "action", "message"), [
    (False, "pause", "cannot pause a campaign that is draft"),
    (False, "resume", "cannot resume a campaign that is draft"),
    (True, "publish", "cannot publish a campaign that is live"),
    (True, "resume", "cannot resume a campaign that is live"),
    (True, "delete", "must be one of publish, pause, resume"),
])
def test_an_action_the_state_does_not_allow_is_refused_and_changes_nothing(
        conn: sqlite3.Connection, published: bool, action: str, message: str) -> None:
    save(conn, offer(conn), publish=published)
    before = get_campaign(conn, "draft-offer")
    with pytest.raises(InputError) as refused:
        act(conn, action)
    assert refused.value.errors[0].field == "action" and refused.value.errors[0].message == message
    assert get_campaign(conn, "draft-offer") == before


def test_an_unknown_campaign_is_not_found(conn: sqlite3.Connection) -> None:
    with pytest.raises(NotFound) as missing:
        get_campaign(conn, "no-such-offer")
    assert (missing.value.what, missing.value.key) == ("campaign", "no-such-offer")
    with pytest.raises(NotFound):
        act(conn, "publish", slug="no-such-offer")


def test_the_typed_lookup_refuses_a_campaign_of_another_kind(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        program = parse_campaign_file(shipped_campaign_text("nonprofit-donations"), load_catalog(conn))
        save_campaign(conn, program, actor="test", now=DURING)
    assert isinstance(get_campaign_of(conn, SLUG, PurchaseOffer).campaign, PurchaseOffer)
    with pytest.raises(NotFound) as other_kind:
        get_campaign_of(conn, "nonprofit-donations", PurchaseOffer, what="offer")
    assert (other_kind.value.what, other_kind.value.key) == ("offer", "nonprofit-donations")


def test_campaigns_are_listed_by_slug(conn: sqlite3.Connection) -> None:
    save(conn, offer(conn, slug="zz-last"))
    save(conn, offer(conn, slug="aa-first"))
    assert [s.campaign.slug for s in list_campaigns(conn)] == ["aa-first", SLUG, "zz-last"]


def test_diff_names_nested_fields_by_path_and_fields_added_or_removed() -> None:
    before = {"name": "A", "reward": {"name": "Gold", "months": 12}, "gone": 1}
    after = {"name": "A", "reward": {"name": "Gold", "months": 6}, "new": True}
    assert diff(before, after) == {"gone": [1, None], "new": [None, True], "reward.months": [12, 6]}
