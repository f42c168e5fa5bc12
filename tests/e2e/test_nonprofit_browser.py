"""A nonprofit's representative, in a real browser, signs in, is refused a request over
the allocation (R-N2, with what is left), then requests within it and gets the licence
keys on the page and by email (Playwright on Debian's chromium, against `promo serve` with
its defaults and the demo's key pools). Screenshots go to test-artifacts/."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from playwright.sync_api import expect  # noqa: E402

from promo.campaigns.donation_program import Registration
from promo.db import connect, transaction
from promo.nonprofit import issue_code, register_organisation, review_organisation
from tests.e2e.test_browser import open_newest_mail, shot  # importing it skips these tests without chromium
from tests.e2e.watch import WatchedBrowser
from tests.served import Served

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
    shot(page, "nonprofit-01-request")
    page.get_by_role("button", name="Send request").click()
    expect(page.get_by_role("heading", name="The request was not granted")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("R-N2")
    expect(page.locator("#allowances")).to_contain_text("25 of 25")
    shot(page, "nonprofit-02-refused-over-allocation")

    page.get_by_label("Windows Server Standard (donation)").fill("2")
    page.get_by_label("Office Professional Plus (donation)").fill("10")
    page.get_by_role("button", name="Send request").click()
    expect(page.get_by_role("heading", name=re.compile(r"Request \d+"))).to_be_visible()
    keys = page.locator("#keys td.code")
    expect(keys).to_have_count(2)
    first_key = keys.first.inner_text()
    shot(page, "nonprofit-03-keys")
    open_newest_mail(page, default_server, re.compile(r"Your donated software: request \d+"))  # type: ignore[arg-type]
    expect(page.locator("pre.mail")).to_contain_text(first_key)
    shot(page, "nonprofit-04-keys-email")
    context.close()
