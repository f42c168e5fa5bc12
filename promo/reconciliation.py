"""Reconciliation per campaign: do the books balance?

codes imported = available + issued + expired + voided
accepted redemptions = issued codes = reward emails sent + pending + failed
Any mismatch comes with the rows behind it (codes and product keys masked)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from promo.campaign_store import get_campaign
from promo.campaigns.kind import Issuance
from promo.codes import stock
from promo.identifiers import mask_code


@dataclass(frozen=True)
class Check:
    name: str
    left: tuple[str, int]
    right: list[tuple[str, int]]
    rows: list[str] = field(default_factory=list)  # what is behind a mismatch

    @property
    def ok(self) -> bool:
        return self.left[1] == sum(n for _, n in self.right)


@dataclass(frozen=True)
class Reconciliation:
    campaign: str
    checks: list[Check]

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


def reconcile(conn: sqlite3.Connection, slug: str, now: datetime) -> Reconciliation:
    stored = get_campaign(conn, slug)
    counts = stock(conn, campaign_id=stored.id, not_expiring_before=stored.campaign.code_expires_at, now=now)
    imported = int(conn.execute("SELECT COUNT(*) FROM reward_codes WHERE campaign_id = :c", {"c": stored.id}).fetchone()[0])
    codes = Check("codes", ("imported", imported), [(k, v) for k, v in counts.items()])

    books = _BOOKS[stored.campaign.issuance]  # how the kind's codes are issued says what they balance against
    return Reconciliation(slug, [codes, *books(conn, stored.id, counts["issued"])])


def _redemption_checks(conn: sqlite3.Connection, campaign_id: int, issued: int) -> list[Check]:
    """A redeemed campaign: one issued code per accepted redemption; one email per redemption."""
    redemptions = int(conn.execute("SELECT COUNT(*) FROM redemptions WHERE campaign_id = :c", {"c": campaign_id}).fetchone()[0])
    orphans = [f"code {mask_code(r[0])} issued at {r[1]} without a redemption" for r in conn.execute(
        "SELECT k.code, k.issued_at FROM reward_codes k WHERE k.campaign_id = :c AND k.issued_at IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM redemptions r WHERE r.code_id = k.id) ORDER BY k.id LIMIT 50", {"c": campaign_id})]
    issuance = Check("issued", ("accepted redemptions", redemptions), [("issued codes", issued)], orphans)

    emails = {status: 0 for status in ("sent", "queued", "failed")}
    for status, n in conn.execute(
        "SELECT o.status, COUNT(*) FROM redemptions r JOIN outbox o ON o.id ="
        " (SELECT MIN(id) FROM outbox WHERE subject_ref = 'redemption:' || r.id) WHERE r.campaign_id = :c GROUP BY o.status",
        {"c": campaign_id}):
        emails[status] = n
    missing = [f"redemption {r[0]} ({r[1]}) has no email in the outbox" for r in conn.execute(
        "SELECT r.id, r.account_email FROM redemptions r WHERE r.campaign_id = :c AND NOT EXISTS"
        " (SELECT 1 FROM outbox o WHERE o.subject_ref = 'redemption:' || r.id) ORDER BY r.id LIMIT 50", {"c": campaign_id})]
    mail = Check("emails", ("issued codes", issued),
                 [("emails sent", emails["sent"]), ("pending", emails["queued"]), ("failed", emails["failed"])], missing)
    return [issuance, mail]


def _donation_checks(conn: sqlite3.Connection, campaign_id: int, issued: int) -> list[Check]:
    """The donation program: issued licence keys = request lines; one email per request."""
    lines = int(conn.execute(
        "SELECT COUNT(*) FROM donation_lines l JOIN reward_codes k ON k.id = l.code_id WHERE k.campaign_id = :c",
        {"c": campaign_id}).fetchone()[0])
    orphans = [f"licence key {mask_code(r[0])} issued at {r[1]} without a donation request" for r in conn.execute(
        "SELECT k.code, k.issued_at FROM reward_codes k WHERE k.campaign_id = :c AND k.issued_at IS NOT NULL"
        " AND NOT EXISTS (SELECT 1 FROM donation_lines l WHERE l.code_id = k.id) ORDER BY k.id LIMIT 50", {"c": campaign_id})]
    keys = Check("issued", ("donation request lines", lines), [("issued licence keys", issued)], orphans)
    requests = int(conn.execute("SELECT COUNT(*) FROM donation_requests WHERE granted_at IS NOT NULL").fetchone()[0])
    emails = {status: 0 for status in ("sent", "queued", "failed")}
    for status, n in conn.execute(
        "SELECT o.status, COUNT(*) FROM donation_requests r JOIN outbox o ON o.id ="
        " (SELECT MIN(id) FROM outbox WHERE subject_ref = 'donation:' || r.id) WHERE r.granted_at IS NOT NULL"
        " GROUP BY o.status"):
        emails[status] = n
    mail = Check("emails", ("granted donation requests", requests),
                 [("emails sent", emails["sent"]), ("pending", emails["queued"]), ("failed", emails["failed"])])
    return [keys, mail]


_BOOKS: dict[Issuance, Callable[[sqlite3.Connection, int, int], list[Check]]] = {
    Issuance.REDEMPTION: _redemption_checks, Issuance.DONATION: _donation_checks}
