"""The nonprofit donation program's transactions: organisations (register, review) and
validation codes (issue, refresh, verify). Donation requests and returns are in
promo/donations.py; staff decisions on requests and on an organisation's standing (hold,
refuse, review again, revoke) in promo/nonprofit_decisions.py.

Each function runs inside the caller's transaction (`db.write`), so the rules are checked
and the result written under the one write lock: two requests racing for the last of an
allowance are decided one after the other. Every decision is an audit event."""

from __future__ import annotations

import re
import secrets
import sqlite3
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from promo.audit import append_event
from promo.campaign_store import get_campaign_of
from promo.campaigns.donation_program import HEALTH_EXCEPTIONS, ORG_TYPES, DonationProgram, Registration, registration_failures
from promo.campaigns.rules import Failure
from promo.countries import country_zone, normalize_country
from promo.errors import FieldError, InputError, NotFound
from promo.identifiers import normalize_email
from promo.timeutil import db_time, from_db_time

PROGRAM = "nonprofit-donations"
TOKEN_ALPHABET = string.ascii_lowercase + string.digits
TOKEN_LENGTH = 12  # 36^12 ≈ 4.7e18 codes: guessing is hopeless at the verification rate limit
VERIFY_FAILURES_PER_HOUR = 100  # per partner


NOT_HOLDER = Failure("R-V2", "not_the_holder", "only the organisation's account holder manages its validation codes")
NOT_APPROVED = Failure("R-V8", "codes_need_approval", "validation codes can be created once the organisation is approved")
REVOKED = Failure("R-N7", "organisation_revoked", "the organisation's approval was revoked: it can no longer request "
                  "donations, and its validation codes no longer work")


def organisation_zone(country: str) -> ZoneInfo:
    """Where an organisation reads its dates: its country's zone, never a UTC date."""
    return country_zone(country) or ZoneInfo("UTC")


class NotAllowed(InputError):
    """Rules forbid this; nothing is written. Carries the failures (rule id and a reason
    key the pages translate) and, for the API and the console, field errors with the rule."""

    status = 403

    def __init__(self, field: str, failures: list[Failure], prefix: str = ""):
        self.failures = failures
        super().__init__([FieldError(field, prefix + f.message, rule=f.rule) for f in failures])


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


@dataclass(frozen=True)
class ValidationCode:
    id: int
    organisation_id: int
    code: str
    first_name: str
    last_name: str
    email: str
    created_at: datetime
    expires_at: datetime
    replaced: bool
    used: bool
    country: str  # the organisation's: dates are shown in its zone
    revoked: bool = False  # the organisation's approval was revoked (R-N7): the code no longer works

    def state(self, now: datetime) -> str:
        if self.replaced:
            return "replaced"
        return "revoked" if self.revoked else "expired" if now >= self.expires_at else "valid"

    @property
    def expires_local(self) -> datetime:
        return self.expires_at.astimezone(organisation_zone(self.country))


def program(conn: sqlite3.Connection, slug: str = PROGRAM) -> tuple[int, DonationProgram]:
    stored = get_campaign_of(conn, slug, DonationProgram, what="donation program")
    return stored.id, stored.campaign


# ---- organisations --------------------------------------------------------------------------

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


def require_reason(reason: str, what: str) -> str:
    """A rejection always says why: the person it concerns is told."""
    if not reason.strip():
        raise InputError.one("reason", f"say why {what}")
    return reason.strip()


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


def code_failures_of(org: Organisation) -> list[Failure]:
    """R-V8, R-N7: only an approved organisation, never a revoked one, issues or refreshes codes.
    One under review still may: the review is not a verdict, and only its requests wait."""
    if org.standing == "revoked":
        return [REVOKED]
    return [] if org.status == "approved" else [NOT_APPROVED]


# ---- validation codes -------------------------------------------------------------------------

def _new_code(short_name: str) -> str:
    """R-V1: a short alphanumeric token (from a CSPRNG), '@', the organisation's short name."""
    return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(TOKEN_LENGTH)) + "@" + short_name


def mask_validation_code(code: str) -> str:
    token, _, short = code.partition("@")
    return token[:3] + "*" * (len(token) - 3) + "@" + short


def issue_code(conn: sqlite3.Connection, org_id: int, *, holder_email: str, first_name: str, last_name: str, email: str,
               now: datetime, ip: str | None) -> str:
    """R-V2, R-V5, R-V8: the approved organisation's holder issues a code to a named representative."""
    org = get_organisation(conn, org_id)
    if org.holder_email != holder_email:
        raise NotAllowed("organisation", [NOT_HOLDER])
    if failures := code_failures_of(org):
        raise NotAllowed("organisation", failures)
    errors = [FieldError(f, "is required") for f, v in (("first_name", first_name), ("last_name", last_name)) if not v.strip()]
    try:
        address = normalize_email(email, "email")
    except InputError as exc:
        errors.extend(exc.errors)
    if errors:
        raise InputError(errors)
    _, prog = program(conn)
    return _insert_code(conn, org, first_name.strip(), last_name.strip(), address, now, prog, None, ip, holder_email)


def _insert_code(conn: sqlite3.Connection, org: Organisation, first: str, last: str, email: str, now: datetime,
                 prog: DonationProgram, replaces: int | None, ip: str | None, actor: str) -> str:
    code = _new_code(org.short_name)
    code_id = conn.execute(
        "INSERT INTO validation_codes (organisation_id, code, first_name, last_name, email, created_at, expires_at, replaces_id)"
        " VALUES (:o, :code, :f, :l, :e, :now, :exp, :rep)",
        {"o": org.id, "code": code, "f": first, "l": last, "e": email, "now": db_time(now),
         "exp": db_time(now + timedelta(days=prog.code_days)), "rep": replaces},
    ).lastrowid
    append_event(conn, tag="nonprofit:code:refreshed" if replaces else "nonprofit:code:issued", actor=f"account:{actor}",
                 subject=f"organisation:{org.id}", ip=ip, at=now,
                 data={"code_id": code_id, "code": mask_validation_code(code), "to": f"{first} {last} <{email}>",
                       "replaces": replaces})
    return code


def refresh_code(conn: sqlite3.Connection, code_id: int, *, holder_email: str, now: datetime, ip: str | None) -> str:
    """R-V4: the holder refreshes a code whenever needed ("etter behov"), used, unused or
    expired: the old code ends at once (partners' look-ups of it fail from now) and a new
    one is valid 60 days. What the old code already obtained stays (R-V7)."""
    code = get_code(conn, code_id)
    org = get_organisation(conn, code.organisation_id)
    if org.holder_email != holder_email:
        raise NotAllowed("code", [NOT_HOLDER])
    if failures := code_failures_of(org):
        raise NotAllowed("code", failures)
    if code.replaced:
        raise NotAllowed("code", [Failure("R-V4", "code_replaced", "this code was already replaced; refresh its newest code")])
    conn.execute("UPDATE validation_codes SET replaced_at = :now WHERE id = :id", {"now": db_time(now), "id": code_id})
    _, prog = program(conn)
    return _insert_code(conn, org, code.first_name, code.last_name, code.email, now, prog, code_id, ip, holder_email)


_CODE_SELECT = ("SELECT c.id, c.organisation_id, c.code, c.first_name, c.last_name, c.email, c.created_at, c.expires_at,"
                " c.replaced_at, EXISTS (SELECT 1 FROM validation_code_uses u WHERE u.code_id = c.id AND u.valid = 1) AS used,"
                " o.country, o.revoked_at IS NOT NULL AS revoked"
                " FROM validation_codes c JOIN organisations o ON o.id = c.organisation_id")


def _code(row: sqlite3.Row) -> ValidationCode:
    return ValidationCode(row["id"], row["organisation_id"], row["code"], row["first_name"], row["last_name"], row["email"],
                          from_db_time(row["created_at"]), from_db_time(row["expires_at"]), row["replaced_at"] is not None,
                          bool(row["used"]), row["country"], bool(row["revoked"]))


def get_code(conn: sqlite3.Connection, code_id: int) -> ValidationCode:
    row = conn.execute(_CODE_SELECT + " WHERE c.id = :id", {"id": code_id}).fetchone()
    if row is None:
        raise NotFound("validation code", str(code_id))
    return _code(row)


def find_code(conn: sqlite3.Connection, code: str) -> ValidationCode | None:
    row = conn.execute(_CODE_SELECT + " WHERE c.code = :code", {"code": code.strip()}).fetchone()
    return _code(row) if row else None


def codes_of_organisation(conn: sqlite3.Connection, org_id: int) -> list[ValidationCode]:
    return [_code(r) for r in conn.execute(_CODE_SELECT + " WHERE c.organisation_id = :o ORDER BY c.id DESC", {"o": org_id})]


def codes_held_by(conn: sqlite3.Connection, email: str) -> list[ValidationCode]:
    return [_code(r) for r in conn.execute(_CODE_SELECT + " WHERE c.email = :e AND c.replaced_at IS NULL ORDER BY c.id DESC",
                                           {"e": email})]


# ---- partners ------------------------------------------------------------------------------------

PARTNER_PREFIX = "partner_"


def add_partner(conn: sqlite3.Connection, name: str, *, now: datetime, actor: str) -> str:
    from promo.auth import session_hash

    label = name.strip()
    if not label:
        raise InputError.one("name", "is required")
    if conn.execute("SELECT 1 FROM partners WHERE name = :n", {"n": label}).fetchone():
        raise InputError.one("name", f"a partner called {label!r} already exists")
    raw = PARTNER_PREFIX + secrets.token_urlsafe(32)
    partner_id = conn.execute("INSERT INTO partners (name, token_hash, created_at) VALUES (:n, :h, :t)",
                              {"n": label, "h": session_hash(raw), "t": db_time(now)}).lastrowid
    append_event(conn, tag="nonprofit:partner:added", actor=actor, subject=f"partner:{partner_id}", at=now, data={"name": label})
    return raw


def partner_for_token(conn: sqlite3.Connection, raw: str) -> tuple[int, str] | None:
    from promo.auth import session_hash

    if not raw.startswith(PARTNER_PREFIX):
        return None
    row = conn.execute("SELECT id, name FROM partners WHERE token_hash = :h AND revoked_at IS NULL",
                       {"h": session_hash(raw)}).fetchone()
    return (row["id"], row["name"]) if row else None


def failed_verifications(conn: sqlite3.Connection, partner_id: int, *, since: datetime, limit: int) -> int:
    """A partner's failed look-ups since `since`, counted no further than `limit` (partial index
    validation_code_uses_partner): the cap costs the same however hard a partner guesses."""
    return int(conn.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM validation_code_uses WHERE partner_id = :p AND valid = 0 AND used_at >= :s"
        " LIMIT :limit)",
        {"p": partner_id, "s": db_time(since), "limit": limit},
    ).fetchone()[0])


def verify_code(conn: sqlite3.Connection, partner_id: int, code: str, *, now: datetime) -> dict[str, Any]:
    """R-V6: a partner asks whether a code is valid, and for which organisation; every use is
    recorded. Failed lookups are capped per partner and hour, so codes cannot be guessed."""
    if failed_verifications(conn, partner_id, since=now - timedelta(hours=1), limit=VERIFY_FAILURES_PER_HOUR) >= VERIFY_FAILURES_PER_HOUR:
        return {"valid": False, "rule": "R-V6", "reason": "too_many_failures",
                "message": "too many verifications of unknown or invalid codes in the last hour"}
    found = find_code(conn, code) if len(code) <= 200 else None
    _, prog = program(conn)
    answer: dict[str, Any]
    if found is None:
        answer = {"valid": False, "reason": "unknown_code", "message": "no such validation code"}
    else:
        org = get_organisation(conn, found.organisation_id)
        problems = prog.code_failures(expires_at=found.expires_at, replaced=found.replaced, now=now)
        if org.standing == "revoked":
            problems.insert(0, REVOKED)  # the reason that matters, whatever else is wrong with the code
        elif org.status != "approved":
            problems.append(Failure("R-V8", "organisation_not_approved", "the organisation is not approved"))
        answer = {"valid": not problems, "expires_at": db_time(found.expires_at),
                  "organisation": {"name": org.name, "short_name": org.short_name, "country": org.country}}
        if problems:
            answer.update(rule=problems[0].rule, reason=problems[0].reason, message=problems[0].message)
    conn.execute("INSERT INTO validation_code_uses (code_id, partner_id, purpose, valid, used_at)"
                 " VALUES (:c, :p, 'verify', :v, :now)",
                 {"c": found.id if found else None, "p": partner_id, "v": int(answer["valid"]), "now": db_time(now)})
    append_event(conn, tag="nonprofit:code:verified", actor=f"partner:{partner_id}",
                 subject=f"organisation:{found.organisation_id}" if found else "validation-code:unknown", at=now,
                 data={"code": mask_validation_code(code[:200]), "valid": answer["valid"], "reason": answer.get("reason")})
    return answer
