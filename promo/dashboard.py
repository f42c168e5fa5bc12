"""A campaign's dashboard and the overview of live campaigns: redemptions and refusals by
campaign-local day and hour, refusals by reason, stock burn-down with the projected
run-out, email delivery, open review claims.

Every figure comes from counters (campaign_activity, code_batches, campaign_totals) or a
range of an index holding only the few rows it counts (queued or failed emails, pending
claims, expired free codes); nothing here reads the pool, the decision log or the outbox
row by row, so a view costs the same at a million codes (tests/test_dashboard.py holds the
query plans, bench/dashboard.py the times)."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from promo import activity
from promo.campaign_store import StoredCampaign, StoredOf, get_campaign_of, list_campaigns
from promo.campaigns.purchase_offer import PurchaseOffer
from promo.stock import RunOut, pool_counts, project_run_out, redemption_rate
from promo.timeutil import from_db_time

OUTCOMES = ("redeemed", "refused")
OVERVIEW_DAYS = 14
OVERVIEW_STATES = ("live", "paused")  # a paused campaign is live, held for now

# Each refusal reason in plain words for staff (the consumer's wording is in views/refusals.py).
REASONS = {
    "product_excluded": "The product is explicitly excluded from the offer",
    "product_not_qualifying": "The product is not one of the qualifying products",
    "product_not_available_in_country": "The product is not part of the offer in that country",
    "country_not_eligible": "Bought or activated outside the offer's countries",
    "declared_country_mismatch": "The declared country differs from the activation record",
    "purchase_outside_window": "Bought outside the purchase window",
    "activation_outside_window": "Activated outside the activation window",
    "redemption_not_open": "Redemption had not opened yet",
    "redemption_closed": "The redemption window had closed",
    "terms_not_accepted": "The reward's terms of use were not accepted",
    "account_limit_reached": "The account already has its reward",
    "key_bound_to_other_account": "The product key belongs to another account",
    "key_already_redeemed": "The product key was already used",
    "no_activation_record": "No purchase or activation record for the product key",
    "no_codes_left": "No codes left in the pool",
    "already_redeemed": "Account or product key already redeemed (caught by the database)",
    "campaign_not_published": "The campaign was not published",
    "campaign_paused": "The campaign was paused",
    "total_cap_reached": "The campaign's total cap was reached",
    "too_many_attempts": "Too many failed product-key attempts (guessing limit)",
}


@dataclass(frozen=True)
class Refusal:
    rule: str
    reason: str
    count: int

    @property
    def description(self) -> str:
        return REASONS.get(self.reason, self.reason.replace("_", " ").capitalize())


@dataclass(frozen=True)
class Mail:
    sent: int
    queued: int
    failed: int


@dataclass(frozen=True)
class Dashboard:
    stored: StoredOf[PurchaseOffer]
    status: str
    now: datetime
    tz: ZoneInfo
    stock: dict[str, int]
    days: list[tuple[date, dict[str, int]]]  # the redemption window's days up to today (campaign-local)
    hours_day: date  # the campaign-local day shown by the hour
    hours: list[tuple[datetime, dict[str, int]]]  # its hours, local
    refusals: list[Refusal]
    burn_down: list[tuple[date, int]]  # codes left at the end of each day shown
    run_out: RunOut
    mail: Mail
    open_claims: int
    redeemed: int  # since the campaign began (a refusal may come before the window opens)
    refused: int

    @property
    def window_days(self) -> list[date]:
        window = self.stored.campaign.redemption
        return [window.first_day + timedelta(days=i) for i in range((window.last_day - window.first_day).days + 1)]


def refusals(conn: sqlite3.Connection, campaign_id: int, *, start: datetime | None = None,
             end: datetime | None = None) -> list[Refusal]:
    out = []
    for key, n in activity.reasons(conn, campaign_id, start=start, end=end):
        rule, _, reason = key.partition(" ")
        out.append(Refusal(rule, reason, n))
    return out


def mail_state(conn: sqlite3.Connection, campaign_id: int) -> Mail:
    """Emails of the campaign: sent (counter), queued and failed (a partial index of the few)."""
    unsent = dict(conn.execute(
        "SELECT status, COUNT(*) FROM outbox WHERE campaign_id = :c AND status IN ('queued', 'failed') GROUP BY status",
        {"c": campaign_id}).fetchall())
    return Mail(activity.total(conn, campaign_id, "mail_sent"), int(unsent.get("queued", 0)), int(unsent.get("failed", 0)))


def open_claims(conn: sqlite3.Connection, campaign_id: int) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM review_claims WHERE campaign_id = :c AND status = 'pending'",
                            {"c": campaign_id}).fetchone()[0])


def shown_day(stored: StoredOf[PurchaseOffer], now: datetime, asked: date | None) -> date:
    """The day shown by the hour: the one asked for, else today; kept inside the window."""
    window = stored.campaign.redemption
    day = asked or now.astimezone(stored.campaign.tz).date()
    return min(max(day, window.first_day), window.last_day)


def campaign_dashboard(conn: sqlite3.Connection, stored: StoredOf[PurchaseOffer], now: datetime,
                       day: date | None = None) -> Dashboard:
    campaign = stored.campaign
    tz, window = campaign.tz, campaign.redemption
    today = now.astimezone(tz).date()
    last_shown = min(today, window.last_day)
    days = activity.by_local_day(conn, stored.id, OUTCOMES, window.first_day, last_shown, tz) \
        if last_shown >= window.first_day else []
    hours_day = shown_day(stored, now, day)
    stock = pool_counts(conn, stored, now)
    run_out = project_run_out(stored, stock["available"], redemption_rate(conn, stored, now), now)
    return Dashboard(
        stored=stored, status=stored.status(now), now=now, tz=tz, stock=stock, days=days, hours_day=hours_day,
        hours=activity.by_local_hour(conn, stored.id, OUTCOMES, hours_day, tz),
        refusals=refusals(conn, stored.id), burn_down=burn_down(conn, stored, days, stock["available"], now),
        run_out=run_out, mail=mail_state(conn, stored.id), open_claims=open_claims(conn, stored.id),
        redeemed=activity.total(conn, stored.id, "redeemed"), refused=activity.total(conn, stored.id, "refused"))


def dashboard_of(conn: sqlite3.Connection, slug: str, *, kind: type[PurchaseOffer], now: datetime,
                 day: date | None = None) -> Dashboard:
    """The dashboard of the `kind` campaign at `slug` (another kind's is not found), read in one snapshot."""
    return campaign_dashboard(conn, get_campaign_of(conn, slug, kind, what="campaign"), now, day)


def burn_down(conn: sqlite3.Connection, stored: StoredCampaign, days: list[tuple[date, dict[str, int]]],
              available: int, now: datetime) -> list[tuple[date, int]]:
    """Codes left at the end of each day: today's stock, plus the redemptions since that day,
    less the codes uploaded since (voids and expiries are not dated, so not replayed)."""
    tz = stored.campaign.tz
    uploads = [(from_db_time(at).astimezone(tz).date(), int(n)) for at, n in conn.execute(
        "SELECT imported_at, code_count FROM code_batches WHERE campaign_id = :c", {"c": stored.id}).fetchall()]
    left, out = available, []
    for day, counts in reversed(days):
        out.append((day, max(left, 0)))
        left += counts["redeemed"] - sum(n for uploaded, n in uploads if uploaded == day)
    return list(reversed(out))


@dataclass(frozen=True)
class Glance:
    """One live campaign in the overview."""

    stored: StoredCampaign
    status: str
    redeemed_24h: int
    redeemed_7d: int
    refused_7d: int
    top_refusal: Refusal | None  # the most frequent reason of the last 7 days
    last_days: list[tuple[date, int]]  # redemptions per local day, OVERVIEW_DAYS days
    stock: dict[str, int]
    run_out: RunOut
    mail: Mail
    open_claims: int


def overview(conn: sqlite3.Connection, now: datetime) -> list[Glance]:
    out = []
    for stored in list_campaigns(conn):
        if stored.campaign.redemption_window() is None or stored.status(now) not in OVERVIEW_STATES:  # redemptions only
            continue
        out.append(glance(conn, stored, now))
    return out


def glance(conn: sqlite3.Connection, stored: StoredCampaign, now: datetime) -> Glance:
    campaign, week_ago = stored.campaign, now - timedelta(days=7)
    tz = campaign.tz
    today = now.astimezone(tz).date()
    stock = pool_counts(conn, stored, now)
    since_week = activity.local_hour_start(week_ago, tz)
    week_refusals = refusals(conn, stored.id, start=since_week, end=now)
    return Glance(
        stored=stored, status=stored.status(now),
        redeemed_24h=activity.total(conn, stored.id, "redeemed", start=activity.local_hour_start(now - timedelta(hours=24), tz),
                                    end=now),
        redeemed_7d=activity.total(conn, stored.id, "redeemed", start=since_week, end=now),
        refused_7d=activity.total(conn, stored.id, "refused", start=since_week, end=now),
        top_refusal=week_refusals[0] if week_refusals else None,
        last_days=[(d, c["redeemed"]) for d, c in activity.by_local_day(
            conn, stored.id, ("redeemed",), today - timedelta(days=OVERVIEW_DAYS - 1), today, tz)],
        stock=stock, run_out=project_run_out(stored, stock["available"], redemption_rate(conn, stored, now), now),
        mail=mail_state(conn, stored.id), open_claims=open_claims(conn, stored.id))

