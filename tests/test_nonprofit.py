"""The nonprofit program's rules at their edges, through the real transactions on a real
SQLite file: registration (R-N5, R-N6, R-N7), validation codes (R-V1 … R-V8, day 59/60/61),
allocation limits per two-year cycle (R-N1, R-N2, at the limit and one over, the cycle
boundary to the second, racing requests), and returns (R-N9, day 59/60/61)."""

from __future__ import annotations

import re
import sqlite3
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from promo.campaigns.donation_program import HEALTH_EXCEPTIONS, INELIGIBLE_TYPES, registration_failures
from promo.db import transaction
from promo.errors import InputError
from promo.nonprofit.donations import get_request
from promo.nonprofit.organisations import register_organisation, review_organisation
from promo.nonprofit.program import NotAllowed
from promo.nonprofit.returns import ask_return, decide_return
from promo.nonprofit.validation_codes import add_partner, issue_code, refresh_code, verify_code
from tests.support.nonprofit import HOLDER, REP, T0, approved_org, ask, install_program, new_code, registration
from tests.support.prepared import connect_to

SECOND = timedelta(seconds=1)
DAY = timedelta(days=1)


@pytest.fixture
def program(conn: sqlite3.Connection) -> sqlite3.Connection:
    return install_program(conn, keys_per_product=200, now=T0)


# ---- organisations: R-N5, R-N6, R-N7 ---------------------------------------------------------

@pytest.mark.parametrize("org_type", sorted(INELIGIBLE_TYPES))
def test_each_ineligible_organisation_type_is_refused_with_r_n6(program: sqlite3.Connection, org_type: str) -> None:
    assert [f.rule for f in registration_failures(registration(org_type=org_type))] == ["R-N6"]
    with transaction(program):
        org_id = register_organisation(program, holder_email=HOLDER, registration=registration(org_type=org_type), now=T0, ip=None)
    with pytest.raises(NotAllowed) as refused, transaction(program):
        review_organisation(program, org_id, decision="approve", reviewer="staff@example.com", reason="", now=T0, ip=None)
    assert refused.value.errors[0].rule == "R-N6"
    assert program.execute("SELECT status FROM organisations WHERE id = ?", (org_id,)).fetchone()[0] == "pending"


@pytest.mark.parametrize("kind", HEALTH_EXCEPTIONS)
def test_the_health_care_exceptions_are_eligible(kind: str) -> None:
    assert registration_failures(registration(org_type="healthcare", health_kind=kind)) == []


def test_other_health_care_missions_and_declarations() -> None:
    assert [f.rule for f in registration_failures(registration(org_type="healthcare", health_kind="other"))] == ["R-N6"]
    assert [f.rule for f in registration_failures(registration(org_type="healthcare", health_kind=None))] == ["R-N6"]
    assert [f.rule for f in registration_failures(registration(mission="other_mission"))] == ["R-N5"]
    assert [f.rule for f in registration_failures(registration(non_discrimination=False))] == ["R-N7"]
    several = registration_failures(registration(org_type="library", mission="other_mission", non_discrimination=False))
    assert [f.rule for f in several] == ["R-N5", "R-N6", "R-N7"]


def test_review_decisions_are_audited_and_final(program: sqlite3.Connection) -> None:
    with transaction(program):
        org_id = register_organisation(program, holder_email=HOLDER, registration=registration(), now=T0, ip="10.0.0.1")
    with pytest.raises(InputError, match="say why"), transaction(program):
        review_organisation(program, org_id, decision="reject", reviewer="s@example.com", reason=" ", now=T0, ip=None)
    with transaction(program):
        review_organisation(program, org_id, decision="approve", reviewer="s@example.com", reason="", now=T0, ip=None)
    with pytest.raises(InputError, match="already approved"), transaction(program):
        review_organisation(program, org_id, decision="reject", reviewer="s@example.com", reason="late", now=T0, ip=None)
    tags = [r[0] for r in program.execute("SELECT tag FROM audit_events WHERE tag LIKE 'nonprofit:organisation:%' ORDER BY seq")]
    assert tags == ["nonprofit:organisation:registered", "nonprofit:organisation:approved"]
    with pytest.raises(InputError, match="already used by another organisation"), transaction(program):
        register_organisation(program, holder_email="x@example.com", registration=registration(registration_number="2"),
                              now=T0, ip=None)


# ---- validation codes: R-V1 … R-V8 --------------------------------------------------------------

def test_unapproved_organisations_cannot_issue_codes(program: sqlite3.Connection) -> None:
    with transaction(program):
        org_id = register_organisation(program, holder_email=HOLDER, registration=registration(), now=T0, ip=None)
    with pytest.raises(NotAllowed) as refused, transaction(program):
        issue_code(program, org_id, holder_email=HOLDER, first_name="A", last_name="B", email=REP, now=T0, ip=None)
    assert refused.value.errors[0].rule == "R-V8"


def test_only_the_holder_issues_codes_in_the_documented_format(program: sqlite3.Connection) -> None:
    org_id = approved_org(program)
    with pytest.raises(NotAllowed) as refused, transaction(program):
        issue_code(program, org_id, holder_email="someone@else.example", first_name="A", last_name="B", email=REP, now=T0, ip=None)
    assert refused.value.errors[0].rule == "R-V2"
    codes = {new_code(program, org_id) for _ in range(20)}  # R-V5: unlimited codes, all different
    assert len(codes) == 20
    assert all(re.fullmatch(r"[a-z0-9]{12}@HarbourFood", c) for c in codes)  # R-V1
    with pytest.raises(InputError) as bad, transaction(program):
        issue_code(program, org_id, holder_email=HOLDER, first_name=" ", last_name="", email="nope", now=T0, ip=None)
    assert {e.field for e in bad.value.errors} == {"first_name", "last_name", "email"}


@pytest.mark.parametrize(("offset", "valid"), [(timedelta(days=59), True), (timedelta(days=60) - SECOND, True),
                                               (timedelta(days=60), False), (timedelta(days=61), False)])
def test_a_code_is_valid_for_60_days(program: sqlite3.Connection, offset: timedelta, valid: bool) -> None:
    org_id = approved_org(program)
    code = new_code(program, org_id)
    partner = _partner(program)
    with transaction(program):
        answer = verify_code(program, partner, code, now=T0 + offset)
    assert answer["valid"] is valid
    if not valid:
        assert answer["rule"] == "R-V3"
    result = ask(program, code, T0 + offset, DON_OFFICE_PROPLUS=1)
    assert result.fulfilled is valid
    if not valid:
        assert result.decision.rules == ["R-V3"]


def _partner(conn: sqlite3.Connection, name: str = "Partner") -> int:
    with transaction(conn):
        add_partner(conn, name, now=T0, actor="test")
    return int(conn.execute("SELECT id FROM partners WHERE name = ?", (name,)).fetchone()[0])


def test_refresh_replaces_a_code_with_a_new_one_valid_60_days(program: sqlite3.Connection) -> None:
    org_id = approved_org(program)
    old = new_code(program, org_id)
    old_id = program.execute("SELECT id FROM validation_codes WHERE code = ?", (old,)).fetchone()[0]
    later = T0 + timedelta(days=10)
    with transaction(program):
        fresh = refresh_code(program, old_id, holder_email=HOLDER, now=later, ip=None)  # unused: may be refreshed
    assert fresh != old and fresh.endswith("@HarbourFood")
    row = program.execute("SELECT first_name, last_name, email, expires_at FROM validation_codes WHERE code = ?", (fresh,)).fetchone()
    assert tuple(row[:3]) == ("Rita", "Rep", REP) and row[3].startswith((later + timedelta(days=60)).date().isoformat())
    assert ask(program, old, later, DON_OFFICE_PROPLUS=1).decision.rules == ["R-V4"]  # the old one is replaced
    assert ask(program, fresh, later, DON_OFFICE_PROPLUS=1).fulfilled
    fresh_id = program.execute("SELECT id FROM validation_codes WHERE code = ?", (fresh,)).fetchone()[0]
    with transaction(program):  # used and still valid: refreshed all the same ("etter behov", R-V4)
        newest = refresh_code(program, fresh_id, holder_email=HOLDER, now=later, ip=None)
    assert ask(program, fresh, later, DON_OFFICE_PROPLUS=1).decision.rules == ["R-V4"]
    with pytest.raises(NotAllowed) as replaced, transaction(program):  # a replaced code is not refreshed twice
        refresh_code(program, fresh_id, holder_email=HOLDER, now=later, ip=None)
    assert replaced.value.errors[0].rule == "R-V4" and "refresh its newest code" in replaced.value.errors[0].message
    newest_id = program.execute("SELECT id FROM validation_codes WHERE code = ?", (newest,)).fetchone()[0]
    with transaction(program):  # once expired, too
        refresh_code(program, newest_id, holder_email=HOLDER, now=later + timedelta(days=60), ip=None)


def test_expiry_does_not_undo_what_was_obtained(program: sqlite3.Connection) -> None:
    org_id = approved_org(program)
    code = new_code(program, org_id)
    result = ask(program, code, T0 + DAY, DON_WINSRV_STD=3)
    later = T0 + timedelta(days=90)  # the code has expired since (R-V7)
    assert ask(program, code, later, DON_WINSRV_STD=1).decision.rules == ["R-V3"]
    donation = get_request(program, result.request_id)
    assert donation.returned_at is None and [line.sku for line in donation.lines] == ["DON-WINSRV-STD"]
    assert program.execute("SELECT COUNT(*) FROM reward_codes WHERE issued_at IS NOT NULL AND voided_at IS NULL").fetchone()[0] == 1


def test_a_code_works_only_for_its_representative(program: sqlite3.Connection) -> None:
    code = new_code(program, approved_org(program), email="someone.else@ngo.example")
    assert ask(program, code, T0, DON_OFFICE_PROPLUS=1).decision.rules == ["R-V2"]
    assert ask(program, "nope@HarbourFood", T0, DON_OFFICE_PROPLUS=1).decision.rules == ["R-V1"]


# ---- allocations: R-N1, R-N2 --------------------------------------------------------------------

@pytest.mark.parametrize(("quantities", "fulfilled"), [
    ({"DON_OFFICE_PROPLUS": 50}, True), ({"DON_OFFICE_PROPLUS": 51}, False),
    ({"DON_WINSRV_CAL": 50, "DON_WINDOWS_PRO_UPG": 50, "DON_OFFICE_PROPLUS": 50}, True),  # 50 of *each*
    ({"DON_WINSRV_STD": 25}, True), ({"DON_WINSRV_STD": 26}, False),
    ({"DON_EXCHANGE_SRV": 3, "DON_SQL_SRV": 2}, True), ({"DON_EXCHANGE_SRV": 3, "DON_SQL_SRV": 3}, False),  # 5 in total
    ({"DON_WINSRV_STD": 25, "DON_SQL_SRV": 5}, True),  # Standard does not count as "other"
])
def test_each_limit_at_its_maximum_and_one_over(program: sqlite3.Connection, quantities: dict[str, int], fulfilled: bool) -> None:
    code = new_code(program, approved_org(program))
    result = ask(program, code, T0, **quantities)
    assert result.fulfilled is fulfilled
    if not fulfilled:
        assert result.decision.rules == ["R-N2"]
        assert program.execute("SELECT COUNT(*) FROM donation_requests").fetchone()[0] == 0  # refused whole
        assert program.execute("SELECT COUNT(*) FROM reward_codes WHERE issued_at IS NOT NULL").fetchone()[0] == 0


def test_limits_add_up_over_a_cycle_and_the_refusal_shows_what_is_left(program: sqlite3.Connection) -> None:
    code = new_code(program, approved_org(program))
    assert ask(program, code, T0, DON_OFFICE_PROPLUS=30, DON_SQL_SRV=4).fulfilled
    refused = ask(program, code, T0 + DAY, DON_OFFICE_PROPLUS=21, DON_EXCHANGE_SRV=1)
    assert not refused.fulfilled and [f.params["remaining"] for f in refused.decision.failures] == [20]
    left = {a.label: a.remaining for a in refused.allowances}
    assert left["Office Professional Plus (donation)"] == 20 and left["other server products"] == 1
    assert left["Windows Server Standard"] == 25
    assert ask(program, code, T0 + DAY, DON_OFFICE_PROPLUS=20, DON_EXCHANGE_SRV=1).fulfilled


def test_the_cycle_starts_at_the_first_request_and_ends_exactly_two_years_later(program: sqlite3.Connection) -> None:
    org_id = approved_org(program)
    first = datetime(2026, 3, 5, 9, 30, tzinfo=UTC)
    assert ask(program, new_code(program, org_id, first), first, DON_WINSRV_STD=25).fulfilled
    end = datetime(2028, 3, 5, 9, 30, tzinfo=UTC)  # same local time two years on (Copenhagen)
    assert ask(program, new_code(program, org_id, end - DAY), end - SECOND, DON_WINSRV_STD=1).decision.rules == ["R-N2"]
    at_end = ask(program, new_code(program, org_id, end - DAY), end, DON_WINSRV_STD=25)
    assert at_end.fulfilled  # a new cycle, a new allocation
    cycles = program.execute("SELECT starts_at, ends_at FROM donation_cycles ORDER BY id").fetchall()
    assert [tuple(c) for c in cycles] == [("2026-03-05T09:30:00.000000Z", "2028-03-05T09:30:00.000000Z"),
                                         ("2028-03-05T09:30:00.000000Z", "2030-03-05T09:30:00.000000Z")]


def test_no_requests_before_the_program_opens(program: sqlite3.Connection) -> None:
    code = new_code(program, approved_org(program), datetime(2011, 7, 1, tzinfo=UTC))
    start_of_28th = datetime(2011, 7, 27, 22, 0, tzinfo=UTC)  # 2011-07-28 00:00 in Copenhagen (summer time)
    assert ask(program, code, start_of_28th - SECOND, DON_OFFICE_PROPLUS=1).decision.rules == ["R-N1"]
    assert ask(program, code, start_of_28th, DON_OFFICE_PROPLUS=1).fulfilled


def test_concurrent_requests_never_exceed_a_limit_together(program: sqlite3.Connection, settings: Any) -> None:
    """Eight threads on their own connections race for the last 5 Windows Server Standard."""
    code = new_code(program, approved_org(program))
    assert ask(program, code, T0, DON_WINSRV_STD=20).fulfilled
    results: list[bool] = []
    barrier = threading.Barrier(8)

    def racer() -> None:
        conn = connect_to(settings)
        barrier.wait()
        results.append(ask(conn, code, T0 + SECOND, DON_WINSRV_STD=3).fulfilled)
        conn.close()

    threads = [threading.Thread(target=racer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results.count(True) == 1 and len(results) == 8
    total = program.execute("SELECT SUM(quantity) FROM donation_lines WHERE sku = 'DON-WINSRV-STD'").fetchone()[0]
    assert total == 23


def test_no_keys_left_refuses_the_whole_request(program: sqlite3.Connection) -> None:
    with program:
        program.execute("UPDATE reward_codes SET voided_at = '2026-01-01T00:00:00.000000Z' WHERE sku = 'DON-SQL-SRV'")
    code = new_code(program, approved_org(program))
    result = ask(program, code, T0, DON_OFFICE_PROPLUS=1, DON_SQL_SRV=1)
    assert result.decision.rules == ["STOCK"]
    assert program.execute("SELECT COUNT(*) FROM reward_codes WHERE issued_at IS NOT NULL").fetchone()[0] == 0


# ---- returns: R-N9 ------------------------------------------------------------------------------

@pytest.mark.parametrize(("offset", "allowed"), [(timedelta(days=59), True), (timedelta(days=60) - SECOND, True),
                                                 (timedelta(days=60), False), (timedelta(days=61), False)])
def test_a_return_within_60_days_restores_the_allocation(program: sqlite3.Connection, offset: timedelta, allowed: bool) -> None:
    code = new_code(program, approved_org(program))
    request_id = ask(program, code, T0, DON_WINSRV_STD=25, DON_OFFICE_PROPLUS=2).request_id
    if not allowed:
        with pytest.raises(NotAllowed) as late, transaction(program):
            ask_return(program, request_id, account_email=REP, not_installed=True, now=T0 + offset, ip=None)
        assert late.value.errors[0].rule == "R-N9"
        return
    with transaction(program):
        return_id = ask_return(program, request_id, account_email=REP, not_installed=True, now=T0 + offset, ip=None)
    assert ask(program, code, T0 + offset, DON_WINSRV_STD=1).decision.rules == ["R-N2"]  # not restored until completed
    with transaction(program):
        decide_return(program, return_id, decision="complete", reviewer="s@example.com", reason="", now=T0 + offset, ip=None)
    donation = get_request(program, request_id)
    assert donation.returned_at is not None
    keys = program.execute("SELECT COUNT(*) FROM reward_codes c JOIN donation_lines l ON l.code_id = c.id"
                           " WHERE l.request_id = ? AND c.voided_at IS NOT NULL", (request_id,)).fetchone()[0]
    assert keys == 2  # every product of the request is returned: its keys are void
    assert ask(program, new_code(program, 1), T0 + offset, DON_WINSRV_STD=25).fulfilled  # the allocation is back
    tags = [r[0] for r in program.execute("SELECT tag FROM audit_events WHERE tag LIKE 'nonprofit:return:%' ORDER BY seq")]
    assert tags == ["nonprofit:return:asked", "nonprofit:return:completed"]


def test_installed_products_cannot_be_returned_and_a_rejection_keeps_the_allocation(program: sqlite3.Connection) -> None:
    code = new_code(program, approved_org(program))
    request_id = ask(program, code, T0, DON_WINSRV_STD=25).request_id
    with pytest.raises(NotAllowed) as installed, transaction(program):
        ask_return(program, request_id, account_email=REP, not_installed=False, now=T0 + DAY, ip=None)
    assert installed.value.errors[0].rule == "R-N9"
    with transaction(program):
        return_id = ask_return(program, request_id, account_email=REP, not_installed=True, now=T0 + DAY, ip=None)
    with pytest.raises(InputError, match="already pending"), transaction(program):
        ask_return(program, request_id, account_email=REP, not_installed=True, now=T0 + DAY, ip=None)
    with transaction(program):
        decide_return(program, return_id, decision="reject", reviewer="s@example.com", reason="keys were activated",
                      now=T0 + DAY, ip=None)
    assert ask(program, code, T0 + DAY, DON_WINSRV_STD=1).decision.rules == ["R-N2"]
    email = program.execute("SELECT payload FROM outbox WHERE template = 'donation_return'").fetchone()[0]
    assert "keys were activated" in email
