"""Validation codes of the nonprofit program (R-V1 … R-V8): the holder of an approved
organisation issues one to each representative and refreshes it when needed; every use
is recorded, by a donation request or by a partner's verification (R-V6). Owns the
`validation_codes`, `validation_code_uses` and `partners` tables.

Each function runs inside the caller's transaction (`db.write`); every change is an audit
event, with the code masked."""

from __future__ import annotations

import secrets
import sqlite3
import string
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from promo.audit import append_event
from promo.auth import session_hash
from promo.campaigns.donation_program import DonationProgram
from promo.campaigns.rules import Failure
from promo.errors import FieldError, InputError, NotFound
from promo.identifiers import normalize_email
from promo.nonprofit.organisations import Organisation, code_failures_of, get_organisation, organisation_zone, standing_failures
from promo.nonprofit.program import NotAllowed, program
from promo.timeutil import db_time, from_db_time

TOKEN_ALPHABET = string.ascii_lowercase + string.digits
TOKEN_LENGTH = 12  # 36^12 ≈ 4.7e18 codes: guessing is hopeless at the verification rate limit
VERIFY_FAILURES_PER_HOUR = 100  # per partner
NOT_HOLDER = Failure("R-V2", "not_the_holder", "only the organisation's account holder manages its validation codes")
NOT_APPROVED = Failure("R-V8", "organisation_not_approved", "the organisation is not approved")  # told to partners


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


def record_use(conn: sqlite3.Connection, code_id: int | None, *, purpose: str, valid: bool, now: datetime,
               partner_id: int | None = None) -> None:
    """A code was used (a donation request) or looked up (a partner's verification, R-V6);
    an unknown code looked up is recorded too, without a code."""
    conn.execute("INSERT INTO validation_code_uses (code_id, partner_id, purpose, valid, used_at)"
                 " VALUES (:c, :p, :purpose, :v, :now)",
                 {"c": code_id, "p": partner_id, "purpose": purpose, "v": int(valid), "now": db_time(now)})


def representatives(conn: sqlite3.Connection, org: Organisation) -> list[str]:
    """The account holder and every person a validation code was issued to, once each."""
    issued = [r[0] for r in conn.execute("SELECT DISTINCT email FROM validation_codes WHERE organisation_id = :o ORDER BY email",
                                         {"o": org.id})]
    return [org.holder_email] + [e for e in issued if e != org.holder_email]


# ---- partners (R-V6) --------------------------------------------------------------------------------

PARTNER_PREFIX = "partner_"


def add_partner(conn: sqlite3.Connection, name: str, *, now: datetime, actor: str) -> str:
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
        " LIMIT :limit) AS recent",  # an alias: PostgreSQL needs one
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
        standing = standing_failures(org, not_approved=NOT_APPROVED)
        # A revocation is the reason that matters, whatever else is wrong with the code.
        problems = standing + problems if org.standing == "revoked" else problems + standing
        answer = {"valid": not problems, "expires_at": db_time(found.expires_at),
                  "organisation": {"name": org.name, "short_name": org.short_name, "country": org.country}}
        if problems:
            answer.update(rule=problems[0].rule, reason=problems[0].reason, message=problems[0].message)
    record_use(conn, found.id if found else None, purpose="verify", valid=bool(answer["valid"]), now=now, partner_id=partner_id)
    append_event(conn, tag="nonprofit:code:verified", actor=f"partner:{partner_id}",
                 subject=f"organisation:{found.organisation_id}" if found else "validation-code:unknown", at=now,
                 data={"code": mask_validation_code(code[:200]), "valid": answer["valid"], "reason": answer.get("reason")})
    return answer
