"""A marketer views a campaign as a customer (issue 19, item 10) in a real browser (Playwright
on Debian's chromium, against `promo serve`), at 1280 and 360 px: from the campaign's console
page to its offer, redeem form, reward page and email in two languages; the form cannot be
sent, the email's HTML part shows in its sandboxed frame, and no page breaks the CSP (the
watch in conftest.py fails the test on any violation) or scrolls sideways."""

from __future__ import annotations

import subprocess

import pytest
from playwright.sync_api import Page, expect  # noqa: E402

from promo.preview import SAMPLE_CODE
from tests.support.served import PROMO, Served
from tests.system.e2e.chromium import shot  # importing it skips these tests without chromium
from tests.system.e2e.watch import WatchedBrowser

PASSWORD = "marketer passphrase 3"
DEMO = "demo-xbox-gold"


def fits(page: Page, width: int) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= width, page.url


@pytest.mark.parametrize("width", [1280, 360])
def test_a_marketer_views_a_campaign_as_a_customer(browser: WatchedBrowser, default_server: Served, width: int) -> None:
    env = {**default_server.env, "PROMO_STAFF_PASSWORD": PASSWORD}
    added = subprocess.run([PROMO, "staff", "add", f"preview{width}@example.com", "--role", "marketer"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(default_server.url + f"/console/campaigns/{DEMO}")
    page.get_by_label("Email address").fill(f"preview{width}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="View as customer").click()

    banner = page.locator("#preview-banner")
    expect(banner).to_contain_text("Preview: this is how a customer in")
    expect(page.get_by_role("heading", level=1)).to_be_visible()
    fits(page, width)
    shot(page, f"preview-01-offer-{width}")

    banner.get_by_role("link", name="Redeem form").click()
    expect(page.get_by_role("button", name="Redeem")).to_be_disabled()
    before = page.url
    page.get_by_label("Product key").fill("AAAAA-BBBBB-CCCCC-DDDDD-EEEEE")
    page.get_by_label("Product key").press("Enter")  # no implicit submission: the only button is disabled
    page.wait_for_timeout(300)
    assert page.url == before
    fits(page, width)

    banner.get_by_role("link", name="dansk").click()
    expect(page.get_by_role("button", name="Indløs")).to_be_disabled()
    expect(page.locator("#preview-banner")).to_contain_text("en kunde i Danmark")  # where Danish is spoken
    page.locator("#preview-banner").get_by_role("link", name="Belønningssiden").click()
    expect(page.locator("p.code")).to_have_text(SAMPLE_CODE)
    fits(page, width)

    page.locator("#preview-banner").get_by_role("link", name="E-mail med koden").click()
    frame = page.frame_locator("iframe.mail-html")
    expect(frame.locator(".reward-code")).to_have_text(SAMPLE_CODE)
    expect(frame.get_by_role("link", name="Se tilbuddet")).to_have_attribute("href", f"{default_server.url}/offers/{DEMO}")
    expect(page.locator("pre.mail")).to_contain_text(SAMPLE_CODE)
    fits(page, width)
    email = next(f for f in page.frames if "/email/reward_code/html" in f.url)
    assert email.evaluate("document.documentElement.scrollWidth <= innerWidth")  # the email itself fits its frame
    shot(page, f"preview-02-email-{width}")
