"""A reward's email sent again (R-X10, promo/rewards.py): the same code to the same address,
a few times an hour at most, counted and queued in one transaction."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from promo.campaign_store import StoredCampaign
from promo.db import transaction
from promo.rewards import Reward, resend_reward

NOW = datetime(2013, 9, 1, 12, 0, tzinfo=UTC)


def reward(stored: StoredCampaign) -> Reward:
    return Reward(redemption_id=7, campaign_slug=stored.campaign.slug, account_email="ann@example.com", code="XB-1",
                  code_expires_at=NOW + timedelta(days=90), redeemed_at=NOW, country="DK", campaign_id=stored.id)


def queued(conn: sqlite3.Connection) -> list[tuple[str, str]]:
    return [tuple(r) for r in conn.execute("SELECT recipient, subject_ref FROM outbox ORDER BY id")]


def resend(conn: sqlite3.Connection, stored: StoredCampaign, now: datetime, limit: int = 2) -> bool:
    with transaction(conn):
        return resend_reward(conn, reward(stored), limit=limit, now=now, locale="da")


def test_resends_are_limited_per_hour_and_go_to_the_owner(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    # The first email counts too: with a limit of 2, three are queued within the hour, not four.
    assert [resend(conn, stored, NOW + timedelta(minutes=m)) for m in range(4)] == [True, True, True, False]
    assert queued(conn) == [("ann@example.com", "redemption:7")] * 3
    assert resend(conn, stored, NOW + timedelta(minutes=61)) is True  # the first one has left the hour
