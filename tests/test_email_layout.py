"""Emails that look like a product (issue 19, item 11): every HTML part is drawn in the
branded layout (promo/email_layout.py, templates/email/_layout.html), read here with a real
HTML parser; the text part says the same things; what people typed stays text; a real SMTP
server receives multipart/alternative; in English, Danish and Norwegian."""

from __future__ import annotations

import asyncio
import sqlite3
import tomllib
from dataclasses import replace
from email import policy as email_policy
from email.message import EmailMessage
from html.parser import HTMLParser
from types import SimpleNamespace
from typing import Any

import pytest
import tomli_w
from starlette.testclient import TestClient

from promo.app import create_app
from promo.campaign_store import save_campaign
from promo.campaigns import parse_campaign_file, shipped_campaign_text
from promo.catalog import load_catalog
from promo.config import Settings
from promo.db import transaction
from promo.email_layout import contact_href, render_email, service_name
from promo.mail import MailRelay
from promo.mailsink import SinkHandler
from promo.templating import Templates
from tests.support.database import DURING, SLUG, reward_code
from tests.support.mailserver import MailServer
from tests.support.prepared import store_of
from tests.support.redemption import add_activations, add_codes, redeem

LANGS = ("en", "da", "nb")
HOSTILE = '<script>alert("x")</script> & <b>bold</b>'
NAMES = {"en": f"Winter offer {HOSTILE}", "da": f"Vintertilbud {HOSTILE}", "nb": f"Vintertilbud på norsk {HOSTILE}"}
SUPPORT_DK = "https://support.microsoft.com/da-dk/contactus"
# A sentence of the reward email in each language: the text and HTML parts are in the reader's.
ACTIVATE = {"en": "Activate the code by", "da": "Aktivér koden senest", "nb": "Aktiver koden innen"}
PUBLIC_URL = "https://promo.example"


class Email(HTMLParser):
    """An HTML part as a mail client reads it: tags, links (href -> text), text, the code box."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.links: dict[str, str] = {}
        self.classes: dict[str, list[str]] = {}
        self.text: list[str] = []
        self._open: list[tuple[str, str | None, str | None]] = []  # (tag, href, class)
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        values = dict(attrs)
        if tag not in ("br", "meta", "img", "hr"):
            self._open.append((tag, values.get("href"), values.get("class")))
            self.classes.setdefault(values.get("class") or "", [])

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        for _tag, href, css in self._open:
            if href:
                self.links[href] = (self.links.get(href, "") + data).strip()
            if css:
                self.classes[css].append(data.strip())

    @property
    def all_text(self) -> str:
        return " ".join(" ".join(self.text).split())


def parts(email: EmailMessage) -> tuple[str, str]:
    assert email.get_content_type() == "multipart/alternative"
    text, html = email.get_body(("plain",)), email.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


@pytest.fixture
def hostile_names(conn: sqlite3.Connection) -> sqlite3.Connection:
    """The shipped offer, its names per language holding markup (a marketer may type anything)."""
    data = tomllib.loads(shipped_campaign_text(SLUG))
    data["name"], data["names"] = NAMES["en"], {"da": NAMES["da"], "nb": NAMES["nb"]}
    data["allow_unbound_keys"] = True  # the test keys name no account (R-X5)
    with transaction(conn):
        save_campaign(conn, parse_campaign_file(tomli_w.dumps(data), load_catalog(conn)), actor="test", now=DURING)
    return conn


async def test_the_reward_email_in_each_language_is_branded_and_says_what_its_text_says(
        settings: Settings, hostile_names: sqlite3.Connection, smtp: MailServer, stored: Any) -> None:
    conn = hostile_names
    add_activations(conn, [(n, "O365-HOME-ESD", "DK", None) for n in range(1, 4)])
    add_codes(conn, stored, 3)
    accounts = {lang: f"{lang}.reader@example.com" for lang in LANGS}
    for n, lang in enumerate(LANGS, start=1):
        assert redeem(conn, key=n, account=accounts[lang], locale=lang).redeemed
    mail = replace(settings.mail, host="127.0.0.1", port=smtp.port, timeout_seconds=3, connections=1)
    async with store_of(settings) as db:
        relay = MailRelay(db, mail, Templates(auto_reload=False), PUBLIC_URL, clock=lambda: DURING)
        assert await relay.deliver_once() == 3
    received = {str(m["To"]): m for m in smtp.received}
    codes = {row["account_email"]: row["code"] for row in conn.execute(
        "SELECT r.account_email, k.code FROM redemptions r JOIN reward_codes k ON k.id = r.code_id")}
    assert sorted(codes.values()) == [reward_code(n) for n in range(3)]
    for lang in LANGS:
        email = received[accounts[lang]]
        assert email["Content-Language"] == lang
        text, html = parts(email)
        page = Email(html)
        code, offer = codes[accounts[lang]], f"{PUBLIC_URL}/offers/{SLUG}"
        # The layout: a header with the campaign's name, the code in its box, a button to the offer.
        assert page.tags[:3] == ["html", "head", "meta"] and "table" in page.tags
        assert NAMES[lang] in page.all_text  # the name, as text: its markup escaped
        assert page.tags.count("script") == 0 and page.tags.count("b") == 0
        assert page.classes["reward-code"] == [code]
        assert offer in page.links and page.links[offer]  # the button, with its words
        assert page.links[SUPPORT_DK] == SUPPORT_DK  # R-X16: Denmark's contact, as a link
        assert f"{PUBLIC_URL}/rewards" in page.links
        assert accounts[lang] in page.all_text  # whom it was sent to, in the footer
        # The text part: the same code, links and support contact, in the same language.
        for fact in (code, offer, SUPPORT_DK, f"{PUBLIC_URL}/rewards", accounts[lang], ACTIVATE[lang], NAMES[lang]):
            assert fact in text, (lang, fact)
        assert ACTIVATE[lang] in page.all_text
        assert "&lt;script&gt;" not in text  # text is not HTML: the name as typed


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize(("template", "context", "typed"), [
    ("review_rejected", {"reason": HOSTILE, "campaign": SLUG, "product_key": "*****-*****-*****-*****-ABCDE"}, HOSTILE),
    ("organisation_revoked", {"organisation": f"Club {HOSTILE}", "reason": HOSTILE}, f"Club {HOSTILE}"),
    ("donation_return", {"request": 7, "status": "completed", "reason": "", "organisation": f"Club {HOSTILE}"},
     f"Club {HOSTILE}"),
    ("donation_status", {"request": 7, "status": "held", "cause": "", "reason": HOSTILE, "organisation": "Club",
                         "items": [(f"Office {HOSTILE}", 2)]}, HOSTILE),
    ("signin_link", {"link": f"{PUBLIC_URL}/signin/T?x=<b>", "minutes": 15}, "Sign in"),
    ("low_stock", {"slug": "s", "name": f"Offer {HOSTILE}", "available": 3, "threshold": 10}, f"Offer {HOSTILE}"),
])
def test_every_email_is_in_the_layout_and_what_people_typed_stays_text(template: str, context: dict[str, Any], typed: str,
                                                                       lang: str) -> None:
    recipient = '"<script>x</script>"@example.com'  # a quoted local part may hold anything
    rendered = render_email(Templates(auto_reload=False), template, lang,
                            {**context, "public_url": PUBLIC_URL, "recipient": recipient}, service="Promo")
    page = Email(rendered.html)
    assert "script" not in page.tags and "b" not in page.tags[page.tags.index("body"):]
    assert page.tags.count("table") >= 2  # the layout's frame and column
    assert "Promo" in page.all_text and recipient in page.all_text and recipient in rendered.text
    if typed != "Sign in":
        assert typed in page.all_text and typed in rendered.text
    if template == "signin_link":
        assert f"{PUBLIC_URL}/signin/T?x=<b>" in page.links  # an attribute, escaped, read back whole
        assert f"{PUBLIC_URL}/signin/T?x=<b>" in rendered.text
    if template == "donation_status":  # its button, and the same link in the text
        assert f"{PUBLIC_URL}/nonprofit/requests/7" in page.links and f"{PUBLIC_URL}/nonprofit/requests/7" in rendered.text
    assert "\n" not in rendered.subject


@pytest.mark.parametrize(("contact", "href"), [
    ("https://support.microsoft.com/da-dk/contactus", "https://support.microsoft.com/da-dk/contactus"),
    ("+45 43 31 60 00", "tel:+4543316000"),
    ("80 88 80 88", "tel:80888088"),
    ("javascript:alert(1)", ""),  # neither a web address nor a number: text, never a link
    ("call 12", ""),
    ("12+34 56 78", ""),
])
def test_support_contacts_link_to_the_web_or_the_phone(contact: str, href: str) -> None:
    assert contact_href(contact) == href


def test_the_service_is_named_after_the_sender() -> None:
    assert service_name("Promo <no-reply@promo.invalid>") == "Promo"
    assert service_name("Kampagner A/S <kampagner@example.dk>") == "Kampagner A/S"
    assert service_name("no-reply@promo.invalid") == "Promo"


def test_the_development_mailbox_shows_the_html_part_in_a_script_free_frame(web_settings: Settings,
                                                                             shop: sqlite3.Connection) -> None:
    rendered = render_email(Templates(auto_reload=False), "review_rejected", "da",
                            {"reason": HOSTILE, "campaign": SLUG, "product_key": "*****-ABCDE", "public_url": PUBLIC_URL,
                             "recipient": "ann@example.com"}, service="Promo")
    message = EmailMessage(policy=email_policy.SMTP)
    message["Subject"], message["To"], message["Message-ID"] = rendered.subject, "ann@example.com", "<x.1@promo.test>"
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    sink = SinkHandler()
    envelope = SimpleNamespace(original_content=message.as_bytes(), content=None, mail_from="p@promo.test",
                               rcpt_tos=["ann@example.com"])
    asyncio.run(sink.handle_DATA(None, None, envelope))  # as the development sink receives a message
    with TestClient(create_app(web_settings), follow_redirects=False) as client:
        client.app.state.sink = sink  # type: ignore[attr-defined]
        page = client.get("/dev/mail/1")
        assert page.status_code == 200
        assert 'src="/dev/mail/1/html"' in page.text and 'sandbox=""' in page.text
        assert "<script>alert" not in page.text  # the text part, escaped
        framed = client.get("/dev/mail/1/html")
        policy = framed.headers["content-security-policy"]
        assert framed.status_code == 200 and "default-src 'none'" in policy and "sandbox" in policy
        assert "frame-ancestors 'self'" in policy and framed.headers["x-frame-options"] == "SAMEORIGIN"
        assert len(framed.headers.get_list("content-security-policy")) == 1  # not the site's as well (it forbids framing)
        assert HOSTILE in Email(framed.text).all_text and "script" not in Email(framed.text).tags
        # Every other page keeps the site's policy, framing forbidden.
        assert "frame-ancestors 'none'" in client.get("/dev/mail").headers["content-security-policy"]
        assert client.get("/dev/mail/2/html").status_code == 404
