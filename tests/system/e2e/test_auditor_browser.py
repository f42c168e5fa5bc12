"""An auditor, in a real browser, filters refusals by rule and exports them (Playwright on
Debian's chromium, against `promo serve` with its defaults). Screenshots and the exported
file go to test-artifacts/."""

from __future__ import annotations

import csv
import subprocess

from playwright.sync_api import Browser, expect  # noqa: E402

from tests.support.served import PROMO, Served
from tests.system.e2e.chromium import ARTIFACTS, shot  # importing it skips these tests without chromium

PASSWORD = "auditor passphrase 1"


def test_an_auditor_filters_refusals_by_rule_and_exports_them(browser: Browser, default_server: Served) -> None:
    env = {**default_server.env, "PROMO_STAFF_PASSWORD": PASSWORD}
    run = lambda *args: subprocess.run([PROMO, *args], env=env, capture_output=True, text=True, timeout=60)  # noqa: E731
    assert run("staff", "add", "auditor@example.com", "--role", "auditor").returncode == 0
    for account, key in (("a@example.com", "DEMO4-AAAAA-BBBBB-CCCCC-00004"), ("b@example.com", "DEMO5-AAAAA-BBBBB-CCCCC-00005"),
                         ("c@example.com", "DEMO1-AAAAA-BBBBB-CCCCC-00001")):
        run("redeem", "--campaign", "demo-xbox-gold", "--account", account, "--product-key", key, "--accept-terms")
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(default_server.url + "/audit/")
    page.get_by_label("Email address").fill("auditor@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    shot(page, "audit-01-signin")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Decision log")).to_be_visible()
    expect(page.get_by_text("3 attempt(s).")).to_be_visible()
    shot(page, "audit-02-log")
    page.get_by_label("Outcome").select_option("refused")
    page.get_by_label("Rule id").fill("R-X4")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_text("1 attempt(s).")).to_be_visible()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody tr")).to_contain_text("a@example.com")
    shot(page, "audit-03-filtered-R-X4")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    target = ARTIFACTS.parent / "audit-R-X4.csv"
    download.value.save_as(target)
    with target.open(encoding="utf-8") as exported:
        rows = list(csv.DictReader(exported))
    assert [(r["account"], r["rules"], r["outcome"]) for r in rows] == [("a@example.com", "R-X4", "refused")]
    page.get_by_role("link", name="Reconciliation").click()
    expect(page.get_by_text("Everything balances.")).to_be_visible()
    shot(page, "audit-04-reconciliation")
    context.close()
