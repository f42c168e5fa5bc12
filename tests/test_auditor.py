"""Staff sign-in, roles, and the auditor's read-only decision log with its exports."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from promo.db import transaction
from promo.staff import LOCK_AFTER
from tests.support.cli import Cli
from tests.support.database import product_key, reward_code
from tests.support.mailserver import MailServer
from tests.support.staff import PASSWORD, staff, staff_sign_in
from tests.support.web import follow_link, redeem_form, sign_in, submit


@pytest.fixture
def activity(client: TestClient, smtp: MailServer, shop: sqlite3.Connection) -> sqlite3.Connection:
    """One redemption and two refusals (R-X4; R-X11) by consumers, then a clean cookie jar."""
    follow_link(client, sign_in(client, smtp))
    assert submit(client, redeem_form(client), product_key(1)).status_code == 303
    client.cookies.clear()
    follow_link(client, sign_in(client, smtp, "=cmd@example.com"))  # a formula-looking address
    assert "R-X4" in submit(client, redeem_form(client), product_key(2)).text
    assert "R-X11" in submit(client, redeem_form(client), "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ").text
    client.cookies.clear()
    return shop


def test_staff_add_from_the_cli(bare_cli: Cli) -> None:
    cli = bare_cli
    cli("migrate")
    cli.env["PROMO_STAFF_PASSWORD"] = PASSWORD
    assert cli("staff", "add", "Boss@Example.com", "--role", "admin").stdout.strip() == "staff account boss@example.com (admin) created"
    again = cli("staff", "add", "boss@example.com", "--role", "auditor")
    assert again.returncode == 2 and "already has a staff account" in again.stderr
    cli.env["PROMO_STAFF_PASSWORD"] = "short"
    weak = cli("staff", "add", "x@example.com", "--role", "auditor")
    assert weak.returncode == 2 and "password: must have at least 12 characters" in weak.stderr


def test_failed_sign_ins_are_audited_and_lock_the_account(client: TestClient, shop: sqlite3.Connection) -> None:
    staff(shop, "auditor@example.com", "auditor")
    for _ in range(LOCK_AFTER):
        response = staff_sign_in(client, "auditor@example.com", "wrong password!")
        assert response.status_code in (401, 429)
    assert staff_sign_in(client, "auditor@example.com").status_code == 429  # locked, even with the right password
    tags = [r[0] for r in shop.execute("SELECT tag FROM audit_events WHERE tag LIKE 'staff:%' ORDER BY seq")]
    assert tags.count("staff:signin:failed") == LOCK_AFTER + 1 and "staff:account:locked" in tags
    unknown = staff_sign_in(client, "nobody@example.com", "whatever password")
    assert unknown.status_code == 401 and "email address or password is not right" in unknown.text  # same words


def test_roles_are_enforced_on_every_audit_route(client: TestClient, shop: sqlite3.Connection) -> None:
    audit_routes = [re.sub(r":\w+}", "}", r.path)  # {attempt_id:int64} -> {attempt_id}
                    for r in client.app.routes if isinstance(r, Route) and r.path.startswith("/audit/")]  # type: ignore[attr-defined]
    assert len(audit_routes) == 9
    for path in audit_routes:  # not signed in
        assert client.get(path.replace("{attempt_id}", "1")).headers["location"].startswith("/staff/signin")
    for role in ("marketer", "support"):
        client.cookies.clear()
        staff(shop, f"{role}@example.com", role)
        assert staff_sign_in(client, f"{role}@example.com").status_code == 303
        for path in audit_routes:
            expected = 200 if (role, path) == ("support", "/audit/redemptions") else 403  # support finds redemptions
            assert client.get(path.replace("{attempt_id}", "1")).status_code == expected, (role, path)


def test_an_auditor_cannot_change_anything(client: TestClient, activity: sqlite3.Connection) -> None:
    staff(activity, "auditor@example.com", "auditor")
    assert staff_sign_in(client, "auditor@example.com").status_code == 303
    tables = ("redemptions", "reward_codes WHERE issued_at IS NOT NULL", "outbox", "campaigns", "activations", "sessions")
    before = [activity.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables]
    posts = sorted({r.path for r in client.app.routes if isinstance(r, Route) and "POST" in (r.methods or set())})  # type: ignore[attr-defined]
    for path in posts:
        if path == "/staff/signout" or path == "/staff/signin":
            continue  # the auditor's own session
        url = re.sub(r":\w+}", "}", path).format(slug="open-today", redemption_id=1, claim_id=1, decision="approve",
                                                   batch_id=1, staff_id=1, token_id=1, org_id=1, return_id=1,
                                                   code_id=1, request_id=1)
        response = client.post(url, data={"product_key": product_key(3), "country": "NO", "accept_terms": "yes", "email": "x@example.com"})
        # The API ignores the staff cookie: without a token it is 401 (tests/test_api.py covers tokens).
        allowed = (401,) if path.startswith("/api/") else (303, 403)
        assert response.status_code in allowed and not response.headers.get("location", "").startswith("/rewards/"), path
    assert [activity.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables] == before


def test_refusals_are_in_the_log_with_their_rules_and_codes_stay_masked(client: TestClient, activity: sqlite3.Connection) -> None:
    staff(activity, "auditor@example.com", "auditor")
    staff_sign_in(client, "auditor@example.com")
    page = client.get("/audit/?rule=R-X4")
    assert page.status_code == 200 and "1 attempt(s)" in page.text and "O365-HOME-TRIAL" not in page.text
    assert "=cmd@example.com" in page.text and "R-X4" in page.text
    assert "Audit chain: intact" in page.text
    everything = client.get("/audit/").text
    assert "3 attempt(s)" in everything and "*****-*****-*****-*****-*0000" in everything
    attempt_ids = re.findall(r'href="/audit/attempts/(\d+)"', everything)
    pages = [everything] + [client.get(f"/audit/attempts/{i}").text for i in attempt_ids]
    exports = [client.get("/audit/export.csv").text, client.get("/audit/export.json").text]
    for text in pages + exports:
        assert reward_code(0) not in text  # the whole code is nowhere an auditor looks
    detail = client.get(f"/audit/attempts/{attempt_ids[-1]}").text
    assert "Activation record" in detail and "O365-HOME-ESD" in detail and "redemption:code:issued" in detail
    bad = client.get("/audit/?rule=drop table&since=yesterday")
    assert bad.status_code == 400 and "must be a rule id" in bad.text and "must be a date" in bad.text


def test_exports_are_formula_safe_and_filtered(client: TestClient, activity: sqlite3.Connection) -> None:
    staff(activity, "auditor@example.com", "auditor")
    staff_sign_in(client, "auditor@example.com")
    rows = list(csv.DictReader(io.StringIO(client.get("/audit/export.csv?outcome=refused").text)))
    assert len(rows) == 2 and {r["rules"] for r in rows} == {"R-X4", "R-X11"}
    assert all(r["account"] == "'=cmd@example.com" for r in rows)  # never a live formula
    data = json.loads(client.get("/audit/export.json?outcome=redeemed").text)
    assert len(data) == 1 and data[0]["code"] == "*****-*****-*****-*****-*0000" and data[0]["email_status"]


@pytest.mark.slow
def test_an_export_of_100000_rows_streams(client: TestClient, shop: sqlite3.Connection) -> None:
    campaign_id = shop.execute("SELECT id FROM campaigns WHERE slug = 'open-today'").fetchone()[0]
    with transaction(shop):
        shop.executemany(
            "INSERT INTO redemption_attempts (campaign_id, account_email, product_key, outcome, failed_rules, result, attempted_at)"
            " VALUES (:c, :a, 'PK', 'refused', ' R-X2 ', '{}', '2026-01-01T00:00:00.000000Z')",
            ({"c": campaign_id, "a": f"u{n}@example.com"} for n in range(100_000)))
    staff(shop, "auditor@example.com", "auditor")
    staff_sign_in(client, "auditor@example.com")
    with client.stream("GET", "/audit/export.csv?rule=R-X2") as response:
        assert "content-length" not in response.headers  # streamed, not built in memory
        lines = sum(chunk.count("\n") for chunk in response.iter_text())
    assert lines == 100_001


def test_reconciliation_balances_and_shows_what_does_not(client: TestClient, activity: sqlite3.Connection) -> None:
    staff(activity, "auditor@example.com", "auditor")
    staff_sign_in(client, "auditor@example.com")
    page = client.get("/audit/reconciliation?campaign=open-today")
    assert page.status_code == 200 and "Everything balances." in page.text and "MISMATCH" not in page.text
    assert "imported 5" in page.text and "available 4 + issued 1" in page.text
    # A code marked issued behind the system's back: the books no longer balance, and the row shows.
    with transaction(activity):
        activity.execute("UPDATE reward_codes SET issued_at = '2026-01-01T00:00:00.000000Z' WHERE id = "
                         "(SELECT MAX(id) FROM reward_codes WHERE issued_at IS NULL)")
    broken = client.get("/audit/reconciliation?campaign=open-today").text
    assert "MISMATCH" in broken and "without a redemption" in broken and reward_code(4) not in broken
    assert "*****-*****-*****-*****-*0004" in broken
    assert client.get("/audit/reconciliation?campaign=nope").status_code == 404


def test_staff_actions_are_listed_for_auditors(client: TestClient, activity: sqlite3.Connection) -> None:
    staff(activity, "auditor@example.com", "auditor")
    staff_sign_in(client, "auditor@example.com", "wrong password!")
    staff_sign_in(client, "auditor@example.com")
    page = client.get("/audit/actions").text
    for tag in ("campaign:definition:created", "codes:batch:imported", "activations:batch:imported",
                "staff:account:created", "staff:signin:failed", "staff:signin:succeeded"):
        assert tag in page, tag
    assert "redemption:code:issued" not in page  # consumer decisions live in the decision log
    assert "staff:signin:failed" not in client.get("/audit/actions?tag=codes:").text
