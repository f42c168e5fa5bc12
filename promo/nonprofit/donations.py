"""Donation requests of the nonprofit program and their returns: the rules of R-N1/R-N2 per
two-year cycle, licence keys from per-product pools, the requester's emails through the
outbox, and returns (R-N9). A request that passes every rule is granted at once or waits
(held or requested, R-N4), its quantities reserved; promo/nonprofit/decisions.py has the
staff's decisions on waiting requests. Owns the `donation_cycles`, `donation_requests`,
`donation_items`, `donation_lines` and `donation_returns` tables; the licence keys are the
program's pools in `reward_codes` (promo/codes.py), taken here, and voided by a return.
Each function runs inside the caller's transaction."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from promo.audit import append_event
from promo.backends import dialect_of
from promo.campaigns.donation_program import WAITING
from promo.campaigns.rules import STOCK, Decision, Failure
from promo.catalog import load_catalog
from promo.codes import next_product_key, take_code
from promo.email_contexts import register
from promo.errors import FieldError, InputError, NotFound
from promo.identifiers import mask_code
from promo.nonprofit.organisations import Organisation, get_organisation, organisation_zone, standing_failures
from promo.nonprofit.program import program
from promo.nonprofit.records import RecordQuery, like_pattern
from promo.nonprofit.validation_codes import ValidationCode, find_code, mask_validation_code, record_use
from promo.outbox import OutboxMessage, enqueue
from promo.paging import Keyset, Page
from promo.timeutil import db_time, from_db_time

MAX_QUANTITY = 1000
KEYS_EMAIL = "donation_keys"
STATUS_EMAIL = "donation_status"  # a request held or refused, with the reason (R-N4)
NOT_APPROVED = Failure("R-N4", "organisation_not_approved", "the organisation is not approved")


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
                     terms_accepted: bool, locale: str = "en", ip: str | None = None) -> DonationResult:
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
        failures += standing_failures(org, not_approved=NOT_APPROVED)  # one under review asks, and waits
    unknown = [s for s in quantities if s not in prog.products]
    if unknown:
        raise InputError.one("products", f"not donation products of this program: {', '.join(unknown)}")
    if org:  # requests of one organisation take turns: the allocation is checked, then reserved (R-N2)
        conn.execute("SELECT id FROM organisations WHERE id = :o" + dialect_of(conn).row_lock, {"o": org.id})
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
    record_use(conn, found.id, purpose="request", valid=True, now=now)
    data = {"request": request_id, "cycle": cycle_id, "lines": quantities, "code": mask_validation_code(found.code),
            "terms_version": prog.terms_version}
    if status == "granted":
        hand_over_keys(conn, request_id, keys, now=now, actor=f"account:{account_email}", ip=ip,
                       data=data)
    else:
        if status == "held":
            tell_requester(conn, get_request(conn, request_id), now=now)
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
                   ip: str | None, data: dict[str, Any]) -> None:
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
            locale=row["locale"])
    append_event(conn, tag="nonprofit:donation:fulfilled", actor=actor, subject=f"organisation:{row['organisation_id']}",
                 ip=ip, at=now, data={"request": request_id, "lines": quantities, **data,
                                      "changes": {"status": [row["status"], "granted"]}})


def tell_requester(conn: sqlite3.Connection, request: DonationRequest, *, now: datetime) -> None:
    """A held or refused request: the requester gets the reason by email (R-N4)."""
    enqueue(conn, template=STATUS_EMAIL, recipient=request.account_email, subject_ref=f"donation-status:{request.id}",
            at=now, locale=request.locale,
            payload={"request": request.id, "status": request.status, "cause": request.hold_cause, "reason": request.reason,
                     "organisation": request.organisation,
                     "items": [[item.name, item.quantity] for item in request.items]})


def hold_or_refuse(conn: sqlite3.Connection, request: DonationRequest, target: str, cause: str | None, why: str | None, *,
                   actor: str, now: datetime, ip: str | None) -> None:
    """A waiting request is held or refused (by staff, a review, a revocation, or keys that
    ran out); the requester is emailed why. A refusal gives the reservation back (refused
    requests do not count, R-N2)."""
    conn.execute("UPDATE donation_requests SET status = :s, hold_cause = :cause, reason = :why, decided_by = :who,"
                 " decided_at = :now WHERE id = :id",
                 {"s": target, "cause": cause, "why": why, "who": actor, "now": db_time(now), "id": request.id})
    tell_requester(conn, get_request(conn, request.id), now=now)
    append_event(conn, tag=f"nonprofit:donation:{target}", actor=actor, subject=f"organisation:{request.organisation_id}",
                 ip=ip, at=now, data={"request": request.id, "changes": {"status": [request.status, target]},
                                      "cause": cause, "reason": why})


def mark_decided(conn: sqlite3.Connection, request_id: int, *, actor: str, now: datetime) -> None:
    """Staff grant a request (its keys are handed over next, hand_over_keys)."""
    conn.execute("UPDATE donation_requests SET decided_by = :who, decided_at = :now WHERE id = :id",
                 {"who": actor, "now": db_time(now), "id": request_id})


def wait_for_staff(conn: sqlite3.Connection, request_id: int) -> None:
    """A request a review held waits for staff again, as a new one would (R-N4)."""
    conn.execute("UPDATE donation_requests SET status = 'requested', hold_cause = NULL WHERE id = :id", {"id": request_id})


def _refuse_request(conn: sqlite3.Connection, org: Organisation | None, found: ValidationCode | None, account: str,
                    failures: list[Failure], allowances: list[Any], now: datetime, ip: str | None) -> DonationResult:
    if found is not None:
        record_use(conn, found.id, purpose="request", valid=False, now=now)
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


_REQUEST_SELECT = (
    "SELECT r.id, o.name, o.id AS org_id, o.country, r.account_email, r.requested_at, r.returned_at, r.locale, r.status,"
    " r.hold_cause, r.reason, r.granted_at, r.decided_at, r.terms_version, r.terms_accepted_at,"
    " (SELECT status FROM donation_returns t WHERE t.request_id = r.id ORDER BY t.id DESC LIMIT 1) AS return_status"
    " FROM donation_requests r JOIN organisations o ON o.id = r.organisation_id")
_BATCH = 500  # requests read per statement: well under SQLite's limit on parameters


def requests_by_id(conn: sqlite3.Connection, ids: list[int]) -> list[DonationRequest]:
    """The requests `ids` names that exist, in that order, with their items and lines: three
    statements for each 500, not three for each request."""
    found: dict[int, DonationRequest] = {}
    for start in range(0, len(ids), _BATCH):
        chunk = ids[start:start + _BATCH]
        params = {f"r{n}": request_id for n, request_id in enumerate(chunk)}
        among = ", ".join(f":{name}" for name in params)  # named parameters only: no value is in the SQL
        lines: dict[int, list[DonationLine]] = {request_id: [] for request_id in chunk}
        for r in conn.execute("SELECT l.request_id, l.sku, s.name, l.quantity, c.code FROM donation_lines l"
                              " JOIN skus s ON s.sku = l.sku JOIN reward_codes c ON c.id = l.code_id"
                              f" WHERE l.request_id IN ({among}) ORDER BY l.id", params):
            lines[r[0]].append(DonationLine(r[1], r[2], r[3], r[4]))
        items: dict[int, list[DonationItem]] = {request_id: [] for request_id in chunk}
        for r in conn.execute("SELECT i.request_id, i.sku, s.name, i.quantity FROM donation_items i"
                              f" JOIN skus s ON s.sku = i.sku WHERE i.request_id IN ({among}) ORDER BY i.sku", params):  # (no rowid on PG)
            items[r[0]].append(DonationItem(r[1], r[2], r[3]))
        for row in conn.execute(_REQUEST_SELECT + f" WHERE r.id IN ({among})", params):
            found[row["id"]] = DonationRequest(
                row["id"], row["name"], row["org_id"], row["account_email"], from_db_time(row["requested_at"]),
                _time(row["returned_at"]), lines[row["id"]], row["return_status"], row["locale"], row["status"],
                row["hold_cause"], row["reason"], _time(row["granted_at"]), _time(row["decided_at"]),
                row["terms_version"], _time(row["terms_accepted_at"]), items[row["id"]], row["country"])
    return [found[request_id] for request_id in ids if request_id in found]


def get_request(conn: sqlite3.Connection, request_id: int) -> DonationRequest:
    found = requests_by_id(conn, [request_id])
    if not found:
        raise NotFound("donation request", str(request_id))
    return found[0]


def requests_of(conn: sqlite3.Connection, account_email: str) -> list[DonationRequest]:
    return requests_by_id(conn, [r[0] for r in conn.execute(
        "SELECT id FROM donation_requests WHERE account_email = :a ORDER BY id DESC", {"a": account_email})])


def requests_of_organisation(conn: sqlite3.Connection, org_id: int) -> list[DonationRequest]:
    return requests_by_id(conn, [r[0] for r in conn.execute(
        "SELECT id FROM donation_requests WHERE organisation_id = :o ORDER BY id DESC", {"o": org_id})])


def waiting_requests(conn: sqlite3.Connection, org_id: int | None = None) -> list[DonationRequest]:
    """Requests staff are to decide (R-N4), oldest first: all, or one organisation's."""
    return requests_by_id(conn, [r[0] for r in conn.execute(
        "SELECT id FROM donation_requests WHERE status IN ('requested', 'held') AND (organisation_id = :o OR :o IS NULL)"  # :o typed by =
        " ORDER BY id", {"o": org_id})])


def held_for_review(conn: sqlite3.Connection, org_id: int) -> list[DonationRequest]:
    """An organisation's requests that wait because it is under review, oldest first."""
    return requests_by_id(conn, [r[0] for r in conn.execute(
        "SELECT id FROM donation_requests WHERE organisation_id = :o AND status = 'held' AND hold_cause = 'review'"
        " ORDER BY id", {"o": org_id})])


def mark_returned(conn: sqlite3.Connection, request_id: int, *, now: datetime) -> None:
    """A completed return (promo/nonprofit/returns.py): the request no longer counts in its
    cycle (R-N2), and its licence keys are voided."""
    conn.execute("UPDATE donation_requests SET returned_at = :now WHERE id = :id", {"now": db_time(now), "id": request_id})
    conn.execute("UPDATE reward_codes SET voided_at = :now WHERE id IN (SELECT code_id FROM donation_lines"
                 " WHERE request_id = :id)", {"now": db_time(now), "id": request_id})


def requests_page(conn: sqlite3.Connection, query: RecordQuery, keyset: Keyset) -> Page[DonationRequest]:
    """Donation requests, newest first, by the organisation's name or short name or the
    requester's address (the console's list); each with its lines (keys masked where shown)."""
    condition, order, params = keyset.sql("r.id")
    like = dialect_of(conn).case_insensitive_like  # SQLite's LIKE ignores ASCII case, PostgreSQL's ILIKE does
    ids = [row[0] for row in conn.execute(
        "SELECT r.id FROM donation_requests r JOIN organisations o ON o.id = r.organisation_id"
        f" WHERE (:q = '' OR o.name {like} :like ESCAPE '\\' OR o.short_name {like} :like ESCAPE '\\'"
        f" OR r.account_email {like} :like ESCAPE '\\') AND {condition} ORDER BY {order} LIMIT :keyset_limit",  # fixed clauses
        {"q": query.q, "like": like_pattern(query.q), **params})]
    return keyset.page(requests_by_id(conn, ids), lambda request: request.id)


def _keys_email_context(conn: sqlite3.Connection, message: OutboxMessage) -> dict[str, Any] | None:
    """A granted request's keys email (subject `donation:<id>`) reads the keys when it is
    sent: they are never stored in the outbox."""
    kind, _, ref = message.subject_ref.partition(":")
    return {"request": get_request(conn, int(ref))} if kind == "donation" else None


register(KEYS_EMAIL, _keys_email_context)


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
