"""The staff side's small finish and its languages (issue 19, items 5 and 12): a favicon on
both layouts, a staff 404 in the staff layout, console errors as sentences, staff pages in
Danish and Norwegian, and a catalog that translates every staff string."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from starlette.testclient import TestClient

from tests.support.console import SUMMER, field_error, post_form, signed_in

ROOT = Path(__file__).resolve().parent.parent
STAFF_TEMPLATES = ("staff", "console", "audit", "review")


def test_the_favicon_is_served_as_svg_and_linked_from_both_layouts(client: TestClient, shop: sqlite3.Connection) -> None:
    icon = client.get("/static/favicon.svg")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"
    assert icon.text.startswith("<svg")
    assert "img-src 'self'" in icon.headers["content-security-policy"]  # the CSP lets the page show it
    asked = client.get("/favicon.ico")  # what a browser asks of a page that links none (a CSV)
    assert asked.status_code == 200 and asked.headers["content-type"] == "image/svg+xml" and asked.text == icon.text
    link = '<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">'
    assert link in client.get("/").text
    assert link in client.get("/staff/signin").text


def test_a_staff_404_comes_in_the_staff_layout(client: TestClient, shop: sqlite3.Connection) -> None:
    signed_in(client, shop, "marketer")
    missing = client.get("/console/no-such-page")
    assert missing.status_code == 404
    assert "Promo staff" in missing.text and 'href="/staff/signout"' not in missing.text  # signout is a form
    assert 'action="/staff/signout"' in missing.text and 'href="/console/dashboard"' in missing.text  # the menu
    assert "There is nothing at this address." in missing.text
    unknown_campaign = client.get("/console/campaigns/no-such-campaign")
    assert unknown_campaign.status_code == 404 and 'action="/staff/signout"' in unknown_campaign.text
    consumer = client.get("/no-such-page")  # the consumer side keeps its own layout
    assert consumer.status_code == 404 and "Promo staff" not in consumer.text and "Back to the offers" in consumer.text


def test_a_staff_404_in_danish_for_a_danish_reader(client: TestClient, shop: sqlite3.Connection) -> None:
    missing = client.get("/audit/no-such-page", headers={"accept-language": "da-DK,da;q=0.9"})
    assert missing.status_code == 404 and '<html lang="da">' in missing.text
    assert "Siden blev ikke fundet" in missing.text


def test_the_staff_sign_in_page_is_a_card_in_the_staff_layout(client: TestClient, shop: sqlite3.Connection) -> None:
    page = client.get("/staff/signin").text
    assert '<section class="signin card"' in page and "Promo staff" in page
    css = client.get("/static/promo.css").text
    assert ".signin {" in css


def test_console_errors_are_sentences_that_name_their_field(client: TestClient, shop: sqlite3.Connection) -> None:
    signed_in(client, shop, "marketer")
    refused = post_form(client, "/console/campaigns/new", {**SUMMER, "name": "", "timezone": "", "countries": []})
    assert refused.status_code == 422
    assert field_error(refused.text, "name") == "Give the campaign a name."
    assert field_error(refused.text, "timezone") == "Choose the campaign&#39;s time zone, such as Europe/Copenhagen."
    assert field_error(refused.text, "countries") == "Choose at least one country (R-X2)."
    client.cookies.set("promo_lang", "da")
    danish = post_form(client, "/console/campaigns/new", {**SUMMER, "name": ""})
    assert field_error(danish.text, "name") == "Giv kampagnen et navn."


@pytest.mark.parametrize(("lang", "words"), [
    ("da", ["Kampagner", "Ny kampagne", "Log af", "Navn eller slug indeholder"]),
    ("nb", ["Kampanjer", "Ny kampanje", "Logg av", "Navn eller slug inneholder"]),
])
def test_a_staff_page_renders_in_the_chosen_language(client: TestClient, shop: sqlite3.Connection,
                                                       lang: str, words: list[str]) -> None:
    signed_in(client, shop, "marketer")
    english = client.get("/console/").text
    assert "Campaigns" in english and '<html lang="en">' in english
    chooser = client.get(f"/language?lang={lang}&next=/console/", follow_redirects=False)  # the consumer side's chooser
    assert chooser.status_code in (302, 303) and chooser.headers["location"] == "/console/"
    page = client.get("/console/").text
    assert f'<html lang="{lang}">' in page
    for word in words:
        assert word in page, word
    assert "New campaign" not in page and "Sign out" not in page


@pytest.mark.parametrize("lang", ["da", "nb"])
def test_the_campaign_form_labels_names_by_language_name(client: TestClient, shop: sqlite3.Connection, lang: str) -> None:
    signed_in(client, shop, "marketer")
    form = client.get("/console/campaigns/new").text
    assert "Name (da)" not in form and "Name (nb)" not in form
    assert ">Dansk</label>" in form and ">Norsk bokmål</label>" in form


def _staff_messages(tmp_path: Path) -> set[str]:
    """Every string the staff templates pass to the translation function, extracted by
    pybabel as scripts/i18n does (jinja2 with the i18n extension)."""
    config = tmp_path / "staff.cfg"
    config.write_text("".join(f"[jinja2: templates/{folder}/**.html]\nextensions = jinja2.ext.i18n\n"
                              for folder in STAFF_TEMPLATES))
    out = tmp_path / "staff.pot"
    pybabel = str(Path(sys.executable).parent / "pybabel")
    subprocess.run([pybabel, "extract", "-F", str(config), "-k", "_", "-k", "gettext", "--no-location",
                    "--omit-header", "-o", str(out), "."], cwd=ROOT, check=True, capture_output=True)
    with open(out, "rb") as handle:
        return {str(m.id) for m in read_po(handle) if m.id}


@pytest.mark.parametrize("lang", ["da", "nb"])
def test_every_staff_template_string_has_a_translation(tmp_path: Path, lang: str) -> None:
    messages = _staff_messages(tmp_path)
    assert len(messages) > 150  # the staff pages' strings really go through _()
    with open(ROOT / "promo" / "locale" / lang / "LC_MESSAGES" / "messages.po", "rb") as handle:
        translated = {str(m.id) for m in read_po(handle, locale=lang) if m.id and m.string}
    assert sorted(messages - translated) == [], f"{lang}: staff strings without a translation"


def test_a_confirmation_and_a_dashboard_in_danish(client: TestClient, shop: sqlite3.Connection) -> None:
    """What views compose (a consequence, a chart's title) is in the reader's language too."""
    signed_in(client, shop, "marketer")
    client.cookies.set("promo_lang", "da")
    asked = post_form(client, "/console/campaigns/open-today/state", {"action": "pause"})
    assert asked.status_code == 200 and 'name="confirm"' in asked.text
    assert "Sæt kampagnen på pause" in asked.text and "nu aktiv, på pause: fra dette øjeblik afvises kunderne" in asked.text
    assert "Fortryd" in asked.text and "Pause the campaign" not in asked.text
    board = client.get("/console/campaigns/open-today/dashboard").text
    assert "Indløsninger pr. dag" in board and "Redemptions per day" not in board
    assert shop.execute("SELECT paused_at FROM campaigns WHERE slug = 'open-today'").fetchone()[0] is None  # only asked


def test_every_staff_table_takes_the_keyboard_focus_and_has_a_name() -> None:
    """Tables scroll sideways inside their own box on a small screen (static/promo.css): a
    keyboard reaches and scrolls each one (axe-core's scrollable-region-focusable), and a
    screen reader names it (issue 19, item 6)."""
    tables = []
    for folder in STAFF_TEMPLATES:
        for template in sorted((ROOT / "templates" / folder).glob("*.html")):
            text = template.read_text(encoding="utf-8")
            tables += [(template.name, tag, caption) for tag, caption in re.findall(r"(<table\b[^>]*>)\s*(<caption)?", text)]
    assert len(tables) > 25
    unreachable = [(name, tag) for name, tag, _ in tables if 'tabindex="0"' not in tag]
    unnamed = [(name, tag) for name, tag, caption in tables if not caption and "aria-label" not in tag]
    assert unreachable == [] and unnamed == []
