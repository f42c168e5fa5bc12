"""The consumer journey in a real browser (Playwright driving Debian's chromium) against a
real `promo serve` with its default configuration, by the visible labels, in English and
Danish. Screenshots of every page go to test-artifacts/screenshots/."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.support.served import Served
from tests.system.e2e.chromium import open_newest_mail, shot  # importing it skips these tests without chromium
from tests.system.e2e.watch import WatchedBrowser


@pytest.fixture
def server(default_server: Served) -> Served:
    return default_server


LABELS = {
    "en": {"email": "Email address", "send": "Send sign-in link", "key": "Product key", "country": "Country of purchase",
           "terms": "I accept the offer's terms and conditions", "redeem": "Redeem", "signin_subject": "Your sign-in link",
           "code_heading": "Your code", "country_name": "Denmark", "refused": "We could not give you a code",
           "tick": "tick the box that accepts them and send the form again"},
    "da": {"email": "E-mailadresse", "send": "Send link til at logge på", "key": "Produktnøgle", "country": "Købsland",
           "terms": "Jeg accepterer tilbuddets vilkår og betingelser", "redeem": "Indløs", "signin_subject": "Dit link til at logge på",
           "code_heading": "Din kode", "country_name": "Norge", "refused": "Vi kunne ikke give dig en kode",
           "tick": "sæt flueben i feltet, der accepterer dem"},
}


@pytest.mark.parametrize(("lang", "key", "account"), [
    ("en", "DEMO1-AAAAA-BBBBB-CCCCC-00001", "browser-en@example.com"),
    ("da", "DEMO2-AAAAA-BBBBB-CCCCC-00002", "browser-da@example.com"),
])
def test_journey_by_visible_labels(browser: WatchedBrowser, server: Served, lang: str, key: str, account: str) -> None:
    text = LABELS[lang]
    browser.allow_status("/offers/demo-xbox-gold/redeem", 422)  # refused without the terms, on purpose
    context = browser.new_context(locale={"en": "en-GB", "da": "da-DK"}[lang], viewport={"width": 390, "height": 844})
    page = context.new_page()
    page.goto(server.url + "/offers/demo-xbox-gold")
    shot(page, f"{lang}-01-offer")
    page.goto(server.url + "/offers/demo-xbox-gold/redeem")  # not signed in: sent to sign-in
    page.get_by_label(text["email"]).fill(account)
    shot(page, f"{lang}-02-signin")
    page.get_by_role("button", name=text["send"]).click()
    shot(page, f"{lang}-03-check-email")
    open_newest_mail(page, server, text["signin_subject"])
    shot(page, f"{lang}-04-signin-email")
    page.locator("pre.mail a[href*='/signin/']").click()
    expect(page.get_by_label(text["key"])).to_be_visible()
    # First without accepting the terms: refused, with the rule cited (R-X8).
    page.get_by_label(text["key"]).fill(key.lower())
    page.get_by_label(text["country"]).select_option(label=text["country_name"])
    page.get_by_role("button", name=text["redeem"], exact=True).click()
    expect(page.get_by_role("heading", name=text["refused"])).to_be_visible()
    # In plain words with the next step; the rule id only as a folded reference for support.
    expect(page.get_by_role("alert")).to_contain_text(text["tick"])
    expect(page.locator("details.reference .rule")).to_be_hidden()
    page.locator("details.reference summary").click()
    expect(page.locator("details.reference .rule")).to_have_text("R-X8")
    shot(page, f"{lang}-05-refused")
    page.get_by_label(text["key"]).fill(key)
    page.get_by_label(text["terms"]).check()
    shot(page, f"{lang}-06-redeem-form")
    page.get_by_role("button", name=text["redeem"], exact=True).click()
    expect(page.get_by_role("heading", name=text["code_heading"])).to_be_visible()
    code = page.locator(".code").inner_text().strip()
    assert re.fullmatch(r"[A-Z0-9]{5}(-[A-Z0-9]{5}){4}", code)
    shot(page, f"{lang}-07-result")
    page.goto(server.url + "/rewards")
    expect(page.locator(".masked")).to_have_text(re.compile(r"\*{5}-\*{5}-\*{5}-\*{5}-\*" + code[-4:]))
    shot(page, f"{lang}-08-my-rewards")
    open_newest_mail(page, server, {"en": "Your 12-month Xbox Live Gold membership code",
                                    "da": "Din kode til 12 måneders Xbox Live Gold-medlemskab"}[lang])
    expect(page.locator("pre.mail")).to_contain_text(code)
    shot(page, f"{lang}-09-reward-email")
    context.close()


def test_pages_fit_a_320_pixel_screen_and_work_by_keyboard(browser: WatchedBrowser, server: Served) -> None:
    context = browser.new_context(viewport={"width": 320, "height": 640})
    page = context.new_page()
    for path in ("/", "/offers/demo-xbox-gold", "/offers/demo-xbox-gold/terms", "/signin"):
        page.goto(server.url + path)
        assert page.evaluate("document.documentElement.scrollWidth") <= 320, path
    shot(page, "en-320-signin")
    page.keyboard.press("Tab")  # the skip link comes first
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.get_by_label("Email address").focus()
    page.keyboard.type("keyboard@example.com")
    page.keyboard.press("Enter")  # submits the form without a mouse
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    context.close()
