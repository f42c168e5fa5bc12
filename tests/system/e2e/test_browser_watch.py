"""The watch every browser test runs under (tests/system/e2e/watch.py) sees what it must: the old
"Redemptions per day" bars under the real CSP, a console error and an uncaught script
error each make a browser test fail."""

from __future__ import annotations

from playwright.sync_api import Route, expect  # noqa: E402

from tests.support.served import Served
from tests.system.e2e.chromium import shot  # importing it skips these tests without chromium
from tests.system.e2e.watch import WatchedBrowser

# The chart as issue 19 found it (templates/console/campaign.html before): widths as inline styles.
OLD_BARS = ('<div class="bars"><span>2026-05-01</span><span class="bar" style="width: 0%"></span><span>0</span>'
            '<span>2026-05-02</span><span class="bar" style="width: 100.0%"></span><span>4</span></div>')


def test_the_old_bar_chart_is_a_csp_violation_the_watch_reports(browser: WatchedBrowser, default_server: Served) -> None:
    page = browser.new_page(viewport={"width": 800, "height": 600})

    def old_page(route: Route) -> None:  # the real answer, with its real CSP header, and the old chart in it
        answer = route.fetch()
        route.fulfill(response=answer, body=answer.text().replace("</main>", f"{OLD_BARS}</main>"))

    page.route("**/offers/demo-xbox-gold", old_page)
    page.goto(default_server.url + "/offers/demo-xbox-gold")
    expect(page.locator(".bars")).to_be_visible()
    shot(page, "watch-old-bars")
    found = browser.watch.unexpected()
    assert any(p.startswith("CSP violation: style-src-attr blocked inline") for p in found), found
    assert any("Content Security Policy directive 'style-src 'self''" in p for p in found), found
    browser.watch.problems.clear()  # seen: this test passes because the watch saw them


def test_console_errors_and_uncaught_errors_are_reported(browser: WatchedBrowser, default_server: Served) -> None:
    page = browser.new_page()
    page.goto(default_server.url + "/")
    page.evaluate("console.error('something broke')")
    page.evaluate("setTimeout(() => { throw new Error('uncaught here') }, 0)")
    page.wait_for_timeout(100)
    found = browser.watch.unexpected()
    assert any(p.startswith("console error") and "something broke" in p for p in found), found
    assert any(p.startswith("uncaught script error") and "uncaught here" in p for p in found), found
    browser.watch.problems.clear()


def test_an_error_status_a_test_expects_is_allowed_and_no_other(browser: WatchedBrowser, default_server: Served) -> None:
    page = browser.new_page()
    page.goto(default_server.url + "/no-such-page")  # 404
    assert browser.watch.unexpected() != []
    browser.allow_status("/no-such-page", 404)
    assert browser.watch.unexpected() == []
    page.goto(default_server.url + "/no-such-page-either")
    assert [p for p in browser.watch.unexpected() if "no-such-page-either" in p]
    browser.watch.problems.clear()
