"""The nonprofit donation program's transactions: organisations (register, review),
validation codes (issue, refresh, verify), donation requests (limits per cycle, licence
keys from per-product pools, email through the outbox) and returns.

Each function runs inside the caller's transaction (`db.write`), so the rules are checked
and the result written under the one write lock: two requests racing for the last of an
allowance are decided one after the other. Every decision is an audit event."""

from __future__ import annotations

import re
import secrets
import sqlite3
import string
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from promo.audit import append_event
from promo.campaign_store import get_campaign
from promo.campaigns.donation_program import HEALTH_EXCEPTIONS, ORG_TYPES, DonationProgram, Registration, registration_failures
from promo.campaigns.rules import STOCK, Decision, Failure
from promo.catalog import load_catalog
from promo.codes import next_product_key, take_code
from promo.countries import normalize_country
from promo.errors import FieldError, InputError, NotFound
from promo.identifiers import mask_code, normalize_email
from promo.outbox import DEFAULT_MAIL_DOMAIN, enqueue
from promo.timeutil import db_time, from_db_time

PROGRAM = "nonprofit-donations"
TOKEN_ALPHABET = string.ascii_lowercase + string.digits
TOKEN_LENGTH = 12  # 36^12 ≈ 4.7e18 codes: guessing is hopeless at the verification rate limit
VERIFY_FAILURES_PER_HOUR = 100  # per partner
MAX_QUANTITY = 1000
KEYS_EMAIL = "donation_keys"
RETURN_EMAIL = "donation_return"


NOT_HOLDER = Failure("R-V2", "not_the_holder", "only the organisation's account holder manages its validation codes")
NOT_APPROVED = Failure("R-V8", "codes_need_approval", "validation codes can be created once the organisation is approved")


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
    status: str
    failed_rules: tuple[str, ...]
    reason: str | None
    created_at: str


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

    def state(self, now: datetime) -> str:
        return "replaced" if self.replaced else "expired" if now >= self.expires_at else "valid"


@dataclass(frozen=True)
class DonationResult:
    decision: Decision
    request_id: int | None = None
    allowances: list[Any] = field(default_factory=list)  # what is left, shown with a refusal

    @property
    def fulfilled(self) -> bool:
        return self.request_id is not None


def program(conn: sqlite3.Connection, slug: str = PROGRAM) -> tuple[int, DonationProgram]:
    stored = get_campaign(conn, slug)
    if not isinstance(stored.campaign, DonationProgram):
        raise NotFound("donation program", slug)
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
        status, why = "rejected", _reason(reason, "the organisation is rejected (the holder sees it)")
    else:
        raise InputError.one("decision", "must be approve or reject")
    conn.execute("UPDATE organisations SET status = :s, reason = :r, reviewer_email = :who, decided_at = :now WHERE id = :id",
                 {"s": status, "r": why, "who": reviewer, "now": db_time(now), "id": org_id})
    append_event(conn, tag=f"nonprofit:organisation:{status}", actor=f"staff:{reviewer}", subject=f"organisation:{org_id}",
                 ip=ip, at=now, data={"changes": {"status": ["pending", status]}, "reason": why})
    return get_organisation(conn, org_id)


def _reason(reason: str, what: str) -> str:
    """A rejection always says why: the person it concerns is told."""
    if not reason.strip():
        raise InputError.one("reason", f"say why {what}")
    return reason.strip()


_ORG_SELECT = ("SELECT id, holder_email, name, short_name, country, registration_number, mission, org_type, health_kind,"
               " non_discrimination, status, failed_rules, reason, created_at FROM organisations")


def _organisation(row: sqlite3.Row) -> Organisation:
    return Organisation(name=row["name"], short_name=row["short_name"], country=row["country"],
                        registration_number=row["registration_number"], mission=row["mission"], org_type=row["org_type"],
                        health_kind=row["health_kind"], non_discrimination=bool(row["non_discrimination"]), id=row["id"],
                        holder_email=row["holder_email"], status=row["status"],
                        failed_rules=tuple(row["failed_rules"].split()), reason=row["reason"], created_at=row["created_at"])


def get_organisation(conn: sqlite3.Connection, org_id: int) -> Organisation:
    row = conn.execute(_ORG_SELECT + " WHERE id = :id", {"id": org_id}).fetchone()
    if row is None:
        raise NotFound("organisation", str(org_id))
    return _organisation(row)


def organisations_of(conn: sqlite3.Connection, holder_email: str) -> list[Organisation]:
    return [_organisation(r) for r in conn.execute(_ORG_SELECT + " WHERE holder_email = :h ORDER BY id", {"h": holder_email})]


def organisations_by_status(conn: sqlite3.Connection, status: str) -> list[Organisation]:
    return [_organisation(r) for r in conn.execute(_ORG_SELECT + " WHERE status = :s ORDER BY id", {"s": status})]


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
    if org.status != "approved":
        raise NotAllowed("organisation", [NOT_APPROVED])
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
    """R-V4: an expired or unused code is replaced by a new one valid 60 days."""
    code = get_code(conn, code_id)
    org = get_organisation(conn, code.organisation_id)
    if org.holder_email != holder_email:
        raise NotAllowed("code", [NOT_HOLDER])
    if org.status != "approved":
        raise NotAllowed("code", [NOT_APPROVED])
    if code.replaced:
        raise NotAllowed("code", [Failure("R-V4", "code_replaced", "this code was already replaced")])
    if code.used and now < code.expires_at:
        raise NotAllowed("code", [Failure("R-V4", "code_in_use", "only an expired or unused code can be refreshed")])
    conn.execute("UPDATE validation_codes SET replaced_at = :now WHERE id = :id", {"now": db_time(now), "id": code_id})
    _, prog = program(conn)
    return _insert_code(conn, org, code.first_name, code.last_name, code.email, now, prog, code_id, ip, holder_email)


_CODE_SELECT = ("SELECT c.id, c.organisation_id, c.code, c.first_name, c.last_name, c.email, c.created_at, c.expires_at,"
                " c.replaced_at, EXISTS (SELECT 1 FROM validation_code_uses u WHERE u.code_id = c.id AND u.valid = 1) AS used"
                " FROM validation_codes c")


def _code(row: sqlite3.Row) -> ValidationCode:
    return ValidationCode(row["id"], row["organisation_id"], row["code"], row["first_name"], row["last_name"], row["email"],
                          from_db_time(row["created_at"]), from_db_time(row["expires_at"]), row["replaced_at"] is not None,
                          bool(row["used"]))


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


def verify_code(conn: sqlite3.Connection, partner_id: int, code: str, *, now: datetime) -> dict[str, Any]:
    """R-V6: a partner asks whether a code is valid, and for which organisation; every use is
    recorded. Failed lookups are capped per partner and hour, so codes cannot be guessed."""
    since = db_time(now - timedelta(hours=1))
    failures = conn.execute("SELECT COUNT(*) FROM validation_code_uses WHERE partner_id = :p AND valid = 0 AND used_at >= :s",
                            {"p": partner_id, "s": since}).fetchone()[0]
    if failures >= VERIFY_FAILURES_PER_HOUR:
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
        if org.status != "approved":
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


# ---- donation requests --------------------------------------------------------------------------

def parse_quantities(form: dict[str, str], products: tuple[str, ...]) -> dict[str, int]:
    wanted: dict[str, int] = {}
    errors = []
    for sku in products:
        raw = (form.get(f"qty.{sku}") or "").strip()
        if not raw or raw == "0":
            continue
        if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= MAX_QUANTITY:  # "²".isdigit() is True
            errors.append(FieldError(f"qty.{sku}", f"must be a whole number from 0 to {MAX_QUANTITY}"))
            continue
        wanted[sku] = int(raw)
    if not wanted and not errors:
        errors.append(FieldError("products", "choose at least one product and how many"))
    if errors:
        raise InputError(errors)
    return wanted


def current_cycle(conn: sqlite3.Connection, org_id: int, now: datetime) -> tuple[int, datetime, datetime] | None:
    """(id, start, end) of the organisation's cycle running at `now`, if any (R-N1)."""
    row = conn.execute("SELECT id, starts_at, ends_at FROM donation_cycles WHERE organisation_id = :o"
                       " ORDER BY starts_at DESC LIMIT 1", {"o": org_id}).fetchone()
    if row is None or now >= from_db_time(row["ends_at"]):
        return None
    return row["id"], from_db_time(row["starts_at"]), from_db_time(row["ends_at"])


def used_in_cycle(conn: sqlite3.Connection, cycle_id: int | None) -> dict[str, int]:
    if cycle_id is None:
        return {}
    return {row[0]: int(row[1]) for row in conn.execute(
        "SELECT l.sku, SUM(l.quantity) FROM donation_lines l JOIN donation_requests r ON r.id = l.request_id"
        " WHERE r.cycle_id = :c AND r.returned_at IS NULL GROUP BY l.sku", {"c": cycle_id})}


def request_donation(conn: sqlite3.Connection, *, account_email: str, code: str, quantities: dict[str, int], now: datetime,
                     locale: str = "en", ip: str | None = None, mail_domain: str = DEFAULT_MAIL_DOMAIN) -> DonationResult:
    """Check every rule, then claim one licence key per product and email them, all in the
    caller's transaction; a request that breaks any rule is refused whole (R-N2)."""
    campaign_id, prog = program(conn)
    catalog = load_catalog(conn)
    failures = prog.request_failures(now)
    found = find_code(conn, code)
    org = None
    if found is None:
        failures.append(Failure("R-V1", "code_unknown", "no such validation code; check it with your organisation"))
    else:
        failures += prog.code_failures(expires_at=found.expires_at, replaced=found.replaced, now=now)
        if found.email != account_email:
            failures.append(Failure("R-V2", "not_the_representative",
                                    "this validation code was issued to someone else; sign in with the address it was sent to"))
        org = get_organisation(conn, found.organisation_id)
        if org.status != "approved":
            failures.append(Failure("R-N4", "organisation_not_approved", "the organisation is not approved"))
    unknown = [s for s in quantities if s not in prog.products]
    if unknown:
        raise InputError.one("products", f"not donation products of this program: {', '.join(unknown)}")
    cycle = current_cycle(conn, org.id, now) if org else None
    used = used_in_cycle(conn, cycle[0] if cycle else None)
    failures += prog.allocation_failures(catalog, used, quantities)
    allowances = prog.allowances(catalog, used)
    if failures:
        return _refuse_request(conn, org, found, account_email, failures, allowances, now, ip)

    assert org is not None and found is not None
    keys = []
    for sku in quantities:  # every product's key is found before any is taken: a refusal takes none
        key_id = next_product_key(conn, campaign_id=campaign_id, sku=sku)
        if key_id is None:
            return _refuse_request(conn, org, found, account_email,
                                   [Failure(STOCK, "no_keys_left", f"no licence keys are left for {sku}; try again later",
                                            {"sku": sku})], allowances, now, ip)
        keys.append((sku, key_id))
    if cycle is None:  # the first request after the program's start, or after a cycle ended (R-N1)
        cycle_id = conn.execute("INSERT INTO donation_cycles (organisation_id, starts_at, ends_at) VALUES (:o, :s, :e)",
                                {"o": org.id, "s": db_time(now), "e": db_time(prog.cycle_end(now))}).lastrowid
    else:
        cycle_id = cycle[0]
    request_id = conn.execute(
        "INSERT INTO donation_requests (organisation_id, cycle_id, code_id, account_email, locale, requested_at)"
        " VALUES (:o, :c, :code, :a, :l, :now)",
        {"o": org.id, "c": cycle_id, "code": found.id, "a": account_email, "l": locale, "now": db_time(now)}).lastrowid
    assert request_id is not None
    for sku, key_id in keys:
        take_code(conn, key_id, now=now)
        conn.execute("INSERT INTO donation_lines (request_id, sku, quantity, code_id) VALUES (:r, :s, :q, :k)",
                     {"r": request_id, "s": sku, "q": quantities[sku], "k": key_id})
    conn.execute("INSERT INTO validation_code_uses (code_id, purpose, valid, used_at) VALUES (:c, 'request', 1, :now)",
                 {"c": found.id, "now": db_time(now)})
    enqueue(conn, template=KEYS_EMAIL, recipient=account_email, subject_ref=f"donation:{request_id}", at=now, locale=locale,
            domain=mail_domain)
    append_event(conn, tag="nonprofit:donation:fulfilled", actor=f"account:{account_email}", subject=f"organisation:{org.id}",
                 ip=ip, at=now, data={"request": request_id, "cycle": cycle_id, "lines": quantities,
                                      "code": mask_validation_code(found.code)})
    after = {sku: used.get(sku, 0) + quantities.get(sku, 0) for sku in prog.products}
    return DonationResult(Decision(), request_id, prog.allowances(catalog, after))


def _refuse_request(conn: sqlite3.Connection, org: Organisation | None, found: ValidationCode | None, account: str,
                    failures: list[Failure], allowances: list[Any], now: datetime, ip: str | None) -> DonationResult:
    if found is not None:
        conn.execute("INSERT INTO validation_code_uses (code_id, purpose, valid, used_at) VALUES (:c, 'request', 0, :now)",
                     {"c": found.id, "now": db_time(now)})
    append_event(conn, tag="nonprofit:donation:refused", actor=f"account:{account}",
                 subject=f"organisation:{org.id}" if org else "organisation:unknown", ip=ip, at=now,
                 data={"failures": [f.as_dict() for f in failures]})
    return DonationResult(Decision(tuple(failures)), None, allowances)


@dataclass(frozen=True)
class DonationLine:
    sku: str
    name: str
    quantity: int
    key: str


@dataclass(frozen=True)
class DonationRequest:
    id: int
    organisation: str
    organisation_id: int
    account_email: str
    requested_at: datetime
    returned_at: datetime | None
    lines: list[DonationLine]
    return_status: str | None
    locale: str

    def masked_lines(self) -> list[DonationLine]:
        return [DonationLine(line.sku, line.name, line.quantity, mask_code(line.key)) for line in self.lines]


def get_request(conn: sqlite3.Connection, request_id: int) -> DonationRequest:
    row = conn.execute(
        "SELECT r.id, o.name, o.id AS org_id, r.account_email, r.requested_at, r.returned_at, r.locale,"
        " (SELECT status FROM donation_returns t WHERE t.request_id = r.id ORDER BY t.id DESC LIMIT 1) AS return_status"
        " FROM donation_requests r JOIN organisations o ON o.id = r.organisation_id WHERE r.id = :id",
        {"id": request_id}).fetchone()
    if row is None:
        raise NotFound("donation request", str(request_id))
    lines = [DonationLine(r[0], r[1], r[2], r[3]) for r in conn.execute(
        "SELECT l.sku, s.name, l.quantity, c.code FROM donation_lines l JOIN skus s ON s.sku = l.sku"
        " JOIN reward_codes c ON c.id = l.code_id WHERE l.request_id = :id ORDER BY l.id", {"id": request_id})]
    return DonationRequest(row["id"], row["name"], row["org_id"], row["account_email"], from_db_time(row["requested_at"]),
                           from_db_time(row["returned_at"]) if row["returned_at"] else None, lines, row["return_status"],
                           row["locale"])


def requests_of(conn: sqlite3.Connection, account_email: str) -> list[DonationRequest]:
    ids = [r[0] for r in conn.execute("SELECT id FROM donation_requests WHERE account_email = :a ORDER BY id DESC",
                                      {"a": account_email})]
    return [get_request(conn, i) for i in ids]


# ---- returns (R-N9) ------------------------------------------------------------------------------

def ask_return(conn: sqlite3.Connection, request_id: int, *, account_email: str, not_installed: bool, now: datetime,
               ip: str | None) -> int:
    """A return covers the whole request (all its products), within 60 days of receipt, and
    only if nothing was installed. Staff complete it; then the allocation is restored."""
    request = get_request(conn, request_id)
    if request.account_email != account_email:
        raise NotFound("donation request", str(request_id))
    if request.return_status in ("pending", "completed"):
        raise InputError.one("return", f"a return of this request is already {request.return_status}")
    _, prog = program(conn)
    failures = prog.return_failures(received_at=request.requested_at, now=now, not_installed=not_installed)
    if failures:
        raise NotAllowed("return", failures)
    return_id = conn.execute(
        "INSERT INTO donation_returns (request_id, declared_not_installed, status, created_at)"
        " VALUES (:r, 1, 'pending', :now)", {"r": request_id, "now": db_time(now)}).lastrowid
    assert return_id is not None
    append_event(conn, tag="nonprofit:return:asked", actor=f"account:{account_email}", subject=f"donation:{request_id}",
                 ip=ip, at=now, data={"return": return_id, "declared_not_installed": True,
                                      "lines": {line.sku: line.quantity for line in request.lines}})
    return return_id


def decide_return(conn: sqlite3.Connection, return_id: int, *, decision: str, reviewer: str, reason: str, now: datetime,
                  ip: str | None, mail_domain: str = DEFAULT_MAIL_DOMAIN) -> None:
    """Complete (keys voided, allocation restored) or reject with a reason; the requester is emailed."""
    row = conn.execute("SELECT request_id, status FROM donation_returns WHERE id = :id", {"id": return_id}).fetchone()
    if row is None:
        raise NotFound("return", str(return_id))
    if row["status"] != "pending":
        raise InputError.one("decision", f"this return was already {row['status']}")
    request = get_request(conn, row["request_id"])
    if decision == "complete":
        status, why = "completed", None
        conn.execute("UPDATE donation_requests SET returned_at = :now WHERE id = :id", {"now": db_time(now), "id": request.id})
        conn.execute("UPDATE reward_codes SET voided_at = :now WHERE id IN (SELECT code_id FROM donation_lines"
                     " WHERE request_id = :id)", {"now": db_time(now), "id": request.id})
    elif decision == "reject":
        status, why = "rejected", _reason(reason, "the return is rejected (the requester is told)")
    else:
        raise InputError.one("decision", "must be complete or reject")
    conn.execute("UPDATE donation_returns SET status = :s, reason = :r, reviewer_email = :who, decided_at = :now WHERE id = :id",
                 {"s": status, "r": why, "who": reviewer, "now": db_time(now), "id": return_id})
    enqueue(conn, template=RETURN_EMAIL, recipient=request.account_email, subject_ref=f"donation-return:{return_id}", at=now,
            locale=request.locale, domain=mail_domain,
            payload={"request": request.id, "status": status, "reason": why, "organisation": request.organisation})
    append_event(conn, tag=f"nonprofit:return:{status}", actor=f"staff:{reviewer}", subject=f"donation:{request.id}", ip=ip,
                 at=now, data={"return": return_id, "changes": {"status": ["pending", status]}, "reason": why})


def key_stock(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Licence keys per product of the program: available, issued, voided (returned)."""
    campaign_id, prog = program(conn)
    counts = {row[0]: row for row in conn.execute(
        "SELECT sku, SUM(CASE WHEN issued_at IS NULL AND voided_at IS NULL THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN issued_at IS NOT NULL AND voided_at IS NULL THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN voided_at IS NOT NULL THEN 1 ELSE 0 END) FROM reward_codes WHERE campaign_id = :c GROUP BY sku",
        {"c": campaign_id})}
    catalog = load_catalog(conn)
    return [{"sku": sku, "name": catalog[sku].name, "class": catalog[sku].product_class,
             "available": counts[sku][1] if sku in counts else 0, "issued": counts[sku][2] if sku in counts else 0,
             "voided": counts[sku][3] if sku in counts else 0} for sku in prog.products]


def pending_returns(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    rows = conn.execute(
        "SELECT t.id, t.request_id, t.created_at, r.account_email, r.requested_at, o.name FROM donation_returns t"
        " JOIN donation_requests r ON r.id = t.request_id JOIN organisations o ON o.id = r.organisation_id"
        " WHERE t.status = 'pending' ORDER BY t.id").fetchall()
    return [dict(r) for r in rows]
