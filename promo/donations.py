"""Donation requests of the nonprofit program: the rules of R-N1/R-N2 per two-year cycle,
licence keys from per-product pools, the requester's emails through the outbox, and
returns (R-N9). A request that passes every rule is granted at once or waits (held or
requested, R-N4), its quantities reserved; promo/nonprofit_decisions.py has the staff's
decisions on waiting requests. Each function runs inside the caller's transaction."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from promo.audit import append_event
from promo.campaigns.donation_program import WAITING
from promo.campaigns.rules import STOCK, Decision, Failure
from promo.catalog import load_catalog
from promo.codes import next_product_key, take_code
from promo.errors import FieldError, InputError, NotFound
from promo.identifiers import mask_code
from promo.nonprofit import (
    REVOKED,
    NotAllowed,
    Organisation,
    ValidationCode,
    find_code,
    get_organisation,
    mask_validation_code,
    organisation_zone,
    program,
    require_reason,
)
from promo.outbox import DEFAULT_MAIL_DOMAIN, enqueue
from promo.timeutil import db_time, from_db_time

MAX_QUANTITY = 1000
KEYS_EMAIL = "donation_keys"
RETURN_EMAIL = "donation_return"
STATUS_EMAIL = "donation_status"  # a request held or refused, with the reason (R-N4)


@dataclass(frozen=True)
class DonationResult:
    decision: Decision
    request_id: int | None = None  # None: refused by a rule, nothing stored
    allowances: list[Any] = field(default_factory=list)  # what is left, shown with a refusal
    status: str | None = None  # requested, held or granted

    @property
    def fulfilled(self) -> bool:
        return self.status == "granted"


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
    """R-N2: what the cycle has granted or reserved: waiting requests count, so that granting
    them all can never exceed a limit; refused and returned ones do not."""
    if cycle_id is None:
        return {}
    return {row[0]: int(row[1]) for row in conn.execute(
        "SELECT i.sku, SUM(i.quantity) FROM donation_items i JOIN donation_requests r ON r.id = i.request_id"
        " WHERE r.cycle_id = :c AND r.returned_at IS NULL AND r.status != 'refused' GROUP BY i.sku", {"c": cycle_id})}


def request_donation(conn: sqlite3.Connection, *, account_email: str, code: str, quantities: dict[str, int], now: datetime,
                     terms_accepted: bool, locale: str = "en", ip: str | None = None,
                     mail_domain: str = DEFAULT_MAIL_DOMAIN) -> DonationResult:
    """Check every rule in the caller's transaction; a request that breaks any is refused whole
    (R-N2) and nothing is stored. One that passes reserves its quantities and is granted at
    once (a licence key per product, emailed), or waits: held while the organisation is under
    review, requested when the program has staff grant every request (R-N4)."""
    if not terms_accepted:
        raise InputError.one("accept_terms", "the program's terms of use must be accepted to request products (R-N10)",
                             rule="R-N10")
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
        if org.standing == "revoked":
            failures.append(REVOKED)
        elif org.status != "approved":
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
    status = "held" if org.standing == "under_review" else "requested" if prog.grant == "by_staff" else "granted"
    keys: list[tuple[str, int]] = []
    if status == "granted":
        keys, missing = find_keys(conn, campaign_id, quantities)
        if missing:  # every product's key is found before any is taken: a refusal takes none
            return _refuse_request(conn, org, found, account_email,
                                   [Failure(STOCK, "no_keys_left", f"no licence keys are left for {missing}; try again later",
                                            {"sku": missing})], allowances, now, ip)
    if cycle is None:  # the first request after the program's start, or after a cycle ended (R-N1)
        cycle_id = conn.execute("INSERT INTO donation_cycles (organisation_id, starts_at, ends_at) VALUES (:o, :s, :e)",
                                {"o": org.id, "s": db_time(now), "e": db_time(prog.cycle_end(now))}).lastrowid
    else:
        cycle_id = cycle[0]
    request_id = conn.execute(
        "INSERT INTO donation_requests (organisation_id, cycle_id, code_id, account_email, locale, requested_at, status,"
        " hold_cause, terms_version, terms_accepted_at)"
        " VALUES (:o, :c, :code, :a, :l, :now, :status, :cause, :terms, :now)",
        {"o": org.id, "c": cycle_id, "code": found.id, "a": account_email, "l": locale, "now": db_time(now),
         "status": "requested" if status == "granted" else status, "cause": "review" if status == "held" else None,
         "terms": prog.terms_version}).lastrowid
    assert request_id is not None
    conn.executemany("INSERT INTO donation_items (request_id, sku, quantity) VALUES (:r, :s, :q)",
                     [{"r": request_id, "s": sku, "q": n} for sku, n in quantities.items()])
    conn.execute("INSERT INTO validation_code_uses (code_id, purpose, valid, used_at) VALUES (:c, 'request', 1, :now)",
                 {"c": found.id, "now": db_time(now)})
    data = {"request": request_id, "cycle": cycle_id, "lines": quantities, "code": mask_validation_code(found.code),
            "terms_version": prog.terms_version}
    if status == "granted":
        hand_over_keys(conn, request_id, keys, now=now, actor=f"account:{account_email}", ip=ip, mail_domain=mail_domain,
                       data=data)
    else:
        if status == "held":
            tell_requester(conn, get_request(conn, request_id), now=now, mail_domain=mail_domain)
        append_event(conn, tag=f"nonprofit:donation:{status}", actor=f"account:{account_email}",
                     subject=f"organisation:{org.id}", ip=ip, at=now,
                     data={**data, "cause": "organisation under review" if status == "held" else "granted by staff"})
    after = {sku: used.get(sku, 0) + quantities.get(sku, 0) for sku in prog.products}
    return DonationResult(Decision(), request_id, prog.allowances(catalog, after), status)


def find_keys(conn: sqlite3.Connection, campaign_id: int, quantities: dict[str, int]) -> tuple[list[tuple[str, int]], str | None]:
    """One licence key per product, or the first product without one (then none is taken)."""
    keys = []
    for sku in quantities:
        key_id = next_product_key(conn, campaign_id=campaign_id, sku=sku)
        if key_id is None:
            return [], sku
        keys.append((sku, key_id))
    return keys, None


def hand_over_keys(conn: sqlite3.Connection, request_id: int, keys: list[tuple[str, int]], *, now: datetime, actor: str,
                   ip: str | None, mail_domain: str, data: dict[str, Any]) -> None:
    """Grant: take the keys found by find_keys, email them, audit. The request's quantities
    were reserved in its cycle when it arrived, so granting cannot exceed a limit (R-N2)."""
    row = conn.execute("SELECT organisation_id, account_email, locale, status FROM donation_requests WHERE id = :id",
                       {"id": request_id}).fetchone()
    quantities = {r[0]: r[1] for r in conn.execute("SELECT sku, quantity FROM donation_items WHERE request_id = :r",
                                                   {"r": request_id})}
    for sku, key_id in keys:
        take_code(conn, key_id, now=now)
        conn.execute("INSERT INTO donation_lines (request_id, sku, quantity, code_id) VALUES (:r, :s, :q, :k)",
                     {"r": request_id, "s": sku, "q": quantities[sku], "k": key_id})
    conn.execute("UPDATE donation_requests SET status = 'granted', granted_at = :now, hold_cause = NULL WHERE id = :id",
                 {"now": db_time(now), "id": request_id})
    enqueue(conn, template=KEYS_EMAIL, recipient=row["account_email"], subject_ref=f"donation:{request_id}", at=now,
            locale=row["locale"], domain=mail_domain)
    append_event(conn, tag="nonprofit:donation:fulfilled", actor=actor, subject=f"organisation:{row['organisation_id']}",
                 ip=ip, at=now, data={"request": request_id, "lines": quantities, **data,
                                      "changes": {"status": [row["status"], "granted"]}})


def tell_requester(conn: sqlite3.Connection, request: DonationRequest, *, now: datetime, mail_domain: str) -> None:
    """A held or refused request: the requester gets the reason by email (R-N4)."""
    enqueue(conn, template=STATUS_EMAIL, recipient=request.account_email, subject_ref=f"donation-status:{request.id}",
            at=now, locale=request.locale, domain=mail_domain,
            payload={"request": request.id, "status": request.status, "cause": request.hold_cause, "reason": request.reason,
                     "organisation": request.organisation,
                     "items": [[item.name, item.quantity] for item in request.items]})


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
class DonationItem:
    sku: str
    name: str
    quantity: int


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
    lines: list[DonationLine]  # the licence keys, once granted
    return_status: str | None
    locale: str
    status: str = "granted"  # requested, held, granted, refused
    hold_cause: str | None = None  # review, staff, stock
    reason: str | None = None  # staff's words for a hold or a refusal
    granted_at: datetime | None = None  # when the keys were sent: "received" for returns (R-N9)
    decided_at: datetime | None = None
    terms_version: str | None = None  # R-N10
    terms_accepted_at: datetime | None = None
    items: list[DonationItem] = field(default_factory=list)  # what was asked for
    country: str = ""  # the organisation's: dates are shown in its zone

    @property
    def waiting(self) -> bool:
        return self.status in WAITING

    def local(self, moment: datetime) -> datetime:
        return moment.astimezone(organisation_zone(self.country))

    def masked_lines(self) -> list[DonationLine]:
        return [DonationLine(line.sku, line.name, line.quantity, mask_code(line.key)) for line in self.lines]


def _time(text: str | None) -> datetime | None:
    return from_db_time(text) if text else None


def get_request(conn: sqlite3.Connection, request_id: int) -> DonationRequest:
    row = conn.execute(
        "SELECT r.id, o.name, o.id AS org_id, o.country, r.account_email, r.requested_at, r.returned_at, r.locale, r.status,"
        " r.hold_cause, r.reason, r.granted_at, r.decided_at, r.terms_version, r.terms_accepted_at,"
        " (SELECT status FROM donation_returns t WHERE t.request_id = r.id ORDER BY t.id DESC LIMIT 1) AS return_status"
        " FROM donation_requests r JOIN organisations o ON o.id = r.organisation_id WHERE r.id = :id",
        {"id": request_id}).fetchone()
    if row is None:
        raise NotFound("donation request", str(request_id))
    lines = [DonationLine(r[0], r[1], r[2], r[3]) for r in conn.execute(
        "SELECT l.sku, s.name, l.quantity, c.code FROM donation_lines l JOIN skus s ON s.sku = l.sku"
        " JOIN reward_codes c ON c.id = l.code_id WHERE l.request_id = :id ORDER BY l.id", {"id": request_id})]
    items = [DonationItem(r[0], r[1], r[2]) for r in conn.execute(
        "SELECT i.sku, s.name, i.quantity FROM donation_items i JOIN skus s ON s.sku = i.sku WHERE i.request_id = :id"
        " ORDER BY i.rowid", {"id": request_id})]
    return DonationRequest(row["id"], row["name"], row["org_id"], row["account_email"], from_db_time(row["requested_at"]),
                           _time(row["returned_at"]), lines, row["return_status"], row["locale"], row["status"],
                           row["hold_cause"], row["reason"], _time(row["granted_at"]), _time(row["decided_at"]),
                           row["terms_version"], _time(row["terms_accepted_at"]), items, row["country"])


def requests_of(conn: sqlite3.Connection, account_email: str) -> list[DonationRequest]:
    ids = [r[0] for r in conn.execute("SELECT id FROM donation_requests WHERE account_email = :a ORDER BY id DESC",
                                      {"a": account_email})]
    return [get_request(conn, i) for i in ids]


def requests_of_organisation(conn: sqlite3.Connection, org_id: int) -> list[DonationRequest]:
    ids = [r[0] for r in conn.execute("SELECT id FROM donation_requests WHERE organisation_id = :o ORDER BY id DESC",
                                      {"o": org_id})]
    return [get_request(conn, i) for i in ids]


def waiting_requests(conn: sqlite3.Connection) -> list[DonationRequest]:
    """Requests staff are to decide (R-N4), oldest first."""
    ids = [r[0] for r in conn.execute("SELECT id FROM donation_requests WHERE status IN ('requested', 'held') ORDER BY id")]
    return [get_request(conn, i) for i in ids]


# ---- returns (R-N9) ------------------------------------------------------------------------------

def ask_return(conn: sqlite3.Connection, request_id: int, *, account_email: str, not_installed: bool, now: datetime,
               ip: str | None) -> int:
    """A return covers the whole request (all its products), within 60 days of receipt, and
    only if nothing was installed. Staff complete it; then the allocation is restored."""
    request = get_request(conn, request_id)
    if request.account_email != account_email:
        raise NotFound("donation request", str(request_id))
    if request.granted_at is None:
        raise InputError.one("return", f"this request is {request.status}: only products that were received can be returned")
    if request.return_status in ("pending", "completed"):
        raise InputError.one("return", f"a return of this request is already {request.return_status}")
    _, prog = program(conn)
    failures = prog.return_failures(received_at=request.granted_at, now=now, not_installed=not_installed)
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
        status, why = "rejected", require_reason(reason, "the return is rejected (the requester is told)")
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
        "SELECT t.id, t.request_id, t.created_at, r.account_email, r.granted_at AS received_at, o.name FROM donation_returns t"
        " JOIN donation_requests r ON r.id = t.request_id JOIN organisations o ON o.id = r.organisation_id"
        " WHERE t.status = 'pending' ORDER BY t.id").fetchall()
    return [dict(r) for r in rows]
