"""R-X16: three support routes (the redemption's customer service per country, the product's
support, the reward's limited support) on the offer, terms and reward pages and in the reward
email; a country without a contact of its own falls back visibly to the general one; the
per-country contacts are edited in the console."""

from __future__ import annotations

import re
import sqlite3
from html import unescape

import pytest
from starlette.testclient import TestClient

from promo.campaign_store import get_campaign
from tests.support.console import audit_changes, field_error, form_values, post_form, signed_in
from tests.support.database import product_key
from tests.support.mailserver import MailServer
from tests.support.web import ANN, OFFER, follow_link, redeem_form, sign_in, submit, text_of, wait_for_mail_to

PRODUCT = '<a href="https://office.com/support">https://office.com/support</a>'
REWARD = '<a href="https://support.xbox.com">https://support.xbox.com</a>'


def route(page: str, name: str, *, markup: bool = False) -> str:
    """The route's line as the reader sees it (or its HTML)."""
    found = re.search(rf'<li id="support-{name}">(.*?)</li>', page, re.S)
    assert found, f"no {name} route on the page"
    return found.group(1) if markup else " ".join(unescape(re.sub(r"<[^>]+>", "", found.group(1))).split())


@pytest.mark.parametrize("path", [OFFER, f"{OFFER}/terms"])
def test_pages_show_three_routes_for_the_readers_country(client: TestClient, path: str) -> None:
    client.get("/?country=DK")
    page = client.get(path).text
    assert route(page, "redemption") == ("Questions about your redemption? Customer service for Denmark: "
                                         "https://support.microsoft.com/da-dk/contactus")
    assert "https://office.com/support" in route(page, "product") and PRODUCT in page
    assert route(page, "reward").startswith("Help with 12-month Xbox Live Gold membership (limited customer support):")
    assert REWARD in page
    # Finland has no contact of its own: the general one, and the page says so.
    client.get("/?country=FI")
    fallback = route(client.get(path).text, "redemption")
    assert fallback == ("Questions about your redemption? General customer service (there is no contact of its own for "
                        "Finland): https://support.microsoft.com/contactus")


def test_without_a_country_the_general_contact_and_every_countrys_own(client: TestClient) -> None:
    page = client.get(OFFER).text
    assert route(page, "redemption") == "Questions about your redemption? General customer service: https://support.microsoft.com/contactus"
    listed = re.search(r"<details>\s*<summary>Customer service by country</summary>(.*?)</details>", page, re.S)
    assert listed
    assert re.findall(r"<li>(\w[\w ]*):", listed.group(1)) == ["Denmark", "Norway", "Sweden", "United Kingdom"]


def test_the_danish_pages_fall_back_in_danish(client: TestClient) -> None:
    client.get("/language?lang=da&next=/")
    client.get("/?country=FI")
    page = client.get(OFFER).text
    assert route(page, "redemption").startswith("Spørgsmål om din indløsning? Generel kundeservice (der er ingen særskilt "
                                                "kontakt for Finland):")
    assert route(page, "product").startswith("Hjælp til det produkt, du har købt, og dets abonnement:")
    assert route(page, "reward").startswith("Hjælp til 12 måneders Xbox Live Gold-medlemskab")
    assert "Hjælp og support" in page


def test_the_reward_page_and_email_give_all_three_routes(client: TestClient, smtp: MailServer) -> None:
    follow_link(client, sign_in(client, smtp))
    before = len(smtp.received)
    location = submit(client, redeem_form(client), product_key(1)).headers["location"]
    page = client.get(location).text
    assert "Customer service for Denmark: https://support.microsoft.com/da-dk/contactus" in route(page, "redemption")
    assert PRODUCT in page and REWARD in page
    assert "Customer service by country" not in page  # the customer's own contact, not everyone's
    email = wait_for_mail_to(smtp, ANN, after=before)
    text, html = text_of(email), email.get_body(("html",)).get_content()
    assert "Questions about your redemption? Customer service for Denmark: https://support.microsoft.com/da-dk/contactus" in text
    assert "Help with the product you bought and its subscription: https://office.com/support" in text
    assert "Help with 12-month Xbox Live Gold membership (limited customer support): https://support.xbox.com" in text
    assert PRODUCT in html and REWARD in html and 'href="https://support.microsoft.com/da-dk/contactus"' in html


# ---- the console ---------------------------------------------------------------------------


@pytest.fixture
def marketer(client: TestClient, shop: sqlite3.Connection) -> TestClient:
    signed_in(client, shop, "marketer")
    return client


def edit_values(marketer: TestClient) -> dict[str, object]:
    return {k: v for k, v in form_values(marketer.get("/console/campaigns/open-today/edit").text).items() if k != "csrf"}


def test_the_console_edits_per_country_contacts(marketer: TestClient, shop: sqlite3.Connection) -> None:
    values = edit_values(marketer)
    assert values["support.countries"].splitlines()[0] == "DK: https://support.microsoft.com/da-dk/contactus"  # type: ignore[union-attr]
    assert values["support.product"] == "https://office.com/support" and values["support.reward"] == "https://support.xbox.com"
    values["support.countries"] = f"{values['support.countries']}\r\nfi: +358 9 2534 7000"
    saved = post_form(marketer, "/console/campaigns/open-today/edit", {**values, "action": "save"})
    assert saved.status_code == 303, saved.text
    assert get_campaign(shop, "open-today").campaign.support.route_for("FI").contact == "+358 9 2534 7000"
    changes = audit_changes(shop, "campaign:definition:changed")[-1]["changes"]
    assert changes == {"support.countries.FI": [None, "+358 9 2534 7000"]}
    marketer.cookies.clear()
    marketer.get("/?country=FI")
    page = marketer.get(OFFER).text
    assert route(page, "redemption") == "Questions about your redemption? Customer service for Finland: +358 9 2534 7000"
    assert "<a" not in route(page, "redemption", markup=True)  # a phone number is text, not a link


@pytest.mark.parametrize(("change", "field", "words"), [
    ({"support.countries": "DK: javascript:alert(1)"}, "support.countries", "http(s) link or a phone number"),
    ({"support.countries": "DK +45 43 31 60 00"}, "support.countries", "write each line as country: contact"),
    ({"support.countries": "XX: https://x.example"}, "support.countries", "ISO 3166-1"),
    ({"support.product": ""}, "support.product", "Give the product support contact"),
    ({"support.default": "mailto:help@example.com"}, "support.default", "http(s) link or a phone number"),
])
def test_the_console_shows_support_errors_at_their_field(marketer: TestClient, shop: sqlite3.Connection,
                                                        change: dict[str, str], field: str, words: str) -> None:
    before = get_campaign(shop, "open-today").updated_at
    refused = post_form(marketer, "/console/campaigns/open-today/edit", {**edit_values(marketer), **change, "action": "save"})
    assert refused.status_code == 422
    assert words in unescape(field_error(refused.text, field))
    assert get_campaign(shop, "open-today").updated_at == before
