"""A marketer, in a real browser, creates a campaign (fixing a validation error on the way),
uploads codes, watches the upload finish and sees the stock (Playwright on Debian's
chromium, against `promo serve` with its defaults). Screenshots go to test-artifacts/."""

from __future__ import annotations

import subprocess
from pathlib import Path

from playwright.sync_api import expect  # noqa: E402

from tests.support.database import reward_code
from tests.support.served import PROMO, Served
from tests.system.e2e.chromium import shot  # importing it skips these tests without chromium
from tests.system.e2e.watch import WatchedBrowser

PASSWORD = "marketer passphrase 1"
CODES = 5000


def test_a_marketer_creates_a_campaign_uploads_codes_and_sees_the_stock(browser: WatchedBrowser, default_server: Served,
                                                                        tmp_path: Path) -> None:
    env = {**default_server.env, "PROMO_STAFF_PASSWORD": PASSWORD}
    added = subprocess.run([PROMO, "staff", "add", "marketer@example.com", "--role", "marketer"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    codes = tmp_path / "autumn-codes.csv"
    codes.write_text("code\n" + "".join(f"{reward_code(n)}\n" for n in range(CODES)), encoding="utf-8")

    browser.allow_status("/console/campaigns/new", 422)  # the form with a validation error, on purpose
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    page.goto(default_server.url + "/console/")
    page.get_by_label("Email address").fill("marketer@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()
    shot(page, "console-01-campaigns")

    page.get_by_role("link", name="New campaign").click()
    page.get_by_label("Address (slug)").fill("autumn-2026")
    page.get_by_label("Name (English)").fill("Autumn offer")
    page.get_by_label("Dansk", exact=True).fill("Efterårstilbud")
    page.get_by_label("Time zone").fill("Europe/Copenhagen")
    page.get_by_label("Purchase and activation from").fill("2026-11-01")
    page.get_by_label("Purchase and activation until (inclusive)").fill("2026-10-01")  # a mistake: before it starts
    page.get_by_label("Redemption opens").fill("2026-11-01")
    page.get_by_label("Redemption closes (inclusive)").fill("2026-12-31")
    page.get_by_label("Find a country").fill("denm")  # the list filters as you type
    countries = page.get_by_role("group", name="Countries")
    expect(countries.get_by_role("checkbox", name="Norway NO")).to_be_hidden()
    countries.get_by_role("checkbox", name="Denmark DK").check()
    page.get_by_label("Find a country").fill("NO")
    countries.get_by_role("checkbox", name="Norway NO").check()
    expect(page.locator("#countries-count")).to_have_text("2")
    page.get_by_role("group", name="Qualifying products").get_by_role("checkbox", name="O365-HOME-ESD", exact=False).check()
    page.get_by_label("Excluded by attribute").fill("term=monthly")
    page.get_by_label("Low-stock alert below (optional)").fill("1000")
    page.get_by_label("Reward name").fill("Xbox Game Pass, 3 months")
    page.get_by_label("Terms of use link").fill("https://example.com/terms")
    page.get_by_label("Codes must be activated by").fill("2027-06-30")
    page.get_by_role("button", name="Create draft").click()

    expect(page.get_by_text("The campaign was not saved.")).to_be_visible()
    until = page.get_by_label("Purchase and activation until (inclusive)")
    expect(until).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#eligibility_window-last_day-error")).to_have_text(
        "the window ends (2026-10-01) before it starts (2026-11-01)")
    shot(page, "console-02-validation")
    until.fill("2026-12-15")
    page.get_by_role("button", name="Create draft").click()

    expect(page.get_by_role("heading", name="Autumn offer draft")).to_be_visible()
    shot(page, "console-03-draft")
    page.get_by_label("Upload codes (CSV)").set_input_files(codes)
    page.get_by_role("button", name="Upload codes", exact=True).click()
    expect(page.get_by_text(f"Done: {CODES:,} codes imported.")).to_be_visible(timeout=60_000)
    shot(page, "console-04-upload-done")
    page.get_by_role("link", name="Back to the campaign").click()
    expect(page.locator('#stock td[data-status="available"]')).to_have_text(f"{CODES:,}")
    expect(page.locator("#low-stock")).to_have_count(0)  # 5,000 is above the threshold of 1,000

    page.get_by_role("button", name="Publish").click()  # asks first, with the figures (issue 19, item 3)
    expect(page.locator("#consequence")).to_contain_text(f"with {CODES:,} codes available")
    shot(page, "console-05-confirm-publish")
    page.get_by_role("button", name="Publish Autumn offer").click()
    expect(page.get_by_role("heading", name="Autumn offer live")).to_be_visible()
    page.get_by_label("SKU").select_option("O365-HOME-MONTHLY")
    page.get_by_label("Country (ISO code)").fill("DK")
    page.get_by_label("Purchased").fill("2026-11-10")
    page.get_by_label("Activated").fill("2026-11-10")
    page.get_by_role("button", name="Check").click()
    expect(page.locator("#preview-result")).to_contain_text("Does not qualify")
    expect(page.locator("#preview-result")).to_contain_text("R-X4")
    shot(page, "console-06-live-stock-and-preview")
    context.close()
