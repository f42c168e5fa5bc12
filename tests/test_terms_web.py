"""The terms customers agree to (R-X17 … R-X22) on the web: the terms page in the reader's
language that the redeem form links to, the version accepted recorded with the redemption
and its audit event, the summary in the reward email (real SMTP), an earlier version still
readable after a change, and editing the terms in the console."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import tomllib
from datetime import UTC, datetime
from html import unescape
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from promo.campaign_store import get_campaign, save_campaign
from promo.campaigns import campaign_from_dict, parse_campaign_file
from promo.catalog import load_catalog
from promo.db import transaction
from tests.support.console import audit_changes, field_error, form_values, post_form, signed_in
from tests.support.database import open_campaign_text, product_key
from tests.support.mailserver import MailServer
from tests.support.web import ANN, OFFER, answered, follow_link, hidden, redeem_form, sign_in, submit, text_of, wait_for_mail_to

TERMS = f"{OFFER}/terms"


def sections_of(page: str) -> list[str]:
    return re.findall(r'<section id="terms-([\w-]+)"', page)


@pytest.mark.parametrize(("lang", "heading", "sentence"), [
    ("en", "Terms and conditions: Free 12-month Xbox Live Gold membership with Office 365",
     "The Xbox Live Gold code may be transferred before activation, but it cannot be sold."),
    ("da", "Vilkår og betingelser: Gratis 12 måneders Xbox Live Gold-medlemskab med Office 365",
     "Xbox Live Gold-koden kan overdrages før aktivering, men kan ikke sælges."),
    ("nb", "Vilkår og betingelser: Gratis 12 måneders Xbox Live Gold-medlemskap med Office 365",
     "Xbox Live Gold-koden kan overdras før aktivering, men kan ikke selges."),
])
def test_the_terms_page_is_in_the_readers_language(client: TestClient, lang: str, heading: str, sentence: str) -> None:
    client.get(f"/language?lang={lang}&next=/")
    page = client.get(TERMS)
    assert page.status_code == 200
    assert f"<h1>{heading}</h1>" in page.text and sentence in page.text
    assert f'<article lang="{lang}">' in page.text
    assert len(sections_of(page.text)) == 14
    # Rule ids stay out of the text (a data attribute for support), items are real lists.
    assert 'data-rules="R-X18' not in page.text and 'data-rules="R-X6 R-X7 R-X9 R-X10 R-X12 R-X18"' in page.text
    assert page.text.count("<li>") > 40
    assert re.search(r'data-version="[0-9a-f]{64}"', page.text)
    # The three support routes follow the support section (R-X16).
    assert 'id="support-product"' in page.text and 'id="support-reward"' in page.text




def test_a_reader_whose_language_the_terms_lack_sees_english_and_is_told(client: TestClient, shop: sqlite3.Connection) -> None:
    data = tomllib.loads(open_campaign_text())
    del data["names"]
    for s in data["terms"]:
        for key in ("title", "text", "summary"):
            if key in s:
                s[key] = {"en": s[key]["en"]}
    with transaction(shop):
        save_campaign(shop, campaign_from_dict(data, load_catalog(shop)), actor="test", now=datetime.now(UTC))
    client.get("/language?lang=da&next=/")
    page = client.get(TERMS).text
    assert '<article lang="en">' in page and "Disse vilkår findes ikke på dit sprog; de vises på engelsk." in page
    assert "The Xbox Live Gold code may be transferred before activation" in page


def test_unknown_offers_and_versions_are_not_found(client: TestClient) -> None:
    for path in ("/offers/nope/terms", f"{TERMS}?version=nope", f"{TERMS}?version={'0' * 64}",
                 f"{TERMS}?version=%00", f"{TERMS}?version={'A' * 64}"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Traceback" not in response.text


def test_the_redeem_form_links_its_checkbox_to_the_terms_page(client: TestClient, smtp: MailServer) -> None:
    follow_link(client, sign_in(client, smtp))
    page = redeem_form(client)
    assert f'<a href="{TERMS}" id="offer-terms-link">Read the offer&#39;s terms and conditions</a>' in page or \
        f'<a href="{TERMS}" id="offer-terms-link">Read the offer\'s terms and conditions</a>' in page
    assert 'href="https://www.xbox.com/live/termsofuse"' in page  # the reward's own terms of use, beside them (R-X8)
    assert client.get(TERMS).status_code == 200
    assert f'href="{TERMS}"' in client.get(OFFER).text  # the offer page links them too


def test_the_accepted_version_is_recorded_and_an_auditor_can_prove_its_text(client: TestClient, smtp: MailServer,
                                                                           shop: sqlite3.Connection) -> None:
    follow_link(client, sign_in(client, smtp))
    client.get("/language?lang=nb&next=/")
    page = client.get(f"{OFFER}/redeem").text
    assert "Jeg godtar tilbudets vilkår og betingelser" in page
    before = len(smtp.received)
    assert submit(client, page, product_key(1)).status_code == 303
    version = get_campaign(shop, "open-today").campaign.terms.version
    row = shop.execute("SELECT id, campaign_id, terms_version, terms_accepted_at FROM redemptions").fetchone()
    assert row["terms_version"] == version and row["terms_accepted_at"]
    event = json.loads(shop.execute("SELECT data FROM audit_events WHERE tag = 'redemption:code:issued'").fetchone()[0])
    assert (event["terms_version"], event["terms_language"]) == (version, "nb")
    # The proof: the kept text hashes to the recorded version, and it is the text the page showed.
    kept = shop.execute("SELECT terms FROM terms_versions WHERE campaign_id = ? AND version = ?",
                        (row["campaign_id"], version)).fetchone()[0]
    assert hashlib.sha256(kept.encode("utf-8")).hexdigest() == version
    taxes = next(s for s in json.loads(kept) if s["id"] == "taxes")
    assert taxes["text"]["nb"] in client.get(TERMS).text
    # And the campaign's definition in the audit chain holds the same sections.
    created = json.loads(shop.execute("SELECT data FROM audit_events WHERE tag = 'campaign:definition:created'"
                                      " AND subject = 'campaign:open-today'").fetchone()[0])
    assert created["changes"]["terms"][1] == json.loads(kept)
    wait_for_mail_to(smtp, ANN, after=before)


def test_the_reward_email_summarises_the_terms_accepted(client: TestClient, smtp: MailServer, shop: sqlite3.Connection) -> None:
    follow_link(client, sign_in(client, smtp))
    before = len(smtp.received)
    location = submit(client, redeem_form(client), product_key(1)).headers["location"]
    email = wait_for_mail_to(smtp, ANN, after=before)
    version = get_campaign(shop, "open-today").campaign.terms.version
    text, html = text_of(email), email.get_body(("html",)).get_content()
    for body in (text, html):
        assert "The offer&#39;s terms and conditions that you accepted, in short:" in body or \
            "The offer's terms and conditions that you accepted, in short:" in body
        assert "may be transferred before activation, but it cannot be sold" in body  # R-X18
        assert "you are responsible for all related taxes and duties" in body  # R-X19
        assert "can only be redeemed online; download and data charges may apply" in body  # R-X20
        assert "You declared that you have legal capacity" in body  # R-X21
        assert "replaced by the valid provision closest to its intent" in body  # R-X22
        assert "Our Privacy Policy is part of these terms" in body  # R-X17
        assert f"http://testserver/offers/open-today/terms?version={version}" in body
        assert f"(version {version[:12]})" in body
    assert html.count("<li>") >= 6 + 3
    reward = client.get(location).text
    assert f'href="/offers/open-today/terms?version={version}" id="accepted-terms"' in reward


def test_the_danish_email_summary_is_danish(client: TestClient, smtp: MailServer) -> None:
    follow_link(client, sign_in(client, smtp))
    client.get("/language?lang=da&next=/")
    before = len(smtp.received)
    assert submit(client, client.get(f"{OFFER}/redeem").text, product_key(1)).status_code == 303
    email = wait_for_mail_to(smtp, ANN, after=before)
    for body in (text_of(email), email.get_body(("html",)).get_content()):
        assert "Tilbuddets vilkår og betingelser, som du har accepteret, kort fortalt:" in body
        assert "Xbox Live Gold-koden kan overdrages før aktivering, men kan ikke sælges" in body
        assert "De fulde vilkår og betingelser (version" in body
        for english in ("terms and conditions", "in short", "Help with", "customer service", "Sponsor:", "You live"):
            assert english not in body, english


def test_after_a_change_the_old_version_stays_readable_and_new_redemptions_record_the_new(
        client: TestClient, smtp: MailServer, shop: sqlite3.Connection) -> None:
    follow_link(client, sign_in(client, smtp))
    first = submit(client, redeem_form(client), product_key(1)).headers["location"]
    old = get_campaign(shop, "open-today").campaign.terms.version
    data = tomllib.loads(open_campaign_text())
    taxes = next(s for s in data["terms"] if s["id"] == "taxes")
    taxes["text"]["en"] = "Taxes: a new text."
    with transaction(shop):
        save_campaign(shop, parse_campaign_file(__import__("tomli_w").dumps(data), load_catalog(shop)), actor="test",
                      now=datetime.now(UTC))
    new = get_campaign(shop, "open-today").campaign.terms.version
    assert new != old
    current = client.get(TERMS).text
    assert "Taxes: a new text." in current and "You are reading an earlier version" not in current
    earlier = client.get(f"{TERMS}?version={old}").text
    assert "Taxes: a new text." not in earlier and "you are responsible for all related taxes and duties" in earlier
    assert "You are reading an earlier version of these terms" in earlier and f'href="{TERMS}"' in earlier
    assert f"?version={old}" in client.get(first).text  # the first customer's link still names what they accepted
    client.cookies.clear()
    follow_link(client, sign_in(client, smtp, "bob@example.com"))
    assert submit(client, redeem_form(client), product_key(3), country="NO").status_code == 303
    assert [r[0] for r in shop.execute("SELECT terms_version FROM redemptions ORDER BY id")] == [old, new]


# ---- the console ---------------------------------------------------------------------------


@pytest.fixture
def marketer(client: TestClient, shop: sqlite3.Connection) -> TestClient:
    signed_in(client, shop, "marketer")
    return client


def edit_values(marketer: TestClient) -> dict[str, Any]:
    form = marketer.get("/console/campaigns/open-today/edit").text
    return {k: v for k, v in form_values(form).items() if k != "csrf"}


def section_index(values: dict[str, Any], section_id: str) -> int:
    return next(int(m.group(1)) for k, v in values.items() if (m := re.fullmatch(r"terms\[(\d+)\]\.id", k)) and v == section_id)


def test_the_console_edits_a_section_and_the_change_is_audited(marketer: TestClient, shop: sqlite3.Connection) -> None:
    values = edit_values(marketer)
    i = section_index(values, "taxes")
    assert values[f"terms[{i}].text.da"].startswith("Du accepterer, at din deltagelse")
    # A browser sends CRLF line ends from a textarea: stored with \n, so nothing else changes.
    values[f"terms[{i}].text.nb"] = "Første linje.\r\n\r\n- et punkt\r\n- et til"
    saved = post_form(marketer, "/console/campaigns/open-today/edit", {**values, "action": "save"})
    assert saved.status_code == 303, saved.text
    section = get_campaign(shop, "open-today").campaign.terms.sections[i]
    assert section.text["nb"] == "Første linje.\n\n- et punkt\n- et til"
    changes = audit_changes(shop, "campaign:definition:changed")[-1]["changes"]
    assert list(changes) == ["terms"]
    # Saved again unchanged: no change recorded.
    again = post_form(marketer, "/console/campaigns/open-today/edit", {**edit_values(marketer), "action": "save"})
    assert again.status_code == 303 and len(audit_changes(shop, "campaign:definition:changed")) == 1


def test_the_console_names_the_section_and_language_that_lack_a_text(marketer: TestClient, shop: sqlite3.Connection) -> None:
    values = edit_values(marketer)
    i = section_index(values, "representations")
    values[f"terms[{i}].text.nb"] = ""
    refused = post_form(marketer, "/console/campaigns/open-today/edit", {**values, "action": "save"})
    assert refused.status_code == 422
    message = unescape(field_error(refused.text, f"terms[{i}].text.nb"))
    assert "'representations' has no text in Norwegian Bokmål (nb)" in message
    assert re.search(rf'<details class="terms-section" id="terms-{i}" open>', refused.text)
    assert get_campaign(shop, "open-today").campaign.terms.sections[i].text["nb"]  # nothing saved


def test_the_console_adds_and_removes_sections(marketer: TestClient, shop: sqlite3.Connection) -> None:
    values = edit_values(marketer)
    blank = 14  # the empty section after the 14 the offer has
    assert values[f"terms[{blank}].id"] == "" and f"terms[{blank + 1}].id" not in values
    values.update({f"terms[{blank}].id": "age", f"terms[{blank}].rules": "R-X14",
                   **{f"terms[{blank}].{key}.{lang}": f"{key} {lang}" for key in ("title", "text") for lang in ("en", "da", "nb")},
                   f"terms[{section_index(values, 'how_to_take_part')}].remove": "yes"})
    # A section removed before a faulty one: the error still lands on the faulty section's own field.
    values[f"terms[{section_index(values, 'taxes')}].title.da"] = ""
    refused = post_form(marketer, "/console/campaigns/open-today/edit", {**values, "action": "save"})
    assert refused.status_code == 422
    shown = form_values(refused.text)
    j = section_index(shown, "taxes")
    assert j == 9 and "'taxes' has no title in Danish (da)" in unescape(field_error(refused.text, f"terms[{j}].title.da"))
    assert "how_to_take_part" not in shown.values()
    shown[f"terms[{j}].title.da"] = "b) Skat"
    saved = post_form(marketer, "/console/campaigns/open-today/edit", {**{k: v for k, v in shown.items() if k != "csrf"},
                                                                         "action": "save"})
    assert saved.status_code == 303, saved.text
    terms = get_campaign(shop, "open-today").campaign.terms
    ids = [s.id for s in terms.sections]
    assert "how_to_take_part" not in ids and ids[-1] == "age" and terms.sections[-1].rules == ("R-X14",)
    assert terms.sections[-1].title == {"en": "title en", "da": "title da", "nb": "title nb"}


def test_the_api_refuses_terms_missing_a_language_naming_section_and_language(client: TestClient, shop: sqlite3.Connection) -> None:
    from tests.support.console import new_token

    signed_in(client, shop, "marketer")
    headers = {"Authorization": f"Bearer {new_token(client)}", "Content-Type": "application/toml"}
    data = tomllib.loads(open_campaign_text())
    del next(s for s in data["terms"] if s["id"] == "online")["summary"]["da"]
    response = client.put("/api/v1/campaigns/open-today", headers=headers, content=__import__("tomli_w").dumps(data))
    assert response.status_code == 400 and response.headers["content-type"].startswith("application/problem+json")
    [error] = response.json()["errors"]
    assert error["field"] == "terms[3].summary.da" and "'online' has no summary in Danish (da)" in error["message"]


def test_the_auditor_sees_the_version_accepted_and_where_the_customer_lives(client: TestClient, smtp: MailServer,
                                                                           shop: sqlite3.Connection) -> None:
    follow_link(client, sign_in(client, smtp))
    page = client.get(f"{OFFER}/redeem").text
    data = {"csrf": hidden(page, "csrf"), "idempotency_key": hidden(page, "idempotency_key"), "product_key": product_key(1),
            "country": "DK", "residence_country": "SE", "accept_terms": "yes"}
    assert client.post(f"{OFFER}/redeem", data=data).status_code == 303
    version = get_campaign(shop, "open-today").campaign.terms.version
    attempt = shop.execute("SELECT id FROM redemption_attempts WHERE outcome = 'redeemed'").fetchone()[0]
    signed_in(client, shop, "auditor")
    detail = client.get(f"/audit/attempts/{attempt}").text
    assert '<dd id="residence">SE</dd>' in detail
    assert f'href="/offers/open-today/terms?version={version}"><code>{version}</code>' in detail
    assert "Version" in client.get(f"/offers/open-today/terms?version={version}").text


_TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=200)
_FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])


@_FUZZ
@given(version=_TEXT)
def test_any_version_asked_for_is_a_page_or_not_found(client: TestClient, version: str) -> None:
    response = client.get(TERMS, params={"version": version})
    assert response.status_code in (200, 404) and "Traceback" not in response.text


@_FUZZ
@given(field=st.sampled_from(["terms[3].id", "terms[3].rules", "terms[3].text.nb", "terms[3].summary.da", "terms[14].id",
                              "terms[14].text.en", "terms[99999999999].title.en", "terms[3].remove", "support.default",
                              "support.countries", "support.reward"]), value=_TEXT)
def test_the_console_answers_any_terms_or_support_input_clearly(marketer: TestClient, shop: sqlite3.Connection,
                                                                field: str, value: str) -> None:
    values = edit_values(marketer)
    response = post_form(marketer, "/console/campaigns/open-today/edit", {**values, field: value, "action": "save"})
    assert answered(response, {field: value}, (303, 422)), (field, value, response.status_code)
    assert "Traceback" not in response.text
    campaign = get_campaign(shop, "open-today").campaign  # whatever was saved reads back and renders
    assert marketer.get(TERMS).status_code == (200 if campaign.terms else 404)
    assert marketer.get(OFFER).status_code == 200
