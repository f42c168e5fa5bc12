"""A nonprofit's representative, in a real browser, signs in, is told to accept the terms of
use (R-N10, next to who may use the licences, R-N11), is refused a request over the
allocation (R-N2, with what is left), then requests within it and gets the licence keys on
the page and by email. Then staff revoke the organisation's approval (R-N7) in the console,
and the holder reads why while the donation stays (R-V7). Playwright on Debian's chromium,
against `promo serve` with its defaults and the demo's key pools; screenshots go to
test-artifacts/."""

from __future__ import annotations

import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import expect  # noqa: E402

from promo.campaigns.donation_program import Registration
from promo.db import connect, transaction
from promo.nonprofit.organisations import register_organisation, review_organisation
from promo.nonprofit.validation_codes import issue_code
from tests.support.served import PROMO, Served
from tests.system.e2e.chromium import open_newest_mail, shot  # importing it skips these tests without chromium
from tests.system.e2e.watch import WatchedBrowser

REP = "rita@harbourfood.example"


def approved_code(database: Path) -> str:
    """An approved organisation and a code for its representative, as the holder and staff would make them."""
    now = datetime.now(UTC)
    conn = connect(database)
    with transaction(conn):
        org_id = register_organisation(conn, holder_email="holder@harbourfood.example", now=now, ip=None, registration=Registration(
            "Harbour Food Bank", "HarbourFood", "DK", "DK-12345", "relieving_poverty", "charity", None, True))
        review_organisation(conn, org_id, decision="approve", reviewer="staff@example.com", reason="", now=now, ip=None)
        code = issue_code(conn, org_id, holder_email="holder@harbourfood.example", first_name="Rita", last_name="Rep",
                          email=REP, now=now, ip=None)
    conn.close()
    return code


def test_a_representative_requests_a_donation(browser: WatchedBrowser, default_server: Served, tmp_path: Path) -> None:
    code = approved_code(tmp_path / "promo.sqlite3")
    browser.allow_status("/nonprofit/request", 422)  # refused over the allocation (R-N2), on purpose
    context = browser.new_context(locale="en-GB", viewport={"width": 1000, "height": 900})
    page = context.new_page()
    page.goto(default_server.url + "/nonprofit/request")
    page.get_by_label("Email address").fill(REP)
    page.get_by_role("button", name="Send sign-in link").click()
    open_newest_mail(page, default_server, "Your sign-in link")
    page.locator("pre.mail a[href*='/signin/']").click()
    expect(page.get_by_role("heading", name="Request a donation")).to_be_visible()

    page.get_by_label("Validation code").fill(code)
    page.get_by_label("Windows Server Standard (donation)").fill("26")
    expect(page.get_by_role("heading", name="Who may use the licences")).to_be_visible()
    shot(page, "nonprofit-01-request")
    page.get_by_role("button", name="Send request").click()  # the terms are not ticked
    terms = page.get_by_label("We accept the program's terms of use (version 1)")
    expect(terms).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#accept_terms-error")).to_have_text("Accept the program's terms of use to send the request.")
    expect(page.get_by_label("Windows Server Standard (donation)")).to_have_value("26")  # nothing typed is lost
    shot(page, "nonprofit-01b-terms-needed")
    terms.check()
    page.get_by_role("button", name="Send request").click()
    expect(page.get_by_role("heading", name="The request was not granted")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("R-N2")
    expect(page.locator("#allowances")).to_contain_text("25 of 25")
    shot(page, "nonprofit-02-refused-over-allocation")

    page.get_by_label("Windows Server Standard (donation)").fill("2")
    page.get_by_label("Office Professional Plus (donation)").fill("10")
    page.get_by_label("We accept the program's terms of use (version 1)").check()
    page.get_by_role("button", name="Send request").click()
    expect(page.get_by_role("heading", name=re.compile(r"Request \d+"))).to_be_visible()
    keys = page.locator("#keys td.code")
    expect(keys).to_have_count(2)
    first_key = keys.first.inner_text()
    expect(page.locator("#terms-accepted")).to_contain_text("Terms of use version 1 accepted on")
    shot(page, "nonprofit-03-keys")
    open_newest_mail(page, default_server, re.compile(r"Your donated software: request \d+"))  # type: ignore[arg-type]
    expect(page.locator("pre.mail")).to_contain_text(first_key)
    shot(page, "nonprofit-04-keys-email")
    context.close()

    env = {**default_server.env, "PROMO_STAFF_PASSWORD": "admin passphrase 1"}
    added = subprocess.run([PROMO, "staff", "add", "admin@example.com", "--role", "admin"], env=env, capture_output=True,
                           text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    staff = browser.new_context(viewport={"width": 1280, "height": 1000})
    console = staff.new_page()
    console.goto(default_server.url + "/console/nonprofit/")
    console.get_by_label("Email address").fill("admin@example.com")
    console.get_by_label("Password").fill("admin passphrase 1")
    console.get_by_role("button", name="Sign in").click()
    console.get_by_label("Reason for revoking HarbourFood (its representatives are told)").fill(
        "Its bylaws exclude members by religion.")
    console.get_by_role("button", name="Revoke HarbourFood").click()
    expect(console.locator("#revoked")).to_contain_text("Its bylaws exclude members by religion.")
    shot(console, "nonprofit-05-console-revoked")
    staff.close()

    holder = browser.new_context(locale="en-GB", viewport={"width": 360, "height": 900})
    page = holder.new_page()
    page.goto(default_server.url + "/signin?next=/nonprofit/")
    page.get_by_label("Email address").fill("holder@harbourfood.example")
    page.get_by_role("button", name="Send sign-in link").click()
    # a Danish organisation is told in Danish
    open_newest_mail(page, default_server, "Godkendelsen af Harbour Food Bank i softwaredonationsprogrammet er tilbagekaldt")
    expect(page.locator("pre.mail")).to_contain_text("Its bylaws exclude members by religion.")
    open_newest_mail(page, default_server, "Your sign-in link")
    page.locator("pre.mail a[href*='/signin/']").click()
    page.get_by_role("link", name="Harbour Food Bank").click()
    expect(page.locator("#standing")).to_contain_text("Its bylaws exclude members by religion.")
    expect(page.get_by_role("heading", name="Create a validation code")).to_have_count(0)
    expect(page.locator("#codes")).to_contain_text("no longer valid: the approval was revoked")
    expect(page.locator("#requests")).to_contain_text("Granted")  # what it received stays (R-V7)
    shot(page, "nonprofit-06-holder-revoked-320")
    holder.close()
