"""Stock of a campaign's code pool: by status, redemptions per day, the projected run-out
date, and the low-stock alert (one email to marketers per threshold crossing)."""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from promo.audit import append_event
from promo.codes import stock
from promo.outbox import DEFAULT_MAIL_DOMAIN, enqueue
from promo.timeutil import db_time

LOW_STOCK_EMAIL = "low_stock"
RATE_DAYS = 7  # the run-out projection uses the mean rate of the last RATE_DAYS days
HISTORY_DAYS = 14
ALERT_ROLES = ("marketer",)  # who gets the email; admins when there is no marketer


@dataclass(frozen=True)
class StockReport:
    by_status: dict[str, int]  # available, issued, expired, voided
    per_day: list[tuple[date, int]]  # redemptions per UTC day, oldest first, HISTORY_DAYS days
    rate_per_day: float
    runs_out_on: date | None  # None: nothing redeemed lately, so no projection
    threshold: int | None

    @property
    def low(self) -> bool:
        return self.threshold is not None and self.by_status["available"] < self.threshold

    def as_dict(self) -> dict[str, Any]:
        return {**self.by_status, "low_stock_threshold": self.threshold, "low": self.low,
                "redemptions_per_day": [{"day": d.isoformat(), "redemptions": n} for d, n in self.per_day],
                "rate_per_day": round(self.rate_per_day, 2),
                "projected_run_out": self.runs_out_on.isoformat() if self.runs_out_on else None}


def stock_report(conn: sqlite3.Connection, stored: Any, now: datetime) -> StockReport:
    campaign = stored.campaign
    by_status = stock(conn, campaign_id=stored.id, not_expiring_before=campaign.code_expires_at, now=now)
    today = now.date()
    first = today - timedelta(days=HISTORY_DAYS - 1)
    counts = dict(conn.execute(
        "SELECT substr(redeemed_at, 1, 10) AS day, COUNT(*) FROM redemptions"
        " WHERE campaign_id = :c AND redeemed_at >= :since GROUP BY substr(redeemed_at, 1, 10)",
        {"c": stored.id, "since": db_time(datetime.combine(first, datetime.min.time(), tzinfo=now.tzinfo))},
    ).fetchall())
    per_day = [(first + timedelta(days=i), int(counts.get((first + timedelta(days=i)).isoformat(), 0)))
               for i in range(HISTORY_DAYS)]
    rate = sum(n for _, n in per_day[-RATE_DAYS:]) / RATE_DAYS
    runs_out = None
    if rate > 0:
        runs_out = today + timedelta(days=math.ceil(by_status["available"] / rate))
    return StockReport(by_status, per_day, rate, runs_out, getattr(campaign, "low_stock_threshold", None))


def available_at_least(conn: sqlite3.Connection, stored: Any, n: int, now: datetime) -> bool:
    """Whether at least n codes are issuable: reads at most n index entries, not the pool."""
    found = conn.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM reward_codes WHERE campaign_id = :c AND issued_at IS NULL"
        " AND voided_at IS NULL AND expires_at >= :min LIMIT :n) AS enough",
        {"c": stored.id, "min": db_time(max(stored.campaign.code_expires_at, now)), "n": n},
    ).fetchone()[0]
    return int(found) >= n


def alert_if_low(conn: sqlite3.Connection, stored: Any, *, now: datetime, mail_domain: str = DEFAULT_MAIL_DOMAIN) -> bool:
    """Fire the low-stock alert if it is armed and stock is below the threshold (inside
    the transaction that took a code). Returns whether it fired."""
    threshold = getattr(stored.campaign, "low_stock_threshold", None)
    if threshold is None:
        return False
    if conn.execute("SELECT 1 FROM stock_alerts WHERE campaign_id = :c AND rearmed_at IS NULL",
                    {"c": stored.id}).fetchone():
        return False  # already fired for this crossing
    if available_at_least(conn, stored, threshold, now):
        return False
    available = stock(conn, campaign_id=stored.id, not_expiring_before=stored.campaign.code_expires_at, now=now)["available"]
    alert_id = conn.execute(
        "INSERT INTO stock_alerts (campaign_id, threshold, available, fired_at) VALUES (:c, :t, :a, :now)",
        {"c": stored.id, "t": threshold, "a": available, "now": db_time(now)},
    ).lastrowid
    slug = stored.campaign.slug
    recipients = _alert_recipients(conn)
    for email in recipients:
        enqueue(conn, template=LOW_STOCK_EMAIL, recipient=email, subject_ref=f"stock-alert:{alert_id}", at=now,
                domain=mail_domain, payload={"slug": slug, "name": stored.campaign.name, "available": available,
                                             "threshold": threshold})
    append_event(conn, tag="codes:stock:low", actor="system", subject=f"campaign:{slug}", at=now,
                 data={"available": available, "threshold": threshold, "notified": recipients})
    return True


def rearm_if_restocked(conn: sqlite3.Connection, stored: Any, *, now: datetime, actor: str) -> bool:
    """After a restock or a threshold change: re-arm a fired alert once stock is back at
    the threshold, so the next crossing emails again."""
    row = conn.execute("SELECT id FROM stock_alerts WHERE campaign_id = :c AND rearmed_at IS NULL",
                       {"c": stored.id}).fetchone()
    threshold = getattr(stored.campaign, "low_stock_threshold", None)
    if row is None or (threshold is not None and not available_at_least(conn, stored, threshold, now)):
        return False
    conn.execute("UPDATE stock_alerts SET rearmed_at = :now WHERE id = :id", {"now": db_time(now), "id": row["id"]})
    append_event(conn, tag="codes:stock:rearmed", actor=actor, subject=f"campaign:{stored.campaign.slug}", at=now,
                 data={"threshold": threshold})
    return True


def _alert_recipients(conn: sqlite3.Connection) -> list[str]:
    for role in (*ALERT_ROLES, "admin"):
        emails = [r[0] for r in conn.execute(
            "SELECT email FROM staff WHERE role = :r AND disabled_at IS NULL ORDER BY email", {"r": role})]
        if emails:
            return emails
    return []
