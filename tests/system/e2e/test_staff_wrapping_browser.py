"""Staff pages with long data in a real browser (Playwright on Debian's chromium, against
`promo serve`), at 1280 and 360 px (issue 19, item 6): the page never scrolls sideways as a
whole (a wide table scrolls inside its own box), and licence keys, codes, statuses, tags,
emails and dates are never broken in the middle: each renders on one line."""

from __future__ import annotations

import subprocess
from urllib.parse import quote

from playwright.sync_api import Page, expect

from tests.support.served import PROMO, Served
from tests.system.e2e.chromium import shot
from tests.system.e2e.watch import WatchedBrowser

PASSWORD = "admin passphrase 6"
ADMIN = "marketing.operations.lead.nordics@subsidiary-with-a-long-name.example.com"
CUSTOMER = "a.customer.with.a.rather.long.address@mail.long-provider-name.example.com"
KEY = "DEMO1-AAAAA-BBBBB-CCCCC-00001"

# What must read as one piece at every width (inside a table that scrolls if need be).
ONE_PIECE = ".masked, td code, .status, td.nowrap, .rule-id"
# At 1280 px the signed-in address in the header stays whole too.
WIDE_ONE_PIECE = ONE_PIECE + ", header .whoami"

# For each element: its text and how many lines the text's boxes sit on (boxes whose tops
# are within half a line of each other share a line: an inline <code> sits a pixel lower).
LINES = """(selector) => Array.from(document.querySelectorAll(selector))
  .filter((e) => e.textContent.trim() && e.getClientRects().length && !e.querySelector('form, ul, br, table, input'))
  .map((e) => {
    const range = document.createRange();
    range.selectNodeContents(e);
    const tops = Array.from(range.getClientRects()).filter((r) => r.width > 0).map((r) => r.top).sort((a, b) => a - b);
    const half = parseFloat(getComputedStyle(e).fontSize) * 0.6;
    let lines = tops.length ? 1 : 0;
    for (let i = 1; i < tops.length; i++) if (tops[i] - tops[i - 1] > half) lines++;
    return [e.textContent.trim().slice(0, 80), lines];
  })"""


def overflow(page: Page) -> int:
    """How far the page scrolls sideways as a whole (0 when it fits)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


WIDER = """() => Array.from(document.querySelectorAll('main *, header *'))
  .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5 && !e.closest('table'))
  .filter((e) => !Array.from(e.children).some((c) => c.getBoundingClientRect().right > window.innerWidth + 0.5))
  .map((e) => `${e.tagName.toLowerCase()}.${e.className}: ${e.textContent.trim().slice(0, 60)}`).slice(0, 5)"""


def broken(page: Page, selector: str) -> list[tuple[str, int]]:
    return [(text, lines) for text, lines in page.evaluate(LINES, selector) if lines != 1]


def test_long_keys_emails_and_statuses_stay_whole_and_pages_fit(browser: WatchedBrowser, default_server: Served) -> None:
    env = {**default_server.env, "PROMO_STAFF_PASSWORD": PASSWORD}
    run = lambda *args: subprocess.run([PROMO, *args], env=env, capture_output=True, text=True, timeout=60)  # noqa: E731
    assert run("staff", "add", ADMIN, "--role", "admin").returncode == 0
    redeemed = run("redeem", "--campaign", "demo-xbox-gold", "--account", CUSTOMER, "--product-key", KEY, "--accept-terms")
    assert redeemed.returncode == 0, redeemed.stderr

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(default_server.url + "/console/")
    page.get_by_label("Email address").fill(ADMIN)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Campaigns")).to_be_visible()

    pages = {
        "campaigns": "/console/",
        "campaign": "/console/campaigns/demo-xbox-gold",
        "staff": "/console/staff",
        "decision-log": "/audit/",
        "staff-actions": "/audit/actions",
        "find-redemption": f"/audit/redemptions?by=account&q={quote(CUSTOMER)}",
        "overview": "/console/dashboard",
    }
    for width in (1280, 360):
        page.set_viewport_size({"width": width, "height": 900})
        for name, path in pages.items():
            page.goto(default_server.url + path)
            assert overflow(page) <= 0, f"{path} scrolls sideways by {overflow(page)} px at {width} px: {page.evaluate(WIDER)}"
            assert broken(page, WIDE_ONE_PIECE if width == 1280 else ONE_PIECE) == [], f"{path} at {width} px"
            shot(page, f"wrapping-{name}-{width}")
        # The licence key and the customer's address in the found redemption: one line each.
        page.goto(default_server.url + pages["find-redemption"])
        key = page.locator("#found td.masked").first
        expect(key).to_contain_text("00001")
        assert len(page.evaluate(LINES, "#found td.masked")) == 2 and broken(page, "#found td") == []
        if width == 360:  # the table is wider than the screen: it scrolls inside its own box
            assert page.evaluate("(e) => e.scrollWidth > e.clientWidth", page.locator("#found").element_handle())
    context.close()
