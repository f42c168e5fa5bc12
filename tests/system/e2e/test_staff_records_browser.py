"""An admin, in a real browser with JavaScript off, finds a campaign, voids a batch through
its confirmation page, reads the action on the staff actions page as field, before, after,
and finds a redemption by account (issue 19, items 2, 3 and 8). At 1280 and 360 px the
staff actions page never scrolls sideways as a whole: wide tables scroll inside themselves."""

from __future__ import annotations

import subprocess

from playwright.sync_api import Browser, Page, expect

from tests.support.served import PROMO, Served
from tests.system.e2e.chromium import shot  # importing it skips these tests without chromium

PASSWORD = "admin passphrase 19"


def page_overflows(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth > document.documentElement.clientWidth"))


def test_an_admin_finds_confirms_and_reads_back(browser: Browser, default_server: Served) -> None:
    env = {**default_server.env, "PROMO_STAFF_PASSWORD": PASSWORD}
    run = lambda *args: subprocess.run([PROMO, *args], env=env, capture_output=True, text=True, timeout=60)  # noqa: E731
    assert run("staff", "add", "admin@example.com", "--role", "admin").returncode == 0
    assert run("redeem", "--campaign", "demo-xbox-gold", "--account", "c@example.com", "--product-key",
               "DEMO1-AAAAA-BBBBB-CCCCC-00001", "--accept-terms").returncode == 0
    context = browser.new_context(java_script_enabled=False, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(default_server.url + "/console/")
    page.get_by_label("Email address").fill("admin@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()

    page.get_by_label("Name or slug contains").fill("demo")
    page.get_by_role("button", name="Find").click()
    expect(page.locator("#found")).to_contain_text("1 campaign found")
    page.locator("tbody a").first.click()
    void = page.locator("button.danger", has_text="unissued codes of batch")
    expect(void).to_have_count(1)
    void.click()
    expect(page.locator("#consequence")).to_contain_text("unissued codes of batch")
    expect(page.locator("#consequence")).to_contain_text("This cannot be undone.")
    shot(page, "records-01-confirm-void")
    page.locator("button.danger.confirm").click()
    expect(page.locator("button.danger", has_text="unissued codes of batch")).to_have_count(0)  # nothing left to void

    page.get_by_role("link", name="Staff actions").click()
    page.get_by_label("Tag starts with").fill("codes:batch:voided")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#actions tbody.action")).to_have_count(1)
    expect(page.locator("#actions")).to_contain_text("voided:")
    page.get_by_label("Tag starts with").fill("campaign:")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.changes").first).to_be_visible()
    for width in (1280, 360):
        page.set_viewport_size({"width": width, "height": 900})
        assert not page_overflows(page), width
        shot(page, f"records-02-staff-actions-{width}")

    page.get_by_role("link", name="Find a redemption").click()
    page.get_by_label("Search for").fill("c@example.com")
    page.get_by_role("button", name="Find").click()
    expect(page.locator("#found tbody tr")).to_have_count(1)
    expect(page.locator("#found")).to_contain_text("*****-*****-*****-*****-00001")
    assert not page_overflows(page)
    shot(page, "records-03-find-a-redemption-360")
    context.close()
