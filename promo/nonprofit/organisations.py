"""Organisations of the nonprofit program: registration (R-N4 … R-N7), the first review,
and an approved organisation's standing (under review again, revoked), read by the rule
that says what that standing forbids. Owns the `organisations` table.

Each function runs inside the caller's transaction (`db.write`), so the rules are checked
and the result written under the one write lock. Every decision is an audit event."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from babel.core import get_global

from promo.audit import append_event
from promo.backends import dialect_of
from promo.campaigns.donation_program import HEALTH_EXCEPTIONS, ORG_TYPES, Registration, registration_failures
from promo.campaigns.rules import Failure
from promo.countries import country_zone, normalize_country
from promo.errors import FieldError, InputError, NotFound
from promo.i18n import languages
from promo.identifiers import normalize_email
from promo.nonprofit.program import NotAllowed, program, require_reason
from promo.nonprofit.records import RecordQuery, like_pattern
from promo.paging import Keyset, Page
from promo.timeutil import db_time, from_db_time

NOT_APPROVED = Failure("R-V8", "codes_need_approval", "validation codes can be created once the organisation is approved")
REVOKED = Failure("R-N7", "organisation_revoked", "the organisation's approval was revoked: it can no longer request "
                  "donations, and its validation codes no longer work")
ORG_STATUSES = ("pending", "approved", "under_review", "revoked", "rejected")


def organisation_zone(country: str) -> ZoneInfo:
    """Where an organisation reads its dates: its country's zone, never a UTC date."""
    return country_zone(country) or ZoneInfo("UTC")


@dataclass(frozen=True)
class Organisation(Registration):
    """A registered organisation: what it stated (the Registration the rules R-N5, R-N6 and
    R-N7 judge) and where its review stands."""

    id: int
    holder_email: str
    status: str  # the first review's outcome: pending, approved, rejected
    failed_rules: tuple[str, ...]
    reason: str | None
    created_at: str
    under_review_since: str | None = None
    review_note: str | None = None  # staff only
    revoked_at: datetime | None = None
    revoked_reason: str | None = None  # its representatives are told

    @property
    def standing(self) -> str:
        """pending, approved, rejected, or for an approved organisation: under_review, revoked."""
        if self.revoked_at is not None:
            return "revoked"
        return "under_review" if self.under_review_since else self.status

    @property
    def may_issue_codes(self) -> bool:
        """R-V8, R-N7: whether its holder may issue and refresh validation codes now."""
        return not code_failures_of(self)

    @property
    def zone(self) -> ZoneInfo:
        return organisation_zone(self.country)

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(self.zone)


def parse_registration(form: dict[str, str]) -> Registration:
    errors: list[FieldError] = []
    name = form.get("name", "").strip()
    short = form.get("short_name", "").strip()
    number = form.get("registration_number", "").strip()
    if not name or len(name) > 200:
        errors.append(FieldError("name", "is required (up to 200 characters)"))
    if not re.fullmatch(r"[A-Za-z0-9]{2,30}", short):
        errors.append(FieldError("short_name", "must be 2 to 30 letters or digits, no spaces (it ends every validation code, R-V1)"))
    if not number or len(number) > 50:
        errors.append(FieldError("registration_number", "is required: nonprofits must be registered (R-N4)", rule="R-N4"))
    country = ""
    try:
        country = normalize_country(form.get("country", ""), "country")
    except InputError as exc:
        errors.extend(exc.errors)
    org_type = form.get("org_type", "")
    if org_type not in ORG_TYPES:
        errors.append(FieldError("org_type", "choose the kind of organisation"))
    health = form.get("health_kind") or None
    if health is not None and health not in HEALTH_EXCEPTIONS + ("other",):
        errors.append(FieldError("health_kind", "choose the kind of health-care organisation"))
    if not form.get("mission"):
        errors.append(FieldError("mission", "choose the organisation's mission"))
    if errors:
        raise InputError(errors)
    return Registration(name=name, short_name=short, country=country, registration_number=number,
                        mission=form["mission"], org_type=org_type, health_kind=health if org_type == "healthcare" else None,
                        non_discrimination=form.get("non_discrimination") == "yes")


def register_organisation(conn: sqlite3.Connection, *, holder_email: str, registration: Registration, now: datetime,
                          ip: str | None) -> int:
    """A new organisation waits for staff review (pending), with the rules it fails already noted."""
    campaign_id, _program = program(conn)
    holder = normalize_email(holder_email)
    if conn.execute("SELECT 1 FROM organisations WHERE campaign_id = :c AND lower(short_name) = lower(:s)",
                    {"c": campaign_id, "s": registration.short_name}).fetchone():
        raise InputError.one("short_name", "is already used by another organisation; choose another")
    if conn.execute("SELECT 1 FROM organisations WHERE campaign_id = :c AND country = :k AND registration_number = :n",
                    {"c": campaign_id, "k": registration.country, "n": registration.registration_number}).fetchone():
        raise InputError.one("registration_number", "an organisation with this registration number is already registered")
    failures = registration_failures(registration)
    org_id = conn.execute(
        "INSERT INTO organisations (campaign_id, holder_email, name, short_name, country, registration_number, mission,"
        " org_type, health_kind, non_discrimination, status, failed_rules, created_at)"
        " VALUES (:c, :h, :name, :short, :country, :number, :mission, :type, :health, :nd, 'pending', :rules, :now)",
        {"c": campaign_id, "h": holder, "name": registration.name, "short": registration.short_name,
         "country": registration.country, "number": registration.registration_number, "mission": registration.mission,
         "type": registration.org_type, "health": registration.health_kind, "nd": int(registration.non_discrimination),
         "rules": " ".join(sorted({f.rule for f in failures})), "now": db_time(now)},
    ).lastrowid
    assert org_id is not None
    append_event(conn, tag="nonprofit:organisation:registered", actor=f"account:{holder}", subject=f"organisation:{org_id}",
                 ip=ip, at=now, data={"name": registration.name, "org_type": registration.org_type,
                                      "mission": registration.mission, "failures": [f.as_dict() for f in failures]})
    return org_id


def review_organisation(conn: sqlite3.Connection, org_id: int, *, decision: str, reviewer: str, reason: str,
                        now: datetime, ip: str | None) -> Organisation:
    """Approve (only if no rule of R-N5/R-N6/R-N7 fails) or reject with a reason; audited."""
    org = get_organisation(conn, org_id)
    if org.status != "pending":
        raise InputError.one("decision", f"this organisation was already {org.status}")
    if decision == "approve":
        failures = registration_failures(org)
        if failures:
            raise NotAllowed("decision", failures, prefix="cannot approve: ")
        status, why = "approved", None
    elif decision == "reject":
        status, why = "rejected", require_reason(reason, "the organisation is rejected (the holder sees it)")
    else:
        raise InputError.one("decision", "must be approve or reject")
    conn.execute("UPDATE organisations SET status = :s, reason = :r, reviewer_email = :who, decided_at = :now WHERE id = :id",
                 {"s": status, "r": why, "who": reviewer, "now": db_time(now), "id": org_id})
    append_event(conn, tag=f"nonprofit:organisation:{status}", actor=f"staff:{reviewer}", subject=f"organisation:{org_id}",
                 ip=ip, at=now, data={"changes": {"status": ["pending", status]}, "reason": why})
    return get_organisation(conn, org_id)


_ORG_SELECT = ("SELECT id, holder_email, name, short_name, country, registration_number, mission, org_type, health_kind,"
               " non_discrimination, status, failed_rules, reason, created_at, under_review_since, review_note, revoked_at,"
               " revoked_reason FROM organisations")


def _organisation(row: sqlite3.Row) -> Organisation:
    return Organisation(name=row["name"], short_name=row["short_name"], country=row["country"],
                        registration_number=row["registration_number"], mission=row["mission"], org_type=row["org_type"],
                        health_kind=row["health_kind"], non_discrimination=bool(row["non_discrimination"]), id=row["id"],
                        holder_email=row["holder_email"], status=row["status"],
                        failed_rules=tuple(row["failed_rules"].split()), reason=row["reason"], created_at=row["created_at"],
                        under_review_since=row["under_review_since"], review_note=row["review_note"],
                        revoked_at=from_db_time(row["revoked_at"]) if row["revoked_at"] else None,
                        revoked_reason=row["revoked_reason"])


def get_organisation(conn: sqlite3.Connection, org_id: int) -> Organisation:
    row = conn.execute(_ORG_SELECT + " WHERE id = :id", {"id": org_id}).fetchone()
    if row is None:
        raise NotFound("organisation", str(org_id))
    return _organisation(row)


def organisations_of(conn: sqlite3.Connection, holder_email: str) -> list[Organisation]:
    return [_organisation(r) for r in conn.execute(_ORG_SELECT + " WHERE holder_email = :h ORDER BY id", {"h": holder_email})]


# Each standing (Organisation.standing) as a fixed condition: under review and revoked
# organisations were approved first, and keep status = 'approved'.
STANDING_SQL = {
    "": "1 = 1",
    "pending": "status = 'pending'",
    "rejected": "status = 'rejected'",
    "approved": "status = 'approved' AND revoked_at IS NULL AND under_review_since IS NULL",
    "under_review": "status = 'approved' AND revoked_at IS NULL AND under_review_since IS NOT NULL",
    "revoked": "status = 'approved' AND revoked_at IS NOT NULL",
}


def organisations_by_status(conn: sqlite3.Connection, status: str) -> list[Organisation]:
    """Organisations whose standing is `status`, read by that condition alone."""
    return [_organisation(r) for r in conn.execute(_ORG_SELECT + f" WHERE {STANDING_SQL[status]} ORDER BY id")]  # fixed


def organisations_page(conn: sqlite3.Connection, query: RecordQuery, keyset: Keyset) -> Page[Organisation]:
    """Organisations, newest first, by standing and by name, short name, registration number
    or holder's address (the console's list)."""
    condition, order, params = keyset.sql("id")
    like = dialect_of(conn).case_insensitive_like  # SQLite's LIKE ignores ASCII case, PostgreSQL's ILIKE does
    rows = conn.execute(
        _ORG_SELECT + f" WHERE {STANDING_SQL[query.status]} AND (:q = '' OR name {like} :like ESCAPE '\\'"
        f" OR short_name {like} :like ESCAPE '\\' OR registration_number {like} :like ESCAPE '\\'"
        f" OR holder_email {like} :like ESCAPE '\\') AND {condition} ORDER BY {order} LIMIT :keyset_limit",  # fixed clauses
        {"q": query.q, "like": like_pattern(query.q), **params}).fetchall()
    return keyset.page([_organisation(r) for r in rows], lambda org: org.id)


# ---- what a standing forbids --------------------------------------------------------------------

def standing_failures(org: Organisation, *, not_approved: Failure | None,
                      under_review: Failure | None = None) -> list[Failure]:
    """R-N7, R-N4, R-V8, once for every caller: a revoked organisation may do nothing more;
    one not approved (pending, rejected) is refused with `not_approved` (each caller names
    its own rule); one under review only with `under_review`, when the caller has one: the
    review is not a verdict, its codes keep working and only its requests wait."""
    if org.standing == "revoked":
        return [REVOKED]
    if org.status != "approved":
        return [not_approved] if not_approved else []
    return [under_review] if under_review and org.standing == "under_review" else []


def code_failures_of(org: Organisation) -> list[Failure]:
    """R-V8, R-N7: only an approved organisation, never a revoked one, issues or refreshes codes."""
    return standing_failures(org, not_approved=NOT_APPROVED)


# ---- an approved organisation's standing (staff decisions: promo/nonprofit/decisions.py) ----------

def start_review(conn: sqlite3.Connection, org_id: int, *, note: str, now: datetime) -> None:
    conn.execute("UPDATE organisations SET under_review_since = :now, review_note = :note WHERE id = :id",
                 {"now": db_time(now), "note": note, "id": org_id})


def end_review(conn: sqlite3.Connection, org_id: int) -> None:
    conn.execute("UPDATE organisations SET under_review_since = NULL, review_note = NULL WHERE id = :id", {"id": org_id})


def revoke_approval(conn: sqlite3.Connection, org_id: int, *, why: str, reviewer: str, now: datetime) -> None:
    """R-N7 for good: a revocation also ends a review under way."""
    conn.execute("UPDATE organisations SET revoked_at = :now, revoked_reason = :why, revoked_by = :who,"
                 " under_review_since = NULL WHERE id = :id", {"now": db_time(now), "why": why, "who": reviewer, "id": org_id})


def organisation_language(country: str) -> str:
    """The language of an organisation's country when Promo speaks it (DK: da, NO: nb), else English:
    an email not prompted by a request has no reader's choice to follow."""
    likely = str(get_global("likely_subtags").get(f"und_{country}", ""))
    lang = likely.split("_")[0]
    return lang if lang in languages() else "en"
