"""The nonprofit package's page services (promo/nonprofit/pages.py) and request lists, on a
real SQLite file: every list of donation requests is read in a fixed number of statements
however many requests it holds, and each page's one call returns what the page shows to
its owner only."""

from __future__ import annotations

import ast
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from promo.db import transaction
from promo.errors import InputError, NotFound
from promo.nonprofit.donations import requests_of, requests_of_organisation, waiting_requests
from promo.nonprofit.pages import (
    account_home,
    account_request,
    ask_from_form,
    holder_organisation,
    holder_organisation_of_code,
    program_overview,
)
from tests.support.nonprofit import HOLDER, REP, T0, approved_org, ask, grant_by_staff, install_program, new_code

PROMO = Path(__file__).resolve().parent.parent / "promo"


@pytest.fixture
def program(conn: sqlite3.Connection) -> sqlite3.Connection:
    return install_program(conn, keys_per_product=5, now=T0)


def statements(conn: sqlite3.Connection, read: Callable[[], Any]) -> tuple[Any, int]:
    """What `read` returns, and how many SQL statements it ran."""
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    try:
        return read(), len(seen)
    finally:
        conn.set_trace_callback(None)


def test_request_lists_take_the_same_statements_for_2_or_12_requests(program: sqlite3.Connection) -> None:
    grant_by_staff(program)  # every request waits for staff
    org_id = approved_org(program)
    code = new_code(program, org_id)
    counts = []
    for total in (2, 12):
        while len(requests_of(program, REP)) < total:
            assert ask(program, code, T0, DON_OFFICE_PROPLUS=1, DON_WINSRV_CAL=1).status == "requested"
        for read in (lambda: requests_of(program, REP), lambda: requests_of_organisation(program, org_id),
                     lambda: waiting_requests(program)):
            found, count = statements(program, read)
            assert len(found) == total and all(len(r.items) == 2 for r in found)
            counts.append(count)
    assert counts[:3] == counts[3:], "a list of requests reads each request on its own again"
    newest_first = requests_of(program, REP)
    assert [r.id for r in newest_first] == sorted((r.id for r in newest_first), reverse=True)
    assert [r.id for r in waiting_requests(program)] == sorted(r.id for r in newest_first)
    assert [i.sku for i in newest_first[0].items] == ["DON-OFFICE-PROPLUS", "DON-WINSRV-CAL"]  # in the order asked


def test_each_page_is_its_owner_s_only(program: sqlite3.Connection) -> None:
    org_id = approved_org(program)
    code = new_code(program, org_id)
    granted = ask(program, code, T0, DON_OFFICE_PROPLUS=1)
    code_id = program.execute("SELECT id FROM validation_codes").fetchone()[0]
    page = holder_organisation(program, org_id, HOLDER)
    assert page.org.id == org_id and [c.code for c in page.codes] == [code] and [r.id for r in page.requests] == [granted.request_id]
    assert holder_organisation_of_code(program, code_id, HOLDER) == page
    for other in (lambda: holder_organisation(program, org_id, REP), lambda: holder_organisation_of_code(program, code_id, REP),
                  lambda: account_request(program, granted.request_id, HOLDER)):
        with pytest.raises(NotFound):  # not yours: as if it did not exist
            other()
    assert account_request(program, granted.request_id, REP).lines[0].sku == "DON-OFFICE-PROPLUS"
    home = account_home(program, REP)
    assert [c.code for c in home.codes] == [code] and len(home.requests) == 1 and home.organisations == []
    nobody = account_home(program, None)
    assert (nobody.organisations, nobody.codes, nobody.requests) == ([], [], []) and nobody.program.products


def test_the_request_form_names_every_wrong_field_at_once_and_writes_nothing(program: sqlite3.Connection) -> None:
    before = program.execute("SELECT COUNT(*) FROM donation_requests").fetchone()[0]
    with pytest.raises(InputError) as wrong, transaction(program):
        ask_from_form(program, {"code": "x@y", "qty.DON-SQL-SRV": "²"}, account_email=REP, now=T0, locale="en", ip=None)
    assert {(e.field, e.rule) for e in wrong.value.errors} == {("accept_terms", "R-N10"), ("qty.DON-SQL-SRV", None)}
    assert program.execute("SELECT COUNT(*) FROM donation_requests").fetchone()[0] == before


def test_the_console_overview_reads_the_program_in_one_call(program: sqlite3.Connection) -> None:
    grant_by_staff(program)
    org_id = approved_org(program)
    ask(program, new_code(program, org_id), T0, DON_WINSRV_STD=2)
    overview = program_overview(program)
    assert [o.id for o in overview.approved] == [org_id] and overview.pending == overview.revoked == []
    assert [r.status for r in overview.waiting] == ["requested"]
    assert {k["sku"]: k["available"] for k in overview.keys}["DON-WINSRV-STD"] == 5


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    return found | {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}


@pytest.mark.parametrize("view", ["nonprofit.py", "console_nonprofit.py", "console_records.py"])
def test_nonprofit_views_hold_no_connection_and_no_sql(view: str) -> None:
    path = PROMO / "views" / view
    tree = ast.parse(path.read_text(encoding="utf-8"))
    closures = [f.name for f in ast.walk(tree) if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef)
                and any(a.arg == "conn" for a in f.args.args)]
    assert closures == []
    assert not {"promo.db", "sqlite3"} & _imports(path)
    sql = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
           and any(word in n.value for word in ("SELECT ", "INSERT ", "UPDATE ", "DELETE "))]
    assert sql == []


def test_the_relay_imports_no_domain_to_build_an_email() -> None:
    domains = {"promo.nonprofit", "promo.redemption", "promo.reviews", "promo.rewards", "promo.campaign_store",
               "promo.terms_store"}
    imported = _imports(PROMO / "mail.py")
    assert not {name for name in imported if any(name == d or name.startswith(d + ".") for d in domains)}
