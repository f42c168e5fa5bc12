"""Staff decisions in the nonprofit program (issue 15, item 8), through the real transactions
on a real SQLite file: every state and every move of a donation request (R-N4) and of an
organisation's standing (R-N7), the allocation reserved by waiting requests (R-N2: granting
all of them never exceeds a limit, also for random sequences), revocation (what was received
stays, R-V7; codes stop working at the partner API), refresh at any time (R-V4), the terms of
use recorded with each request (R-N10), and dates in the organisation's zone."""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import datetime, timedelta
from itertools import product
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promo.campaigns.donation_program import (
    request_move_failures,
    standing_move_failures,
)
from promo.catalog import shipped_catalog, upsert_skus
from promo.db import connect, transaction
from promo.errors import InputError
from promo.migrate import _statements, available_migrations, migrate
from promo.nonprofit.decisions import WrongState, change_standing, decide_request
from promo.nonprofit.donations import get_request, request_donation, used_in_cycle
from promo.nonprofit.organisations import get_organisation, organisation_language
from promo.nonprofit.program import NotAllowed
from promo.nonprofit.returns import ask_return
from promo.nonprofit.validation_codes import add_partner, codes_of_organisation, issue_code, refresh_code, verify_code
from promo.reconciliation import reconcile
from tests.support.database import prepare_database
from tests.support.nonprofit import HOLDER, REP, T0, approved_org, ask, grant_by_staff, install_program, new_code

STAFF = "staff@example.com"
DAY = timedelta(days=1)
REQUEST_STATES = ("requested", "held", "granted", "refused")
STANDINGS = ("pending", "approved", "rejected", "under_review", "revoked")


@pytest.fixture
def program(conn: sqlite3.Connection) -> sqlite3.Connection:
    return install_program(conn, keys_per_product=60, now=T0)


def decide(conn: sqlite3.Connection, request_id: int, decision: str, reason: str = "", at: datetime = T0) -> Any:
    with transaction(conn):
        return decide_request(conn, request_id, decision=decision, reviewer=STAFF, reason=reason, now=at, ip="10.0.0.9")


def standing(conn: sqlite3.Connection, org_id: int, decision: str, reason: str = "", at: datetime = T0) -> Any:
    with transaction(conn):
        return change_standing(conn, org_id, decision=decision, reviewer=STAFF, reason=reason, now=at, ip="10.0.0.9")


def events(conn: sqlite3.Connection, prefix: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [(r[0], r[1], json.loads(r[2])) for r in conn.execute(
        "SELECT tag, actor, data FROM audit_events WHERE tag LIKE ? ORDER BY seq", (prefix + "%",))]


def mails(conn: sqlite3.Connection, template: str) -> list[tuple[str, str, dict[str, Any]]]:
    return [(r[0], r[1], json.loads(r[2]) if r[2] else {}) for r in conn.execute(
        "SELECT recipient, locale, payload FROM outbox WHERE template = ? ORDER BY id", (template,))]


def granted_total(conn: sqlite3.Connection, sku: str) -> int:
    return int(conn.execute("SELECT COALESCE(SUM(l.quantity), 0) FROM donation_lines l JOIN donation_requests r"
                            " ON r.id = l.request_id WHERE l.sku = ? AND r.returned_at IS NULL", (sku,)).fetchone()[0])


# ---- the moves, exhaustively ---------------------------------------------------------------------

# The moves the program allows, written out (R-N4: staff grant or refuse any request; a hold waits;
# R-V7: what was granted stays): the tables in promo/campaigns/donation_program.py must say the same.
ALLOWED_REQUEST_MOVES = {("requested", "held"), ("requested", "granted"), ("requested", "refused"),
                         ("held", "granted"), ("held", "refused")}
ALLOWED_STANDING_MOVES = {("approved", "under_review"), ("approved", "revoked"),  # R-N7: reviewed again, or revoked
                          ("under_review", "approved"), ("under_review", "revoked")}


@pytest.mark.parametrize(("current", "target"), list(product(REQUEST_STATES, ("held", "granted", "refused"))))
def test_each_request_state_allows_exactly_its_moves(current: str, target: str) -> None:
    failures = request_move_failures(current, target)
    assert (not failures) is ((current, target) in ALLOWED_REQUEST_MOVES)
    if failures:  # a clear refusal: the rule, the state it is in, what was asked
        assert failures[0].rule == "R-N4" and f"this request is {current}, so it cannot be {target}" in failures[0].message
    if current == "granted":
        assert failures and "stays granted (R-V7)" in failures[0].message


@pytest.mark.parametrize(("current", "target"), list(product(STANDINGS, ("approved", "rejected", "under_review", "revoked"))))
def test_each_standing_allows_exactly_its_moves(current: str, target: str) -> None:
    failures = standing_move_failures(current, target)
    assert (not failures) is ((current, target) in ALLOWED_STANDING_MOVES)
    if current == "revoked":
        assert failures[0].rule == "R-N7" and "a revoked approval is final" in failures[0].message
    elif failures:
        assert f"this organisation is {current.replace('_', ' ')}" in failures[0].message
    if current == "pending":  # the first review is decided with approve or reject, never cleared into approval
        assert "approve or reject it first" in failures[0].message


# ---- requests while the organisation is under review ---------------------------------------------

def test_a_request_during_a_review_is_held_reserves_its_allocation_and_goes_on_when_cleared(program: sqlite3.Connection) -> None:
    org_id = approved_org(program)
    code = new_code(program, org_id)
    with pytest.raises(InputError, match="say why"):
        standing(program, org_id, "review", " ")
    assert standing(program, org_id, "review", "a complaint about its hiring policy").standing == "under_review"
    held = ask(program, code, T0 + DAY, DON_WINSRV_STD=10)
    assert held.status == "held" and not held.fulfilled and held.request_id is not None
    assert program.execute("SELECT COUNT(*) FROM reward_codes WHERE issued_at IS NOT NULL").fetchone()[0] == 0  # no keys yet
    second = ask(program, code, T0 + DAY, DON_WINSRV_STD=10)
    assert second.status == "held"
    over = ask(program, code, T0 + DAY, DON_WINSRV_STD=6)  # 20 reserved: 5 left, so 6 is refused whole
    assert over.request_id is None and over.decision.rules == ["R-N2"]
    assert [f.params["remaining"] for f in over.decision.failures] == [5]
    with pytest.raises(WrongState) as waits:  # staff cannot grant it either while the review runs
        decide(program, held.request_id, "grant")
    assert waits.value.status == 409 and waits.value.errors[0].rule == "R-N4"
    assert "under review: its requests wait until the review ends" in waits.value.errors[0].message
    assert [(m[0], m[2]["status"], m[2]["cause"]) for m in mails(program, "donation_status")] == [(REP, "held", "review")] * 2

    assert standing(program, org_id, "clear", at=T0 + 2 * DAY).standing == "approved"
    for request_id in (held.request_id, second.request_id):
        released = get_request(program, request_id)
        assert released.status == "granted" and len(released.lines) == 1 and released.granted_at == T0 + 2 * DAY
    assert granted_total(program, "DON-WINSRV-STD") == 20  # both released together, within the 25
    assert [m[0] for m in mails(program, "donation_keys")] == [REP, REP]
    tags = [e[0] for e in events(program, "nonprofit:")][-7:]
    assert tags == ["nonprofit:organisation:under_review", "nonprofit:donation:held", "nonprofit:donation:held",
                    "nonprofit:donation:refused", "nonprofit:organisation:cleared", "nonprofit:donation:fulfilled",
                    "nonprofit:donation:fulfilled"]
    review = events(program, "nonprofit:organisation:under_review")[0]
    assert review[1] == f"staff:{STAFF}" and review[2]["reason"] == "a complaint about its hiring policy"


def test_codes_keep_working_during_a_review(program: sqlite3.Connection) -> None:
    """A review is not a verdict: partners still confirm the codes, the holder still issues them."""
    org_id = approved_org(program)
    code = new_code(program, org_id)
    standing(program, org_id, "review", "checking")
    partner = _partner(program)
    with transaction(program):
        assert verify_code(program, partner, code, now=T0)["valid"] is True
    assert new_code(program, org_id).endswith("@HarbourFood")


def test_a_request_released_without_keys_stays_held_for_stock(program: sqlite3.Connection) -> None:
    org_id = approved_org(program)
    code = new_code(program, org_id)
    standing(program, org_id, "review", "checking")
    request_id = ask(program, code, T0, DON_SQL_SRV=1).request_id
    with program:
        program.execute("UPDATE reward_codes SET voided_at = '2026-01-01T00:00:00.000000Z' WHERE sku = 'DON-SQL-SRV'")
    standing(program, org_id, "clear")
    assert (get_request(program, request_id).status, get_request(program, request_id).hold_cause) == ("held", "stock")
    assert mails(program, "donation_status")[-1][2]["cause"] == "stock"
    with pytest.raises(WrongState) as empty:  # staff granting it meanwhile: refused, nothing taken, still waiting
        decide(program, request_id, "grant")
    assert empty.value.errors[0].rule == "STOCK" and "upload keys first" in empty.value.errors[0].message
    assert get_request(program, request_id).status == "held"


# ---- staff grant, hold, refuse (a program where every request waits) -----------------------------

def test_staff_hold_refuse_and_grant_waiting_requests_with_reasons(program: sqlite3.Connection) -> None:
    grant_by_staff(program)
    code = new_code(program, approved_org(program))
    first = ask(program, code, T0, DON_OFFICE_PROPLUS=30)
    second = ask(program, code, T0, DON_OFFICE_PROPLUS=20)
    assert (first.status, second.status) == ("requested", "requested")
    assert ask(program, code, T0, DON_OFFICE_PROPLUS=1).decision.rules == ["R-N2"]  # 50 reserved by the two

    with pytest.raises(InputError, match="say why the request is held"):
        decide(program, first.request_id, "hold", "")
    decide(program, first.request_id, "hold", "Send us your latest annual report, please.")
    held = get_request(program, first.request_id)
    assert (held.status, held.hold_cause, held.reason) == ("held", "staff", "Send us your latest annual report, please.")
    assert mails(program, "donation_status")[-1] == (REP, "en", {
        "request": first.request_id, "status": "held", "cause": "staff", "reason": "Send us your latest annual report, please.",
        "organisation": "Harbour Food Bank", "items": [["Office Professional Plus (donation)", 30]]})
    with pytest.raises(WrongState) as twice:
        decide(program, first.request_id, "hold", "again")
    assert "this request is held, so it cannot be held" in twice.value.errors[0].message

    decide(program, second.request_id, "refuse", "Duplicate of request 1.")
    refused = get_request(program, second.request_id)
    assert (refused.status, refused.reason) == ("refused", "Duplicate of request 1.")
    assert used_in_cycle(program, 1) == {"DON-OFFICE-PROPLUS": 30}  # the refusal gave its 20 back
    assert ask(program, code, T0, DON_OFFICE_PROPLUS=20).status == "requested"
    with pytest.raises(WrongState) as final:
        decide(program, second.request_id, "grant")
    assert "this request is refused, so it cannot be granted" in final.value.errors[0].message

    decide(program, first.request_id, "grant", at=T0 + DAY)
    granted = get_request(program, first.request_id)
    assert granted.status == "granted" and granted.granted_at == T0 + DAY and len(granted.lines) == 1
    with pytest.raises(WrongState) as stays:
        decide(program, first.request_id, "refuse", "changed our mind")
    assert stays.value.errors[0].rule == "R-N4" and "stays granted (R-V7)" in stays.value.errors[0].message
    assert get_request(program, first.request_id).lines == granted.lines  # nothing taken back
    with pytest.raises(InputError, match="must be grant, hold or refuse"):
        decide(program, first.request_id, "approve")

    audited = [(e[0], e[1], e[2].get("reason"), e[2]["changes"]["status"]) for e in events(program, "nonprofit:donation:")
               if "changes" in e[2]]
    assert audited == [
        ("nonprofit:donation:held", f"staff:{STAFF}", "Send us your latest annual report, please.", ["requested", "held"]),
        ("nonprofit:donation:refused", f"staff:{STAFF}", "Duplicate of request 1.", ["requested", "refused"]),
        ("nonprofit:donation:fulfilled", f"staff:{STAFF}", None, ["held", "granted"]),
    ]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(st.tuples(st.sampled_from(["DON_WINSRV_STD", "DON_SQL_SRV", "DON_EXCHANGE_SRV", "DON_OFFICE_PROPLUS"]),
                               st.integers(1, 30), st.sampled_from(["grant", "refuse", "hold", "wait"])),
                     min_size=1, max_size=12),
       review=st.booleans())
def test_granting_every_waiting_request_never_exceeds_a_limit(tmp_path: Path, plan: list[tuple[str, int, str]],
                                                             review: bool) -> None:
    """Any sequence of requests, held by a review or waiting for staff, some held or refused
    by staff, then every one still waiting granted: no limit of R-N2 is ever exceeded."""
    conn = prepare_database(tmp_path / f"{uuid.uuid4().hex}.sqlite3")  # a fresh database per example
    try:
        install_program(conn, keys_per_product=60, now=T0)
        grant_by_staff(conn)
        org_id = approved_org(conn)
        code = new_code(conn, org_id)
        if review:
            standing(conn, org_id, "review", "checking")
        waiting = []
        for sku, quantity, decision in plan:
            result = ask(conn, code, T0, **{sku: quantity})
            if result.request_id is None:
                assert result.decision.rules == ["R-N2"]
                continue
            waiting.append(result.request_id)
            if decision == "refuse" or (decision == "hold" and result.status == "requested"):
                decide(conn, result.request_id, decision, "staff's reason")
        if review:
            standing(conn, org_id, "clear")
        for request_id in waiting:
            if get_request(conn, request_id).waiting:
                decide(conn, request_id, "grant")
        servers = granted_total(conn, "DON-SQL-SRV") + granted_total(conn, "DON-EXCHANGE-SRV")
        assert granted_total(conn, "DON-WINSRV-STD") <= 25 and servers <= 5 and granted_total(conn, "DON-OFFICE-PROPLUS") <= 50
    finally:
        conn.close()


# ---- revocation (R-N7, R-V7) --------------------------------------------------------------------

def _partner(conn: sqlite3.Connection) -> int:
    with transaction(conn):
        add_partner(conn, "TechSoup", now=T0, actor="test")
    return int(conn.execute("SELECT id FROM partners WHERE name = 'TechSoup'").fetchone()[0])


def test_revoking_ends_requests_codes_and_confirmations_but_keeps_what_was_received(program: sqlite3.Connection) -> None:
    grant_by_staff(program)
    org_id = approved_org(program)
    code = new_code(program, org_id)
    other = new_code(program, org_id, email="board@ngo.example")
    new_code(program, org_id, email=REP)  # the same person twice is told once
    received = ask(program, code, T0, DON_WINSRV_STD=5).request_id
    decide(program, received, "grant")
    waiting = ask(program, code, T0 + DAY, DON_WINSRV_STD=2).request_id
    partner = _partner(program)

    with pytest.raises(InputError, match="say why the approval is revoked"):
        standing(program, org_id, "revoke", "")
    later = T0 + 3 * DAY
    org = standing(program, org_id, "revoke", "Its bylaws exclude members by religion (found in its annual report).", at=later)
    assert (org.standing, org.revoked_at, org.revoked_reason) == (
        "revoked", later, "Its bylaws exclude members by religion (found in its annual report).")

    kept = get_request(program, received)  # R-V7: granted stays granted, its keys valid
    assert kept.status == "granted" and len(kept.lines) == 1
    assert program.execute("SELECT COUNT(*) FROM reward_codes WHERE issued_at IS NOT NULL AND voided_at IS NULL").fetchone()[0] == 1
    refused = get_request(program, waiting)
    assert (refused.status, refused.reason) == ("refused", org.revoked_reason)

    assert ask(program, code, later, DON_OFFICE_PROPLUS=1).decision.rules == ["R-N7"]  # nothing stored
    with pytest.raises(NotAllowed) as issue, transaction(program):
        issue_code(program, org_id, holder_email=HOLDER, first_name="A", last_name="B", email=REP, now=later, ip=None)
    assert issue.value.errors[0].rule == "R-N7"
    code_id = program.execute("SELECT id FROM validation_codes WHERE code = ?", (other,)).fetchone()[0]
    with pytest.raises(NotAllowed) as refresh, transaction(program):
        refresh_code(program, code_id, holder_email=HOLDER, now=later, ip=None)
    assert refresh.value.errors[0].rule == "R-N7"
    with transaction(program):
        answer = verify_code(program, partner, other, now=later)
    assert answer["valid"] is False and answer["rule"] == "R-N7" and answer["reason"] == "organisation_revoked"

    told = mails(program, "organisation_revoked")
    assert sorted(m[0] for m in told) == sorted([HOLDER, REP, "board@ngo.example"])
    assert {m[1] for m in told} == {"da"}  # a Danish organisation is told in Danish
    assert all(m[2] == {"organisation": "Harbour Food Bank", "reason": org.revoked_reason} for m in told)
    assert mails(program, "donation_status")[-1][2]["status"] == "refused"
    revoked = events(program, "nonprofit:organisation:revoked")
    assert len(revoked) == 1 and revoked[0][1] == f"staff:{STAFF}"
    assert revoked[0][2] == {"changes": {"standing": ["approved", "revoked"]}, "reason": org.revoked_reason,
                             "refused_requests": [waiting], "told": 3}
    for decision in ("clear", "review", "revoke"):
        with pytest.raises(WrongState) as final:
            standing(program, org_id, decision, "x")
        assert final.value.errors[0].rule == "R-N7" and "a revoked approval is final" in final.value.errors[0].message


def test_an_organisation_under_review_can_be_revoked_and_its_held_requests_are_refused(program: sqlite3.Connection) -> None:
    org_id = approved_org(program)
    code = new_code(program, org_id)
    standing(program, org_id, "review", "a complaint")
    held = ask(program, code, T0, DON_OFFICE_PROPLUS=3).request_id
    standing(program, org_id, "revoke", "The complaint was upheld.")
    assert get_request(program, held).status == "refused"
    assert get_organisation(program, org_id).under_review_since is None
    with pytest.raises(WrongState) as pending:
        standing(program, approved_org(program, short_name="Other", registration_number="DK-2"), "clear")
    assert "this organisation is approved, so it cannot be cleared: from approved it can only be put under review or " \
        "revoked" in pending.value.errors[0].message


def test_the_language_of_an_organisation_s_country() -> None:
    assert (organisation_language("DK"), organisation_language("NO"), organisation_language("GB"),
            organisation_language("SE")) == ("da", "nb", "en", "en")


# ---- refresh at any time (R-V4) ------------------------------------------------------------------

def test_a_refresh_ends_the_old_code_at_the_partner_api_at_once(program: sqlite3.Connection) -> None:
    org_id = approved_org(program)
    code = new_code(program, org_id)
    partner = _partner(program)
    with transaction(program):
        assert verify_code(program, partner, code, now=T0 + DAY)["valid"] is True  # used with a partner
    assert ask(program, code, T0 + DAY, DON_OFFICE_PROPLUS=1).fulfilled  # and for a donation
    at = T0 + 2 * DAY
    code_id = program.execute("SELECT id FROM validation_codes WHERE code = ?", (code,)).fetchone()[0]
    with transaction(program):
        fresh = refresh_code(program, code_id, holder_email=HOLDER, now=at, ip=None)
        old, new = verify_code(program, partner, code, now=at), verify_code(program, partner, fresh, now=at)
    assert (old["valid"], old["rule"], old["reason"]) == (False, "R-V4", "code_replaced")  # the same instant
    assert new["valid"] is True and new["expires_at"] == "2026-05-03T10:00:00.000000Z"  # 60 days from the refresh
    assert get_request(program, 1).status == "granted"  # what the old code obtained stays (R-V7)
    refreshed = events(program, "nonprofit:code:refreshed")[0][2]
    assert refreshed["replaces"] == code_id and code not in json.dumps(refreshed)  # masked in the audit log


# ---- terms of use (R-N10) ------------------------------------------------------------------------

def test_a_request_records_the_terms_it_accepted_and_needs_them(program: sqlite3.Connection) -> None:
    code = new_code(program, approved_org(program))
    before = program.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0]
    with pytest.raises(InputError) as refused, transaction(program):
        request_donation(program, account_email=REP, code=code, quantities={"DON-OFFICE-PROPLUS": 1}, now=T0,
                         terms_accepted=False)
    assert [(e.field, e.rule) for e in refused.value.errors] == [("accept_terms", "R-N10")]
    assert "terms of use must be accepted" in refused.value.errors[0].message
    assert program.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0] == before  # nothing written
    granted = get_request(program, ask(program, code, T0 + DAY, DON_OFFICE_PROPLUS=1).request_id)
    assert (granted.terms_version, granted.terms_accepted_at) == ("1", T0 + DAY)
    assert events(program, "nonprofit:donation:fulfilled")[0][2]["terms_version"] == "1"


# ---- dates in the organisation's zone ------------------------------------------------------------

@pytest.mark.parametrize(("country", "created", "local"), [
    ("DK", "2030-03-02T23:30:00+00:00", "2030-05-02 01:30"),  # the next day in Copenhagen (summer time by then)
    ("DK", "2030-03-02T21:30:00+00:00", "2030-05-01 23:30"),  # the same day
    ("NO", "2030-03-02T22:00:00+00:00", "2030-05-02 00:00"),
    ("US", "2030-03-03T02:00:00+00:00", "2030-05-01 22:00"),  # the day before in New York
    ("XK", "2030-03-02T23:30:00+00:00", "2030-05-02 01:30"),  # Kosovo: zone.tab has no line of its own
])
def test_valid_until_is_the_organisation_s_local_time(program: sqlite3.Connection, country: str, created: str,
                                                      local: str) -> None:
    org_id = approved_org(program, country=country)
    code = new_code(program, org_id, at=datetime.fromisoformat(created))
    found = [c for c in codes_of_organisation(program, org_id) if c.code == code][0]
    assert found.expires_local.strftime("%Y-%m-%d %H:%M") == local
    assert found.expires_local == found.expires_at  # the same instant, shown in the organisation's zone


# ---- the migration keeps requests made before it ---------------------------------------------------

def test_requests_granted_before_migration_0014_still_count_and_can_be_returned(tmp_path: Path) -> None:
    conn = connect(tmp_path / "old.sqlite3")
    conn.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)")
    for version, name, sql in available_migrations():
        if version != 14:  # the schema without this change (later migrations are independent of it)
            with transaction(conn):
                for statement in _statements(sql):
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_migrations VALUES (?, ?, '2026-01-01T00:00:00.000000Z')", (version, name))
    with transaction(conn):
        upsert_skus(conn, shipped_catalog())
    install_program(conn, keys_per_product=30, now=T0)
    org_id = int(conn.execute(  # an approved organisation, as the code before 0014 wrote it
        "INSERT INTO organisations (campaign_id, holder_email, name, short_name, country, registration_number, mission,"
        " org_type, non_discrimination, status, failed_rules, created_at) SELECT id, ?, 'Harbour Food Bank', 'HarbourFood',"
        " 'DK', 'DK-1', 'relieving_poverty', 'charity', 1, 'approved', '', '2026-03-01T00:00:00.000000Z' FROM campaigns"
        " WHERE slug = 'nonprofit-donations'", (HOLDER,)).lastrowid or 0)
    code_id = int(conn.execute("INSERT INTO validation_codes (organisation_id, code, first_name, last_name, email, created_at,"
                               " expires_at) VALUES (?, 'abc@HarbourFood', 'R', 'R', ?, ?, ?)",
                               (org_id, REP, "2026-03-02T10:00:00.000000Z", "2026-05-01T10:00:00.000000Z")).lastrowid or 0)
    with transaction(conn):  # a request as the code before 0014 wrote it: granted at once, lines only
        conn.execute("INSERT INTO donation_cycles (organisation_id, starts_at, ends_at) VALUES (?, ?, ?)",
                     (org_id, "2026-03-02T10:00:00.000000Z", "2028-03-02T10:00:00.000000Z"))
        conn.execute("INSERT INTO donation_requests (organisation_id, cycle_id, code_id, account_email, locale, requested_at)"
                     " VALUES (?, 1, ?, ?, 'da', '2026-03-02T10:00:00.000000Z')", (org_id, code_id, REP))
        key = conn.execute("SELECT id FROM reward_codes WHERE sku = 'DON-WINSRV-STD' ORDER BY id LIMIT 1").fetchone()[0]
        conn.execute("UPDATE reward_codes SET issued_at = '2026-03-02T10:00:00.000000Z' WHERE id = ?", (key,))
        conn.execute("INSERT INTO donation_lines (request_id, sku, quantity, code_id) VALUES (1, 'DON-WINSRV-STD', 20, ?)", (key,))
    assert "0014_donation_decisions.sql" in migrate(conn)
    old = get_request(conn, 1)
    assert (old.status, old.granted_at, [(i.sku, i.quantity) for i in old.items]) == (
        "granted", T0, [("DON-WINSRV-STD", 20)])
    assert used_in_cycle(conn, 1) == {"DON-WINSRV-STD": 20}  # still counts against the limit
    code = new_code(conn, org_id)
    assert ask(conn, code, T0 + DAY, DON_WINSRV_STD=6).decision.rules == ["R-N2"]
    with transaction(conn):
        assert ask_return(conn, 1, account_email=REP, not_installed=True, now=T0 + DAY, ip=None)
    conn.close()


def test_the_books_balance_with_waiting_and_refused_requests(program: sqlite3.Connection) -> None:
    """Reconciliation counts one keys email per granted request: held and refused ones have none."""
    grant_by_staff(program)
    code = new_code(program, approved_org(program))
    granted, held, refused, waiting = (ask(program, code, T0, DON_OFFICE_PROPLUS=1).request_id for _ in range(4))
    decide(program, granted, "grant")
    decide(program, held, "hold", "a question")
    decide(program, refused, "refuse", "no")
    books = reconcile(program, "nonprofit-donations", T0)
    assert books.ok, books
    assert [c.left for c in books.checks][1:] == [("donation request lines", 1), ("granted donation requests", 1)]
    assert get_request(program, waiting).status == "requested"
