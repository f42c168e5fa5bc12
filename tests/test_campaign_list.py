"""promo/campaign_list.py on a real SQLite file: the console's list decides each campaign's
state from the stored fields exactly as StoredCampaign.status does, finds by slug, name or
a name in another language, filters by state, sorts by a column either way, pages by id,
and names every bad query field."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from promo.campaign_list import CampaignQuery, list_page
from promo.campaign_store import StoredCampaign, change_state, get_campaign, list_campaigns, save_campaign
from promo.db import transaction
from promo.errors import InputError
from promo.paging import Keyset
from tests.support.database import DURING, SLUG

BEFORE, AFTER = datetime(2013, 7, 1, tzinfo=UTC), datetime(2013, 11, 15, tzinfo=UTC)


@pytest.fixture
def offers(conn: sqlite3.Connection, stored: StoredCampaign) -> sqlite3.Connection:
    """The shipped offer (live), a draft, a paused offer with a Danish name, and one that opens later."""
    shipped = stored.campaign
    later = dataclasses.replace(shipped.redemption, first_day=shipped.redemption.first_day + timedelta(days=60))
    with transaction(conn):
        save_campaign(conn, dataclasses.replace(shipped, slug="b-draft", name="Beta draft"), actor="t", now=DURING, publish=False)
        save_campaign(conn, dataclasses.replace(shipped, slug="c-paused", name="Gamma", names={"da": "Sommertilbud"}),
                      actor="t", now=DURING)
        change_state(conn, "c-paused", "pause", actor="t", now=DURING)
        save_campaign(conn, dataclasses.replace(shipped, slug="a-later", name="alpha later", redemption=later),
                      actor="t", now=DURING)
    return conn


def slugs(conn: sqlite3.Connection, now: datetime = DURING, keyset: Keyset | None = None, **query: str) -> list[str]:
    page, _ = list_page(conn, CampaignQuery.from_query(query), keyset or Keyset(descending=False),
                        kind=get_campaign(conn, SLUG).campaign.kind, now=now)
    return [s.campaign.slug for s in page.items]


@pytest.mark.parametrize("now", [BEFORE, DURING, AFTER, DURING + timedelta(days=75)])
def test_the_state_in_the_list_is_the_campaigns_own(offers: sqlite3.Connection, now: datetime) -> None:
    for state in ("draft", "scheduled", "live", "paused", "ended"):
        expected = [s.campaign.slug for s in list_campaigns(offers) if s.status(now) == state]
        assert sorted(slugs(offers, now, state=state)) == sorted(expected), state


@pytest.mark.parametrize(("query", "expected"), [
    ({}, ["a-later", "b-draft", "c-paused", SLUG]),
    ({"q": "SOMMER"}, ["c-paused"]),  # a name in another language
    ({"q": "draft"}, ["b-draft"]),
    ({"state": "live"}, [SLUG]),
    ({"state": "scheduled"}, ["a-later"]),
    ({"sort": "name"}, ["a-later", "b-draft", SLUG, "c-paused"]),  # names ignore case
    ({"sort": "status", "dir": "desc"}, ["c-paused", SLUG, "a-later", "b-draft"]),
    ({"sort": "opens", "dir": "desc"}, ["a-later", SLUG, "c-paused", "b-draft"]),  # ties: by slug, the same way
])
def test_search_filter_and_sort(offers: sqlite3.Connection, query: dict[str, str], expected: list[str]) -> None:
    assert slugs(offers, **query) == expected


def test_pages_follow_the_sort_and_count_everything_found(offers: sqlite3.Connection) -> None:
    kind = get_campaign(offers, SLUG).campaign.kind
    first, total = list_page(offers, CampaignQuery(), Keyset(size=2, descending=False), kind=kind, now=DURING)
    assert total == 4 and [s.campaign.slug for s in first.items] == ["a-later", "b-draft"] and first.next_query
    second = slugs(offers, keyset=Keyset.from_query(first.next_query, size=2, descending=False))
    assert second == ["c-paused", SLUG]


def test_every_bad_query_field_is_named() -> None:
    with pytest.raises(InputError) as refused:
        CampaignQuery.from_query({"q": "x" * 101, "state": "gone", "sort": "price", "dir": "up"})
    assert [e.field for e in refused.value.errors] == ["q", "state", "sort", "dir"]
    assert CampaignQuery.from_query({"sort": "name", "dir": "desc", "q": " x "}).as_query() == {"q": "x", "sort": "name", "dir": "desc"}
