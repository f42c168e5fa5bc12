"""A marketer reads the overview and a campaign's dashboard in a real browser (Playwright on
Debian's chromium, against `promo serve`), at 1280 and 360 px: charts drawn to scale with
no CSP violation (the watch in conftest.py fails the test on any), figures that match the
history made through the command line, tables instead of sideways scrolling of the page."""

from __future__ import annotations

import subprocess

import pytest
from playwright.sync_api import Page, expect  # noqa: E402

from tests.support.served import PROMO, Served
from tests.system.e2e.chromium import shot  # importing it skips these tests without chromium
from tests.system.e2e.watch import WatchedBrowser

PASSWORD = "marketer passphrase 2"
DEMO = "demo-xbox-gold"


def bar_heights(page: Page, chart: str) -> list[float]:
    """The drawn heights (CSS pixels) of a chart's bars, as the browser laid them out."""
    return page.locator(f"{chart} rect.bar").evaluate_all("bars => bars.map(b => b.getBoundingClientRect().height)")


@pytest.mark.parametrize("width", [1280, 360])
def test_a_marketer_reads_the_overview_and_the_dashboard(browser: WatchedBrowser, default_server: Served, width: int) -> None:
    env = {**default_server.env, "PROMO_STAFF_PASSWORD": PASSWORD}
    run = lambda *args: subprocess.run([PROMO, *args], env=env, capture_output=True, text=True, timeout=60)  # noqa: E731
    assert run("staff", "add", "marketer@example.com", "--role", "marketer").returncode == 0
    for account, key in (("a@example.com", "DEMO1-AAAAA-BBBBB-CCCCC-00001"), ("b@example.com", "DEMO2-AAAAA-BBBBB-CCCCC-00002"),
                         ("c@example.com", "DEMO4-AAAAA-BBBBB-CCCCC-00004"), ("d@example.com", "DEMO5-AAAAA-BBBBB-CCCCC-00005")):
        run("redeem", "--campaign", DEMO, "--account", account, "--product-key", key, "--accept-terms")

    page = browser.new_page(viewport={"width": width, "height": 900})
    page.goto(default_server.url + "/console/dashboard")
    page.get_by_label("Email address").fill("marketer@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Live campaigns")).to_be_visible()
    row = page.locator(f'tr[data-campaign="{DEMO}"]')
    expect(row.locator('[data-figure="redeemed_24h"]')).to_have_text("2")
    expect(row.locator('[data-figure="refused_7d"]')).to_have_text("2")
    spark = bar_heights(page, f'tr[data-campaign="{DEMO}"] svg')
    assert spark[-1] > 0 and spark[:-1] == [0] * (len(spark) - 1)  # only today had redemptions
    assert page.evaluate("document.documentElement.scrollWidth") <= width  # the wide table scrolls in its box
    shot(page, f"dashboard-01-overview-{width}")

    row.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Demo: free 12-month Xbox Live Gold with Office 365")).to_be_visible()
    expect(page.locator("#fig-redeemed strong")).to_have_text("2")
    expect(page.locator("#fig-refused strong")).to_have_text("2")
    days = bar_heights(page, "#per-day + figure svg")
    assert days[-1] > 50 and set(days[:-1]) == {0}  # to scale: today's bar tall, the other days none (not full width)
    widths = page.locator("#per-day + figure svg rect.bar").evaluate_all(
        "bars => bars.map(b => Math.round(b.getBoundingClientRect().width * 100))")
    assert len(set(widths)) == 1  # every day's bar equally wide
    assert len(bar_heights(page, "#refusals + figure svg")) == 2  # R-X2 and R-X4
    expect(page.locator("#refusal-reasons")).to_contain_text("R-X4")
    expect(page.get_by_role("img", name="Refusals by reason")).to_be_visible()
    page.get_by_text("Redemptions and refusals per day, as a table").click()
    expect(page.locator("#days tbody tr").last).to_contain_text("2")
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    shot(page, f"dashboard-02-campaign-{width}")

    page.get_by_role("link", name="Settings and code pool").click()  # the campaign page's chart, same drawing
    expect(page.locator("#stock")).to_be_visible()
    assert bar_heights(page, "figure svg")[-1] > 50
    shot(page, f"dashboard-03-campaign-page-{width}")
