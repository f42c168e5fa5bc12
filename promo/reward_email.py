"""The reward email's data, read when the relay sends it, never stored in the outbox: the
reward with its code, the campaign's sponsor and support for the country where the
customer lives (R-X13), and the terms version the customer accepted (R-X22).
promo/redemption.py registers it for its template (promo/email_contexts.py)."""

from __future__ import annotations

import sqlite3
from typing import Any

from promo.campaign_store import get_campaign_of
from promo.campaigns.purchase_offer import PurchaseOffer
from promo.email_contexts import PermanentFailure
from promo.outbox import OutboxMessage
from promo.rewards import get_reward
from promo.terms_store import accepted_terms


def reward_email_context(conn: sqlite3.Connection, message: OutboxMessage) -> dict[str, Any] | None:
    """A redemption's reward (subject `redemption:<id>`); None for any other subject."""
    kind, _, ref = message.subject_ref.partition(":")
    if kind != "redemption":
        return None
    reward = get_reward(conn, int(ref))
    if reward is None:
        raise PermanentFailure(f"redemption {ref} not found")
    stored = get_campaign_of(conn, reward.campaign_slug, PurchaseOffer)
    campaign = stored.campaign
    country = reward.residence  # R-X13: where the customer lives chooses sponsor, law and support
    return {"reward": reward, "campaign": campaign, "country": country,
            "sponsor": campaign.sponsor_for(country),
            "support": campaign.support_route(country),
            "terms": accepted_terms(conn, stored.id, reward.terms_version, current=campaign.terms)}  # R-X22: the version accepted
