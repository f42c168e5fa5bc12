"""A support agent works the review queue in a real browser (issue 19, item 9): the receipt
is on the claim's page as an image (a PDF's first page drawn by the server, a PNG as it is,
a hostile PDF "could not be previewed"), `a` approves, `r` then Enter rejects with a reason,
and each decision moves on to the next claim. Without JavaScript the same buttons work. The
review pages never scroll sideways at 1280 or 360 px. Decisions are checked in the database."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from promo.db import connect
from tests.support.review_fixtures import HOSTILE_PDF, RECEIPT_PDF, add_claim, red_png
from tests.support.served import PROMO, Served
from tests.system.e2e.chromium import shot  # importing it skips these tests without chromium

PASSWORD = "support passphrase 19"
CAMPAIGN = "demo-xbox-gold"


def page_overflows(page: Page) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth > window.innerWidth"))


def sign_in(browser: Any, server: Served, *, javascript: bool = True, width: int = 1280) -> Page:
    page = browser.new_context(java_script_enabled=javascript, viewport={"width": width, "height": 900}).new_page()
    page.goto(server.url + "/review/")
    page.get_by_label("Email address").fill("support@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Review queue")).to_be_visible()
    return page


def claims(server: Served, tmp_path: Path, receipts: list[bytes]) -> list[int]:
    env = {**server.env, "PROMO_STAFF_PASSWORD": PASSWORD}
    added = subprocess.run([PROMO, "staff", "add", "support@example.com", "--role", "support"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert added.returncode == 0, added.stderr
    conn = connect(tmp_path / "promo.sqlite3")
    try:
        return [add_claim(conn, tmp_path / "var" / "receipts", account=f"claimant{n}@example.com", key=200 + n,
                          receipt=receipt, campaign=CAMPAIGN, ip=f"192.0.2.{n + 1}") for n, receipt in enumerate(receipts)]
    finally:
        conn.close()


def statuses(tmp_path: Path) -> dict[int, tuple[str, str | None]]:
    conn = connect(tmp_path / "promo.sqlite3")
    try:
        return {r["id"]: (r["status"], r["reason"]) for r in conn.execute("SELECT id, status, reason FROM review_claims")}
    finally:
        conn.close()


def image_drawn(page: Page) -> bool:
    return bool(page.evaluate("(() => { const i = document.getElementById('receipt-preview');"
                              " return !!i && i.complete && i.naturalWidth > 0; })()"))


def test_a_support_agent_decides_by_keyboard(browser: Any, default_server: Served, tmp_path: Path) -> None:
    pdf, png, hostile = claims(default_server, tmp_path, [RECEIPT_PDF, red_png(40, 30), HOSTILE_PDF])
    page = sign_in(browser, default_server)
    page.get_by_role("link", name=str(pdf), exact=True).click()
    expect(page.locator("#receipt-preview")).to_be_visible()
    page.wait_for_function("document.getElementById('receipt-preview').complete")
    assert image_drawn(page)  # the PDF's first page, drawn by the server, shown under the strict CSP
    expect(page.locator("#no-record")).to_be_visible()
    expect(page.locator("#keys")).to_be_visible()  # the shortcuts are told where the script runs
    shot(page, "review-01-pdf-receipt-1280")
    page.keyboard.press("a")  # approve
    page.wait_for_url(f"**/review/{png}?decided={pdf}")
    expect(page.locator("#decided")).to_contain_text(f"Claim {pdf} is decided")
    assert statuses(tmp_path)[pdf][0] == "approved"

    page.wait_for_function("document.getElementById('receipt-preview').complete")
    assert image_drawn(page)  # the PNG as it is
    page.keyboard.press("r")  # to the reason; typing there is not a shortcut ("a" stays a letter)
    expect(page.locator("#reason")).to_be_focused()
    page.keyboard.type("A receipt for another product, sorry.")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/review/{hostile}?decided={png}")
    assert statuses(tmp_path)[png] == ("rejected", "A receipt for another product, sorry.")

    expect(page.locator("#receipt-problem")).to_contain_text("could not be previewed")
    expect(page.locator("#receipt-download")).to_be_visible()
    for width in (1280, 360):
        page.set_viewport_size({"width": width, "height": 900})
        assert not page_overflows(page), width
        shot(page, f"review-02-not-previewed-{width}")
    page.keyboard.press("q")
    page.wait_for_url("**/review/")
    page.get_by_role("link", name="Decided claims").click()
    expect(page.locator("#decided-claims tbody tr")).to_have_count(2)
    page.get_by_label("Decision").select_option("rejected")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("#decided-claims tbody tr")).to_have_count(1)
    expect(page.locator("#decided-claims td.decision")).to_have_text("rejected")
    assert not page_overflows(page)
    shot(page, "review-03-decided-360")
    assert statuses(tmp_path)[hostile][0] == "pending"


def test_without_javascript_the_buttons_still_decide(browser: Any, default_server: Served, tmp_path: Path) -> None:
    (first,) = claims(default_server, tmp_path, [RECEIPT_PDF])
    page = sign_in(browser, default_server, javascript=False, width=360)
    page.get_by_role("link", name=str(first), exact=True).click()
    assert not page_overflows(page)
    expect(page.locator("#keys")).to_be_hidden()  # no script, no shortcuts to tell of
    shot(page, "review-04-claim-no-js-360")
    page.get_by_label("Reason for refusing").fill("The date on the receipt is outside the offer.")
    page.get_by_role("button", name="Reject with this reason").click()
    page.wait_for_url(f"**/review/?decided={first}")
    expect(page.locator("#decided")).to_contain_text("No other claim is waiting")
    assert statuses(tmp_path)[first] == ("rejected", "The date on the receipt is outside the offer.")
