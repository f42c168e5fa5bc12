"""Stock of a campaign's code pool: by status (from counters, not the pool), redemptions
per campaign-local day, the projected run-out, and the low-stock alert (one email to
marketers per threshold crossing)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import IO, Any

from promo import activity
from promo.activity import local_hour_start
from promo.audit import append_event
from promo.campaign_store import StoredCampaign
from promo.campaigns.kind import Issuance
from promo.codes import ImportReport, import_codes, stock
from promo.db import transaction
from promo.outbox import enqueue
from promo.timeutil import db_time

LOW_STOCK_EMAIL = "low_stock"
RATE_DAYS = 7  # the run-out projection uses the mean rate of the last RATE_DAYS days
HISTORY_DAYS = 14
ALERT_ROLES = ("marketer",)  # who gets the email; admins when there is no marketer


@dataclass(frozen=True)
class RunOut:
    """When the pool runs out at the recent rate, said so a marketer can act on it."""

    kind: str  # "runs_out" (on `on`), "not_at_this_rate", "out_of_codes", "window_closed"
    on: date | None  # the campaign-local day, for "runs_out"
    rate_per_day: float  # redemptions a day over the last RATE_DAYS days (or since redemption opened)

    @property
    def text(self) -> str:
        return {"runs_out": str(self.on), "not_at_this_rate": "not at this rate", "out_of_codes": "out of codes now",
                "window_closed": "redemption has closed"}[self.kind]


@dataclass(frozen=True)
class StockReport:
    by_status: dict[str, int]  # available, issued, expired, voided
    per_day: list[tuple[date, int]]  # redemptions per campaign-local day, oldest first, HISTORY_DAYS days
    run_out: RunOut
    threshold: int | None
    timezone: str = "UTC"

    @property
    def low(self) -> bool:
        return self.threshold is not None and self.by_status["available"] < self.threshold

    @property
    def rate_per_day(self) -> float:
        return self.run_out.rate_per_day

    @property
    def runs_out_on(self) -> date | None:
        return self.run_out.on

    def as_dict(self) -> dict[str, Any]:
        return {**self.by_status, "low_stock_threshold": self.threshold, "low": self.low,
                "redemptions_per_day": [{"day": d.isoformat(), "redemptions": n} for d, n in self.per_day],
                "timezone": self.timezone, "rate_per_day": round(self.rate_per_day, 2),
                "projected_run_out": self.runs_out_on.isoformat() if self.runs_out_on else None,
                "projection": self.run_out.kind}


def pool_counts(conn: sqlite3.Connection, stored: StoredCampaign, now: datetime) -> dict[str, int]:
    """Codes by status, as codes.stock() counts them, without reading the pool: codes per
    batch (known at import, voided ones counted when voided), issued ones from the campaign's
    redemption counter (promo/totals.py: summed over its shards), and only the free codes
    already past their expiry from the index of free codes (none while a campaign runs, all
    that are left once its codes expire)."""
    campaign = stored.campaign
    if campaign.issuance is not Issuance.REDEMPTION:  # the redemption counter does not count its codes
        return stock(conn, campaign_id=stored.id, not_expiring_before=campaign.code_expires_at, now=now)
    total, voided, issued, expired, _ = conn.execute(_COUNTS, _counts_params(stored, now)).fetchone()
    return _by_status(total, voided, issued, expired)


_COUNTS = (
    "SELECT (SELECT COALESCE(SUM(code_count), 0) FROM code_batches WHERE campaign_id = :c),"
    " (SELECT COALESCE(SUM(voided), 0) FROM code_batches WHERE campaign_id = :c),"
    " (SELECT COALESCE(SUM(redeemed), 0) FROM campaign_totals WHERE campaign_id = :c),"
    " (SELECT COUNT(*) FROM reward_codes WHERE campaign_id = :c AND issued_at IS NULL AND voided_at IS NULL"
    " AND expires_at < :min),"
    " EXISTS (SELECT 1 FROM stock_alerts WHERE campaign_id = :c AND rearmed_at IS NULL)"  # the alert has fired
)


def _counts_params(stored: StoredCampaign, now: datetime) -> dict[str, Any]:
    return {"c": stored.id, "min": db_time(max(stored.campaign.code_expires_at, now))}


def _by_status(total: int, voided: int, issued: int, expired: int) -> dict[str, int]:
    return {"available": total - voided - issued - expired, "issued": issued, "expired": expired, "voided": voided}


def redemption_rate(conn: sqlite3.Connection, stored: StoredCampaign, now: datetime) -> float:
    """Redemptions a day over the last RATE_DAYS days, or since redemption opened if later
    (0 for a campaign that is not redeemed)."""
    window = stored.campaign.redemption_window()
    if window is None:
        return 0.0
    since = max(now - timedelta(days=RATE_DAYS), window.start)
    if since >= now:
        return 0.0
    days = max((now - since) / timedelta(days=1), 1.0)  # a first hour's pace is not a daily rate
    return activity.total(conn, stored.id, "redeemed", start=local_hour_start(since, stored.campaign.tz), end=now) / days


def project_run_out(stored: StoredCampaign, available: int, rate_per_day: float, now: datetime) -> RunOut:
    window = stored.campaign.redemption_window()
    if window is None:  # not redeemed: nothing to project
        return RunOut("not_at_this_rate", None, rate_per_day)
    if now >= window.end:
        return RunOut("window_closed", None, rate_per_day)
    if available <= 0:
        return RunOut("out_of_codes", None, rate_per_day)
    if rate_per_day <= 0:
        return RunOut("not_at_this_rate", None, rate_per_day)
    at = now + timedelta(days=available / rate_per_day)
    if at >= window.end:  # codes outlast the redemption window
        return RunOut("not_at_this_rate", None, rate_per_day)
    return RunOut("runs_out", at.astimezone(stored.campaign.tz).date(), rate_per_day)


def stock_report(conn: sqlite3.Connection, stored: StoredCampaign, now: datetime) -> StockReport:
    campaign = stored.campaign
    by_status = pool_counts(conn, stored, now)
    tz = campaign.tz
    today = now.astimezone(tz).date()
    per_day = [(day, counts["redeemed"]) for day, counts in
               activity.by_local_day(conn, stored.id, ("redeemed",), today - timedelta(days=HISTORY_DAYS - 1), today, tz)]
    run_out = project_run_out(stored, by_status["available"], redemption_rate(conn, stored, now), now)
    return StockReport(by_status, per_day, run_out, campaign.low_stock_threshold, campaign.timezone)


def available_up_to(conn: sqlite3.Connection, stored: StoredCampaign, n: int, now: datetime) -> int:
    """Issuable codes, counted no further than n: reads at most n index entries, not the pool
    (below n, the exact count)."""
    return int(conn.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM reward_codes WHERE campaign_id = :c AND issued_at IS NULL"
        " AND voided_at IS NULL AND expires_at >= :min LIMIT :n) AS enough",
        {"c": stored.id, "min": db_time(max(stored.campaign.code_expires_at, now)), "n": n},
    ).fetchone()[0])


def alert_if_low(conn: sqlite3.Connection, stored: StoredCampaign, *, now: datetime) -> bool:
    """Fire the low-stock alert if it is armed and stock is below the threshold (inside
    the transaction that took a code). Returns whether it fired. One statement that reads
    counters only (issue 18): the pool is not counted, and nothing is written until the
    threshold is crossed, so redemptions share no row here."""
    threshold = stored.campaign.low_stock_threshold
    if threshold is None:
        return False
    armed, available = _armed_and_available(conn, stored, threshold, now)
    if not armed or available >= threshold:
        return False  # already fired for this crossing, or enough left
    # Two transactions may both find the alert armed (PostgreSQL runs them at once): the
    # partial unique index stock_alerts_open lets one fire; the other does nothing.
    fired = conn.execute(
        "INSERT INTO stock_alerts (campaign_id, threshold, available, fired_at) VALUES (:c, :t, :a, :now)"
        " ON CONFLICT (campaign_id) WHERE rearmed_at IS NULL DO NOTHING RETURNING id",
        {"c": stored.id, "t": threshold, "a": available, "now": db_time(now)},
    ).fetchone()
    if fired is None:
        return False
    alert_id = fired[0]
    slug = stored.campaign.slug
    recipients = _alert_recipients(conn)
    for email in recipients:
        enqueue(conn, template=LOW_STOCK_EMAIL, recipient=email, subject_ref=f"stock-alert:{alert_id}", at=now,
                campaign_id=stored.id, payload={"slug": slug, "name": stored.campaign.name, "available": available,
                                             "threshold": threshold})
    append_event(conn, tag="codes:stock:low", actor="system", subject=f"campaign:{slug}", at=now,
                 data={"available": available, "threshold": threshold, "notified": recipients})
    return True


def rearm_if_restocked(conn: sqlite3.Connection, stored: StoredCampaign, *, now: datetime, actor: str) -> bool:
    """After a restock or a threshold change: re-arm a fired alert once stock is back at
    the threshold, so the next crossing emails again."""
    row = conn.execute("SELECT id FROM stock_alerts WHERE campaign_id = :c AND rearmed_at IS NULL",
                       {"c": stored.id}).fetchone()
    threshold = stored.campaign.low_stock_threshold
    if row is None or (threshold is not None and _armed_and_available(conn, stored, threshold, now)[1] < threshold):
        return False
    conn.execute("UPDATE stock_alerts SET rearmed_at = :now WHERE id = :id", {"now": db_time(now), "id": row["id"]})
    append_event(conn, tag="codes:stock:rearmed", actor=actor, subject=f"campaign:{stored.campaign.slug}", at=now,
                 data={"threshold": threshold})
    return True


def import_and_rearm(conn: sqlite3.Connection, stored: StoredCampaign, *, source: IO[bytes] | str, source_name: str,
                     now: datetime, actor: str) -> ImportReport:
    """Import a code file into the campaign's pool (all or nothing), then re-arm a fired
    low-stock alert if the restock lifted stock back to the threshold: every importer (the
    console's upload job, `promo import-codes`, the demo's top-up) restocks this one way.
    Call outside a transaction."""
    report = import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source=source, source_name=source_name,
                          now=now, actor=actor)
    with transaction(conn):
        rearm_if_restocked(conn, stored, now=now, actor=actor)
    return report


def _armed_and_available(conn: sqlite3.Connection, stored: StoredCampaign, threshold: int,
                         now: datetime) -> tuple[bool, int]:
    """Whether the alert is armed, and the issuable codes: from the counters for a
    campaign that issues a code per redemption; else counted from the pool, no further
    than the threshold (below it, the exact count)."""
    if stored.campaign.issuance is Issuance.REDEMPTION:
        total, voided, issued, expired, fired = conn.execute(_COUNTS, _counts_params(stored, now)).fetchone()
        return not fired, _by_status(total, voided, issued, expired)["available"]
    fired = conn.execute("SELECT 1 FROM stock_alerts WHERE campaign_id = :c AND rearmed_at IS NULL",
                         {"c": stored.id}).fetchone()
    return fired is None, available_up_to(conn, stored, threshold, now)


def _alert_recipients(conn: sqlite3.Connection) -> list[str]:
    for role in (*ALERT_ROLES, "admin"):
        emails = [r[0] for r in conn.execute(
            "SELECT email FROM staff WHERE role = :r AND disabled_at IS NULL ORDER BY email", {"r": role})]
        if emails:
            return emails
    return []
