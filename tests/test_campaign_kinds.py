"""What each campaign kind says it supports (promo/campaigns/kind.py), and the typed lookup
of one kind (campaign_store.get_campaign_of)."""

from __future__ import annotations

import sqlite3
import tomllib
from datetime import UTC, date, datetime

import pytest

from promo.campaign_store import StoredCampaign, get_campaign, get_campaign_of, save_campaign
from promo.campaigns import KINDS, campaign_from_dict, shipped_campaign_text
from promo.campaigns.donation_program import DonationProgram
from promo.campaigns.kind import CampaignKind, Issuance
from promo.campaigns.purchase_offer import PurchaseOffer
from promo.catalog import load_catalog
from promo.db import transaction
from promo.errors import NotFound
from tests.support.database import SLUG

PROGRAM = "nonprofit-donations"
T0 = datetime(2013, 7, 1, tzinfo=UTC)


@pytest.fixture
def program(conn: sqlite3.Connection) -> sqlite3.Connection:
    with transaction(conn):
        campaign = campaign_from_dict(tomllib.loads(shipped_campaign_text(PROGRAM)), load_catalog(conn))
        save_campaign(conn, campaign, actor="test", now=T0)
    return conn


def test_a_purchase_offer_is_redeemed_in_its_window(stored: StoredCampaign) -> None:
    offer = stored.campaign
    window = offer.redemption_window()
    assert window is not None and (window.first_day, window.last_day) == (date(2013, 7, 18), date(2013, 10, 31))
    assert offer.issuance is Issuance.REDEMPTION
    assert offer.schedule() == "redeem 2013-07-18..2013-10-31"
    assert offer.console_path == f"/console/campaigns/{SLUG}"
    assert offer.terms is not None and offer.code_products == ()


def test_a_donation_program_is_not_redeemed(program: sqlite3.Connection) -> None:
    campaign = get_campaign(program, PROGRAM).campaign
    assert campaign.redemption_window() is None
    assert campaign.issuance is Issuance.DONATION
    assert campaign.schedule() == "opens after 2011-07-27"
    assert campaign.console_path == "/console/nonprofit/"
    assert campaign.low_stock_threshold is None and campaign.terms is None  # no alert, no terms text of its own
    assert campaign.code_products  # one pool of licence keys per product


def test_status_of_a_kind_without_a_window(program: sqlite3.Connection) -> None:
    stored = get_campaign(program, PROGRAM)
    assert stored.status(datetime(2099, 1, 1, tzinfo=UTC)) == "live"  # never scheduled or ended


def test_every_kind_has_what_a_kind_has() -> None:
    members = {"kind", "slug", "name", "names", "timezone", "tz", "code_pattern", "code_products", "code_expires_at",
               "low_stock_threshold", "terms", "console_path", "issuance", "redemption_window", "schedule", "name_in",
               "to_dict", "from_dict"}
    assert members <= set(CampaignKind.__dict__) | set(CampaignKind.__annotations__)  # the list above is the Protocol's
    for kind in KINDS.values():
        missing = {m for m in members if not hasattr(kind, m) and m not in kind.__dataclass_fields__}
        assert not missing, kind


def test_get_campaign_of_gives_the_kind_asked_for(program: sqlite3.Connection) -> None:
    offer = get_campaign_of(program, SLUG, PurchaseOffer)
    assert isinstance(offer.campaign, PurchaseOffer) and offer.id == get_campaign(program, SLUG).id
    donations = get_campaign_of(program, PROGRAM, DonationProgram)
    assert isinstance(donations.campaign, DonationProgram)
    assert donations.published_at == get_campaign(program, PROGRAM).published_at


def test_get_campaign_of_another_kind_is_not_found(program: sqlite3.Connection) -> None:
    with pytest.raises(NotFound) as other:
        get_campaign_of(program, PROGRAM, PurchaseOffer, what="offer")
    assert (other.value.what, other.value.key) == ("offer", PROGRAM)
    with pytest.raises(NotFound) as missing:  # no campaign at all: a campaign is not found, whatever was asked
        get_campaign_of(program, "no-such-campaign", PurchaseOffer, what="offer")
    assert (missing.value.what, missing.value.key) == ("campaign", "no-such-campaign")
