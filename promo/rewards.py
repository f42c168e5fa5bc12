"""A consumer's rewards: the redemptions of an account, with their codes (storage), and the
re-sending of a reward's email (R-X10)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from promo.outbox import enqueue, sends_since
from promo.timeutil import from_db_time

REWARD_EMAIL = "reward_code"  # the template of a reward's email: sent by a redemption, re-sent from here


@dataclass(frozen=True)
class Reward:
    redemption_id: int
    campaign_slug: str
    account_email: str
    code: str
    code_expires_at: datetime
    redeemed_at: datetime
    country: str | None  # where the product was bought (activation record)
    residence_country: str | None = None  # R-X13: where the customer lives (None before migration 0013)
    terms_version: str | None = None  # R-X22: the version of the offer's terms accepted
    campaign_id: int | None = None

    @property
    def residence(self) -> str:
        """The country that chooses the sponsor, the law and the support contact (R-X13)."""
        return self.residence_country or self.country or ""


_SELECT = (
    "SELECT r.id, c.slug, r.account_email, k.code, k.expires_at, r.redeemed_at, a.country, r.residence_country,"
    " r.terms_version, r.campaign_id"
    " FROM redemptions r JOIN campaigns c ON c.id = r.campaign_id JOIN reward_codes k ON k.id = r.code_id"
    " LEFT JOIN activations a ON a.product_key = r.product_key"
)


def _reward(row: sqlite3.Row) -> Reward:
    return Reward(row[0], row[1], row[2], row[3], from_db_time(row[4]), from_db_time(row[5]), row[6], row[7], row[8], row[9])


def get_reward(conn: sqlite3.Connection, redemption_id: int) -> Reward | None:
    row = conn.execute(_SELECT + " WHERE r.id = :id", {"id": redemption_id}).fetchone()
    return _reward(row) if row else None


def rewards_of(conn: sqlite3.Connection, account_email: str) -> list[Reward]:
    rows = conn.execute(_SELECT + " WHERE r.account_email = :a ORDER BY r.redeemed_at DESC", {"a": account_email})
    return [_reward(row) for row in rows]


def resend_reward(conn: sqlite3.Connection, reward: Reward, *, limit: int, now: datetime, locale: str) -> bool:
    """R-X10: queue the reward's email again, the *same* code to the *same* address, unless
    `limit` resends were queued in the last hour (the first email is counted too, so one
    more than the limit is allowed in all). Counting and queueing share one transaction
    (run by `Database.write`), so two clicks at once cannot both pass the limit. Returns
    whether the email was queued."""
    ref = f"redemption:{reward.redemption_id}"
    if sends_since(conn, template=REWARD_EMAIL, subject_ref=ref, since=now - timedelta(hours=1), limit=limit + 1) > limit:
        return False
    enqueue(conn, template=REWARD_EMAIL, recipient=reward.account_email, subject_ref=ref, at=now, locale=locale,
            campaign_id=reward.campaign_id)
    return True
