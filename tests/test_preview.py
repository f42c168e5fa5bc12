""""View as customer" (issue 19, item 10): staff who may edit campaigns see a campaign's
consumer pages and emails in each language, a draft too; the pages say they are previews,
show a sample code, can send nothing, and write nothing."""

from __future__ import annotations

import re
import sqlite3
import tomllib
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest
import tomli_w
from starlette.testclient import TestClient

from promo.campaign_store import get_campaign, save_campaign
from promo.campaigns import parse_campaign_file
from promo.campaigns.purchase_offer import DEFAULT_CODE_PATTERN
from promo.catalog import load_catalog
from promo.db import transaction
from promo.preview import SAMPLE_CODE
from promo.views.preview import PREVIEW_POLICY
from tests.support.console import signed_in
from tests.support.database import open_campaign_text
from tests.support.mailserver import MailServer
from tests.support.web import sign_in

DRAFT = "draft-preview"
NAMES = {"en": "Winter <b>offer</b> <script>alert(1)</script>", "da": "Vintertilbud <script>x()</script>",
         "nb": "Vintertilbud på norsk"}
PREVIEW = f"/console/campaigns/{DRAFT}/preview"
# The preview's customer lives where its language is spoken, else in the offer's first country.
COUNTRY = {"en": "AE", "da": "DK", "nb": "NO"}


class Page(HTMLParser):
    """What a test reads from a page: its text, its forms, its buttons, every element and attribute."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.text: list[str] = []
        self.forms: list[dict[str, str | None]] = []
        self.buttons: list[dict[str, str | None]] = []
        self.tags: list[str] = []
        self.links: list[str] = []
        self.frames: list[dict[str, str | None]] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag == "form":
            self.forms.append(values)
        elif tag == "button":
            self.buttons.append(values)
        elif tag == "a" and values.get("href"):
            self.links.append(str(values["href"]))
        elif tag == "iframe":
            self.frames.append(values)

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


@pytest.fixture
def draft(shop: sqlite3.Connection) -> sqlite3.Connection:
    """An unpublished offer whose names per language hold markup (to be shown as text)."""
    data = tomllib.loads(open_campaign_text(DRAFT))
    data["name"] = NAMES["en"]
    data["names"] = {"da": NAMES["da"], "nb": NAMES["nb"]}
    with transaction(shop):
        save_campaign(shop, parse_campaign_file(tomli_w.dumps(data), load_catalog(shop)), actor="test",
                      now=datetime.now(UTC), publish=False)
    assert not get_campaign(shop, DRAFT).published
    return shop


def counts(conn: sqlite3.Connection) -> tuple[int, ...]:
    return tuple(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # noqa: S608 - fixed table names
                 for table in ("outbox", "redemptions", "audit_events", "review_claims", "sessions"))


def assert_preview_only(page: Page) -> None:
    """Marked as a preview, and nothing on it can post anything anywhere."""
    assert "Preview" in page.all_text or "Forhåndsvisning" in page.all_text
    for form in page.forms:
        assert (form.get("method") or "get").lower() == "get" and not form.get("action"), form
    assert "script" not in page.tags  # the names' <script> stayed text


@pytest.mark.parametrize("lang", ["en", "da", "nb"])
def test_each_language_previews_a_draft_with_its_name_and_a_sample_code(client: TestClient, draft: sqlite3.Connection,
                                                                       lang: str) -> None:
    signed_in(client, draft, "marketer")
    before = counts(draft)
    for name in ("offer", "redeem", "reward"):
        response = client.get(f"{PREVIEW}/{lang}/{name}")
        assert response.status_code == 200, response.text
        assert response.headers["content-security-policy"] == PREVIEW_POLICY  # form-action 'none': the browser sends nothing
        page = Page(response.text)
        assert NAMES[lang] in page.all_text or name == "reward", (name, page.all_text[:300])
        assert_preview_only(page)
        assert "preview-banner" in response.text
        assert f'lang="{lang}"' in response.text
    reward = Page(client.get(f"{PREVIEW}/{lang}/reward").text)
    assert SAMPLE_CODE in reward.all_text
    assert all("disabled" in b for b in reward.buttons if b.get("type") == "submit") and reward.buttons
    redeem = Page(client.get(f"{PREVIEW}/{lang}/redeem").text)
    assert all("disabled" in b for b in redeem.buttons if b.get("type") == "submit") and redeem.buttons
    offer = Page(client.get(f"{PREVIEW}/{lang}/offer").text)
    assert f"{PREVIEW}/{lang}/redeem?country={COUNTRY[lang]}" in offer.links  # "Redeem now" stays in the preview
    assert counts(draft) == before  # nothing written: no redemption, no email, no event, no session


@pytest.mark.parametrize("lang", ["en", "da", "nb"])
def test_each_language_previews_the_emails_without_queueing_them(client: TestClient, draft: sqlite3.Connection,
                                                                 lang: str) -> None:
    signed_in(client, draft, "admin")
    before = counts(draft)
    response = client.get(f"{PREVIEW}/{lang}/email/reward_code")
    assert response.status_code == 200, response.text
    page = Page(response.text)
    assert_preview_only(page)
    assert SAMPLE_CODE in page.all_text  # the text part, shown as text
    [frame] = page.frames
    assert frame["sandbox"] == ""  # no script, no same origin, no forms in the frame
    html = client.get(str(frame["src"]))
    assert html.status_code == 200
    assert "script-src" not in html.headers["content-security-policy"]  # default-src 'none' covers scripts
    assert "default-src 'none'" in html.headers["content-security-policy"]
    assert "sandbox" in html.headers["content-security-policy"]
    assert "frame-ancestors 'self'" in html.headers["content-security-policy"]
    assert html.headers["x-frame-options"] == "SAMEORIGIN"
    email = Page(html.text)
    assert NAMES[lang] in email.all_text and SAMPLE_CODE in email.all_text
    assert "script" not in email.tags
    assert f"http://testserver/offers/{DRAFT}" in email.links
    rejected = client.get(f"{PREVIEW}/{lang}/email/review_rejected")
    assert rejected.status_code == 200 and "SAMPL" in rejected.text
    assert counts(draft) == before


@pytest.mark.parametrize("role", ["auditor", "support"])
def test_staff_who_cannot_edit_campaigns_are_refused(client: TestClient, draft: sqlite3.Connection, role: str) -> None:
    signed_in(client, draft, role)
    for path in (PREVIEW, f"{PREVIEW}/en/offer", f"{PREVIEW}/da/reward", f"{PREVIEW}/en/email/reward_code",
                 f"{PREVIEW}/en/email/reward_code/html"):
        response = client.get(path)
        assert response.status_code == 403, path
        assert SAMPLE_CODE not in response.text


def test_a_consumer_is_sent_to_the_staff_sign_in(client: TestClient, draft: sqlite3.Connection) -> None:
    client.cookies.clear()
    for path in (f"{PREVIEW}/en/offer", f"{PREVIEW}/en/email/reward_code/html"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/staff/signin"), path


def test_a_signed_in_consumer_cannot_preview(client: TestClient, draft: sqlite3.Connection, smtp: MailServer) -> None:
    sign_in(client, smtp)  # a consumer session, no staff one
    response = client.get(f"{PREVIEW}/en/reward")
    assert response.status_code == 303 and response.headers["location"].startswith("/staff/signin")
    assert client.get(f"/offers/{DRAFT}").status_code == 404  # and the draft stays unseen on the consumer side


def test_the_campaign_page_links_to_the_preview_for_editors_only(client: TestClient, draft: sqlite3.Connection) -> None:
    signed_in(client, draft, "marketer")
    page = Page(client.get(f"/console/campaigns/{DRAFT}").text)
    assert PREVIEW in page.links
    start = client.get(PREVIEW)
    assert start.status_code == 303 and start.headers["location"] == f"{PREVIEW}/en/offer"
    signed_in(client, draft, "auditor")
    assert PREVIEW not in Page(client.get(f"/console/campaigns/{DRAFT}").text).links


def test_the_sample_code_is_no_code_a_pool_would_take(draft: sqlite3.Connection) -> None:
    assert re.fullmatch(DEFAULT_CODE_PATTERN, SAMPLE_CODE) is None
    assert re.fullmatch(get_campaign(draft, DRAFT).campaign.code_pattern, SAMPLE_CODE) is None


def test_unknown_pages_languages_and_campaigns_are_not_found(client: TestClient, draft: sqlite3.Connection) -> None:
    signed_in(client, draft, "marketer")
    for path in (f"{PREVIEW}/fr/offer", f"{PREVIEW}/en/terms", f"{PREVIEW}/en/email/signin_link",
                 "/console/campaigns/nope/preview/en/offer", "/console/campaigns/nonprofit-donations/preview/en/offer"):
        assert client.get(path).status_code == 404, path


def test_another_country_of_the_offer_can_be_chosen(client: TestClient, draft: sqlite3.Connection) -> None:
    signed_in(client, draft, "marketer")
    page = client.get(f"{PREVIEW}/nb/reward?country=NO")
    assert page.status_code == 200 and "Norge" in Page(page.text).all_text
    fallback = client.get(f"{PREVIEW}/en/reward?country=ZZ")  # not the offer's: its first country
    assert fallback.status_code == 200
