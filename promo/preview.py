""""View as customer" (issue 19, item 10): what a campaign's consumer pages and emails show,
for a marketer before publishing. Read only: a preview writes nothing (no redemption, no
outbox row, no audit event), and its reward holds a sample code that no pool can hold.

The views are promo/views/preview.py; this module reads the campaign (a draft too, unlike
the consumer side) and makes the sample data its pages and emails render from."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any

from babel.core import get_global

from promo.campaign_store import StoredCampaign, get_campaign_of
from promo.campaigns.purchase_offer import PurchaseOffer
from promo.catalog import Sku, load_catalog
from promo.errors import NotFound
from promo.rewards import Reward

# Obviously not a code: lower case where codes are upper case, words where codes are
# random, and it says what it is. The default code pattern (DEFAULT_CODE_PATTERN) refuses it.
SAMPLE_CODE = "SAMPLE-preview-only-NOT-A-CODE"
SAMPLE_ACCOUNT = "customer@example.com"  # example.com: reserved, never anybody's mailbox (RFC 2606)
SAMPLE_PRODUCT_KEY = "*****-*****-*****-*****-SAMPL"  # masked, as a rejection shows a key
SAMPLE_REDEMPTION_ID = 0  # no redemption has id 0: a link built from it leads nowhere
PAGES = ("offer", "redeem", "reward")
EMAILS = ("reward_code", "review_rejected")  # the emails a customer of an offer can get about it


@dataclass(frozen=True)
class Preview:
    stored: StoredCampaign
    qualifying: list[Sku]
    excluded: list[Sku]

    @property
    def campaign(self) -> PurchaseOffer:
        campaign = self.stored.campaign
        assert isinstance(campaign, PurchaseOffer)  # load_preview admits nothing else
        return campaign


def load_preview(conn: sqlite3.Connection, slug: str) -> Preview:
    """The campaign behind `slug`, published or not, with the products its offer page names.
    Only offers have consumer pages (the donation program has its own site): anything else
    is not found."""
    stored = get_campaign_of(conn, slug, PurchaseOffer, what="offer")
    campaign = stored.campaign
    catalog = load_catalog(conn)
    rules = campaign.products
    # As the offer page lists them (promo/views/consumer.py): those it names, in its order,
    # then those qualifying by attribute; less the excluded ones.
    listed = [catalog[sku] for sku in rules.qualifying_skus if sku in catalog]
    by_attribute = [s for s in catalog.values() if s not in listed and rules.is_qualifying(s)]
    return Preview(stored=stored, qualifying=[s for s in listed + by_attribute if not rules.is_excluded(s)],
                   excluded=[catalog[sku] for sku in rules.excluded_skus if sku in catalog])


def preview_country(campaign: PurchaseOffer, chosen: str | None, lang: str) -> str:
    """The country the preview's customer bought in and lives in: `chosen` when the offer
    covers it, else where the preview's language is most spoken (da: Denmark) when the offer
    covers that, else the offer's first country."""
    likely = str(get_global("likely_subtags").get(lang, "")).rpartition("_")[2]
    for wanted in ((chosen or "").upper(), likely):
        if wanted in campaign.countries:
            return wanted
    return campaign.countries[0]


def sample_reward(campaign: PurchaseOffer, country: str, now: datetime) -> Reward:
    """A reward as the reward page and email show one, holding SAMPLE_CODE."""
    expires = datetime.combine(campaign.reward.code_expires_on + timedelta(days=1), time(0), tzinfo=campaign.tz)
    return Reward(redemption_id=SAMPLE_REDEMPTION_ID, campaign_slug=campaign.slug, account_email=SAMPLE_ACCOUNT,
                  code=SAMPLE_CODE, code_expires_at=expires, redeemed_at=now, country=country,
                  residence_country=country, terms_version=campaign.terms.version if campaign.terms else None)


def email_context(template: str, campaign: PurchaseOffer, country: str, now: datetime, *,
                  sample_reason: str) -> dict[str, Any]:
    """What `template` renders from, as promo/mail.py would read it for a real message."""
    if template == "reward_code":
        return {"reward": sample_reward(campaign, country, now), "campaign": campaign, "country": country,
                "sponsor": campaign.sponsor_for(country), "support": campaign.support_route(country),
                "terms": campaign.terms}
    if template == "review_rejected":
        return {"reason": sample_reason, "campaign": campaign.slug, "product_key": SAMPLE_PRODUCT_KEY}
    raise NotFound("email", template)
