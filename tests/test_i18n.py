"""Catalogs: complete for every language, in step with the code, placeholders intact."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from babel.messages.pofile import read_po
from jinja2 import Environment

from promo.db import transaction
from promo.i18n import Localizer, languages, negotiate, translations
from promo.reviews import reject
from promo.templating import Templates
from tests.support.offer_shop import day
from tests.support.pagetext import read_page

ROOT = Path(__file__).resolve().parent.parent
LOCALES = ROOT / "promo" / "locale"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def catalog(lang: str):  # type: ignore[no-untyped-def]
    with open(LOCALES / lang / "LC_MESSAGES" / "messages.po", "rb") as handle:
        return read_po(handle, locale=lang)


def test_english_danish_and_norwegian_are_available() -> None:
    assert languages() == ("en", "da", "nb")


def test_the_template_is_in_step_with_the_code(tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    pybabel = str(Path(sys.executable).parent / "pybabel")
    subprocess.run([pybabel, "extract", "-F", "babel.cfg", "-k", "N_", "-k", "_", "-k", "gettext", "--no-location",
                    "--omit-header", "--sort-output", "-o", str(fresh), "."], cwd=ROOT, check=True, capture_output=True)
    with open(fresh, "rb") as handle:
        extracted = {m.id for m in read_po(handle) if m.id}
    for lang in ("da", "nb"):
        translated = {m.id for m in catalog(lang) if m.id}
        assert extracted - translated == set(), f"{lang}: run scripts/i18n extract and translate the new strings"


@pytest.mark.parametrize("lang", ["da", "nb"])
def test_every_string_is_translated_with_the_same_placeholders(lang: str) -> None:
    for message in catalog(lang):
        if not message.id:
            continue
        assert message.string, f"{lang}: {message.id!r} is not translated"
        assert sorted(PLACEHOLDER.findall(message.id)) == sorted(PLACEHOLDER.findall(message.string)), message.id


@pytest.mark.parametrize(("choice", "header", "expected"), [
    ("da", "en-GB,en;q=0.9", "da"),  # the user's choice wins
    (None, "nb-NO,nb;q=0.9,en;q=0.5", "nb"),
    (None, "no", "nb"),  # Norwegian readers get Bokmål
    (None, "nn-NO", "nb"),
    (None, "fr-FR,da;q=0.5", "da"),
    (None, "fr-FR,de;q=0.5", "en"),
    ("xx", None, "en"),
    (None, "da;q=0,en", "en"),
])
def test_language_negotiation(choice: str | None, header: str | None, expected: str) -> None:
    assert negotiate(choice, header) == expected


def test_dates_and_country_names_follow_the_language() -> None:
    from datetime import date
    assert Localizer("da").date(date(2014, 10, 31)) == "31. oktober 2014"
    assert Localizer("nb").date(date(2014, 10, 31)) == "31. oktober 2014"
    assert Localizer("en").date(date(2014, 10, 31)) == "October 31, 2014"
    assert (Localizer("da").country("DE"), Localizer("nb").country("DE"), Localizer("en").country("DE")) == \
        ("Tyskland", "Tyskland", "Germany")
    assert translations("da").gettext("Product key") == "Produktnøgle"
    assert translations("nb").gettext("Product key") == "Produktnøkkel"


@pytest.mark.parametrize("lang", ["en", "da", "nb"])
@pytest.mark.parametrize("autoescape", [True, False])
def test_the_direct_gettext_renders_as_jinjas_newstyle_gettext(lang: str, autoescape: bool) -> None:
    """Pages use a faster `_()` (promo/templating.py); it must escape and format exactly as
    Jinja's own newstyle gettext, in HTML (escaped) and in plain-text emails (not escaped)."""
    source = ('{{ _("Signed in as %(email)s", email=who) }}|{{ _("Sign out") }}|{{ _("100%% sure") }}'
              '|{% trans %}Redeem{% endtrans %}')
    ours = Templates(auto_reload=False)._environments[lang].overlay(autoescape=autoescape)
    stock = Environment(extensions=["jinja2.ext.i18n"], autoescape=autoescape)
    stock.install_gettext_translations(translations(lang), newstyle=True)  # type: ignore[attr-defined]
    values = {"who": "<b>a&b@example.com</b>"}
    rendered = ours.from_string(source).render(values)
    assert rendered == stock.from_string(source).render(values)
    assert ("&lt;b&gt;" in rendered) is autoescape


def test_fragments_are_rendered_once_per_argument_set_in_production() -> None:
    """The redeem form's country options come from a cache keyed by language, country list
    and choice; each key renders its own output, and development renders afresh."""
    templates = Templates(auto_reload=False)
    countries = Localizer("da").countries(("DK", "NO", "SE"))
    first = templates.fragment("consumer/_country_options.html", "da", countries=countries, selected="NO")
    assert templates.fragment("consumer/_country_options.html", "da", countries=countries, selected="NO") is first
    assert '<option value="NO" selected>Norge</option>' in first and "Vælg et land" in first
    other = templates.fragment("consumer/_country_options.html", "da", countries=countries, selected="DK")
    assert '<option value="DK" selected>Danmark</option>' in other and '<option value="NO" selected>' not in other
    english = templates.fragment("consumer/_country_options.html", "en", countries=Localizer("en").countries(("NO",)), selected="")
    assert "Norway" in english and "selected" not in english
    development = Templates(auto_reload=True)
    assert development.fragment("consumer/_country_options.html", "da", countries=countries, selected="NO") == first
    assert development.fragment("consumer/_country_options.html", "da", countries=countries, selected="NO") is not first


# ---- No English in a Danish or Norwegian page or email (issue 15, item 9) ----------------
#
# What a reader of `lang` must never meet: the English side of every text we translate
# (each msgid whose translation differs, cut at its placeholders) and of every name we give
# per language (campaigns, rewards, sponsors, products; also cut at commas), less anything
# that reads the same in `lang` (Office 365, Xbox Live Gold, Microsoft Luxembourg S.à.r.l.).
# A name without a translation stays on the English side: its fallback is a finding here.

_PLACEHOLDER_OR_MARKUP = re.compile(r"%\(\w+\)s|<[^>]+>")
_URL = re.compile(r"\b(?:https?://|www\.)\S+|\S+@\S+")


def _phrases(text: str, *, commas: bool = False) -> set[str]:
    parts = _PLACEHOLDER_OR_MARKUP.split(text)
    if commas:
        parts = [piece for part in parts for piece in part.split(", ")] + parts
    out = set()
    for part in parts:
        phrase = part.strip(" .,:;!?“”«»\"'()–-·\n")
        words = re.findall(r"[^\W\d_]+", phrase)
        if len(words) >= 2 or (words and len(words[0]) >= 5):
            out.add(phrase)
    return out


def english_phrases(lang: str, names: list[tuple[str, str | None]]) -> set[str]:
    """`names`: (English, in `lang` or None when it has none) for every name shown to customers."""
    ours = "\n".join([str(m.string) for m in catalog(lang) if m.id and m.string] + [local for _, local in names if local])
    english: set[str] = set()
    for message in catalog(lang):
        if message.id and message.string and message.string != message.id:
            english |= _phrases(str(message.id))
    for name, local in names:
        if name != local:
            english |= {name.strip()} | _phrases(name, commas=True)
    return {phrase for phrase in english if phrase not in ours}


def english_found(text: str, phrases: set[str]) -> list[str]:
    """The English phrases in `text` (whole words, links and addresses left out)."""
    text = " ".join(_URL.sub(" ", text).split())
    return sorted(p for p in phrases if re.search(rf"(?<!\w){re.escape(p)}(?!\w)", text))


def names_customers_read(conn: Any, lang: str) -> list[tuple[str, str | None]]:
    """(English, in `lang`) of every campaign, reward, sponsor and product name in the database."""
    from promo.campaign_store import list_campaigns
    from promo.catalog import load_catalog

    out: list[tuple[str, str | None]] = []
    for stored in list_campaigns(conn):
        campaign = stored.campaign
        out.append((campaign.name, campaign.names.get(lang)))
        if campaign.kind != "purchase_offer":
            continue
        out.append((campaign.reward.name, _in(campaign.reward, "names", lang)))
        if campaign.descriptions.get("en"):
            out.append((campaign.descriptions["en"], campaign.descriptions.get(lang)))
        for sponsor in campaign.sponsors:
            out += [(sponsor.name, _in(sponsor, "names", lang)), (sponsor.law, _in(sponsor, "laws", lang))]
    for sku in load_catalog(conn).values():
        out.append((sku.name, _in(sku, "names", lang)))
    return out


def _in(thing: Any, field: str, lang: str) -> str | None:
    return dict(getattr(thing, field, ())).get(lang)  # (a name with no translations has none in `lang`)


def test_the_shipped_offer_and_catalog_name_everything_in_every_language() -> None:
    """The fallback to English (a name missing in a language) never happens in what we ship."""
    from promo.campaigns import parse_campaign_file, shipped_campaign_text
    from promo.catalog import shipped_catalog

    products = {s.sku: s for s in shipped_catalog()}
    offer = parse_campaign_file(shipped_campaign_text("office365-xbox-gold-2013"), products)
    for lang in ("da", "nb"):
        assert lang in offer.names and lang in offer.reward.names
        assert all(lang in sponsor.laws for sponsor in offer.sponsors)
        assert [s.sku for s in products.values() if lang not in dict(s.names)] == []


@pytest.fixture(scope="module")
def sweep(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Every consumer page and every email of the offers, rendered by a real `promo serve`
    in Danish and in Norwegian, as {(what, lang): text a person reads}."""
    from tests.support.mailserver import MailServer
    from tests.support.offer_shop import account, served_shop
    from tests.support.refusal_cases import refusal_pages

    smtp = MailServer().start()
    directory = tmp_path_factory.mktemp("sweep")
    read: dict[tuple[str, str], str] = {}
    visited: set[str] = set()
    try:
        with served_shop(directory, PROMO_MAIL_HOST="127.0.0.1", PROMO_MAIL_PORT=str(smtp.port),
                         PROMO_REVIEWS_RECEIPTS_DIR=str(directory / "receipts")) as shop:
            def page(what: str, route: str, response: Any, status: int = 200) -> None:
                assert response.status_code == status, (what, response.status_code, response.text[:500])
                read[(what, lang)] = response.text
                visited.add(route)

            for lang in ("da", "nb"):
                winner = account("winner" if lang == "da" else "winner-nb")
                reviewer_key = f"REVW{lang[0].upper()}-AAAAA-BBBBB-CCCCC-DDDDD"
                page("home", "consumer.home", shop.get("/", lang=lang))
                page("home, no region", "consumer.home", shop.get("/", headers={"Accept-Language": lang}))
                page("home, chosen country without offers", "consumer.home", shop.get("/?country=US", lang=lang))
                for slug in ("open-today", "not-yet", "closed", "auckland"):
                    page(f"offer {slug}", "consumer.offer", shop.get(f"/offers/{slug}", lang=lang))
                    page(f"terms {slug}", "consumer.terms", shop.get(f"/offers/{slug}/terms", lang=lang))
                page("redeem form", "consumer.redeem_form", shop.get("/offers/open-today/redeem", lang=lang, as_account=winner))
                page("review form", "consumer.review_form",
                     shop.get(f"/offers/open-today/review?product_key={reviewer_key}", lang=lang, as_account=winner))
                page("review form with errors", "consumer.review",
                     shop.post("/offers/open-today/review", {"product_key": "x"}, lang=lang, as_account=winner), 422)
                receipt = {"receipt": ("receipt.pdf", b"%PDF-1.4\n% a receipt\n", "application/pdf")}
                sent = httpx.post(shop.url + "/offers/open-today/review", headers=shop._headers(lang, winner, None), files=receipt,
                                  data={"csrf": shop.session(winner)[1], "product_key": reviewer_key, "sku": "O365-HOME-ESD",
                                        "country": "DK", "purchased_at": day(-2), "activated_at": day(-2)}, timeout=30)
                page("review sent", "consumer.review", sent)
                number = 19 if lang == "da" else 20
                redeemed = shop.redeem("open-today", number, as_account=winner, country="DK" if lang == "da" else "NO",
                                       lang=lang)
                assert redeemed.status_code == 303, redeemed.text
                location = redeemed.headers["location"]
                visited.add("consumer.redeem")
                page("reward", "consumer.reward", shop.get(location, lang=lang, as_account=winner))
                for resent in ("yes", "limited"):
                    page(f"reward, resent={resent}", "consumer.reward", shop.get(f"{location}?resent={resent}", lang=lang,
                                                                                    as_account=winner))
                page("my rewards", "consumer.rewards", shop.get("/rewards", lang=lang, as_account=winner))
                page("my rewards, none", "consumer.rewards", shop.get("/rewards", lang=lang, as_account=account("nobody")))
                page("sign-in form", "consumer.signin_form", shop.get("/signin", lang=lang))
                csrf_cookie = "promo_csrf=sweep"
                page("sign-in error", "consumer.signin", httpx.post(
                    shop.url + "/signin", headers={**shop._headers(lang, None, None), "Cookie": csrf_cookie},
                    data={"csrf": "sweep", "email": "not an address", "next": "/"}, timeout=30), 422)
                asked = httpx.post(shop.url + "/signin", headers={**shop._headers(lang, None, None), "Cookie": csrf_cookie},
                                   data={"csrf": "sweep", "email": f"signin-{lang}@example.com", "next": "/"}, timeout=30)
                assert asked.status_code == 303
                page("sign-in sent", "consumer.signin_sent", shop.get("/signin/sent", lang=lang))
                page("sign-in link not valid", "consumer.signin_link", shop.get("/signin/not-a-token", lang=lang), 400)
                page("not found", "consumer.offer", shop.get("/offers/no-such-offer", lang=lang), 404)
                page("form expired", "consumer.redeem", shop.post("/offers/open-today/redeem", {"csrf": "forged"}, lang=lang,
                                                                   as_account=winner), 403)
                claim = shop.conn.execute("SELECT id FROM review_claims WHERE product_key = :k",
                                          {"k": reviewer_key.replace("-", "")}).fetchone()
                with transaction(shop.conn):
                    reject(shop.conn, claim[0], reviewer="support@example.com", now=datetime.now(UTC), ip=None,
                           reason={"da": "Kvitteringen er fra 2012.", "nb": "Kvitteringen er fra 2012."}[lang])
            for (reason, lang), (_status, html) in refusal_pages(shop, ("da", "nb")).items():
                read[(f"refusal {reason}", lang)] = html
            visited |= {"consumer.redeem", "consumer.resend", "consumer.signout", "consumer.language"}  # redirects only
            expected = {("signin_link", "da"), ("signin_link", "nb"), ("reward_code", "da"), ("reward_code", "nb"),
                        ("review_rejected", "da"), ("review_rejected", "nb")}
            templates = {}  # Message-ID -> template, from the outbox
            deadline = time.time() + 20
            while not expected <= set(templates.values()) and time.time() < deadline:
                time.sleep(0.1)
                rows = shop.conn.execute("SELECT message_id, template, locale FROM outbox WHERE status = 'sent'")
                templates = {r["message_id"]: (r["template"], r["locale"]) for r in rows}
            for mail in smtp.received:
                kind, lang = templates.get(str(mail["Message-ID"]), ("?", "?"))
                if lang not in ("da", "nb"):
                    continue  # the set-up's own redemptions, in English
                assert str(mail["Content-Language"]) == lang
                text = mail.get_body(("plain",)).get_content()
                html = mail.get_body(("html",)).get_content()
                read[(f"email {kind} (subject and text)", lang)] = f'<html lang="{lang}"><p>{mail["Subject"]}</p><pre>{text}</pre></html>'
                read[(f"email {kind} (html)", lang)] = html
            names = {lang: names_customers_read(shop.conn, lang) for lang in ("da", "nb")}
            yield {"read": read, "visited": visited, "emails": {(k.split()[1], lang) for k, lang in read if k.startswith("email")},
                   "expected_emails": expected, "names": names}
    finally:
        smtp.stop()


def test_the_sweep_covers_every_consumer_page_and_email(sweep: dict[str, Any]) -> None:
    from promo.views import consumer, consumer_account  # the sign-in pages are consumer pages too

    routes = [*consumer.routes, *consumer_account.routes]
    assert {r.name for r in routes} - sweep["visited"] == set()
    assert sweep["emails"] == sweep["expected_emails"]
    shown_to_staff_or_nonprofits = {"low_stock", "donation_keys", "donation_return", "donation_status",
                                    "organisation_revoked"}  # not the offers' customers
    templates = {p.name for p in (ROOT / "templates" / "email").iterdir() if p.is_dir()}
    assert templates - shown_to_staff_or_nonprofits == {kind for kind, _ in sweep["expected_emails"]}


@pytest.mark.parametrize("lang", ["da", "nb"])
def test_no_english_phrase_in_a_danish_or_norwegian_page_or_email(sweep: dict[str, Any], lang: str) -> None:
    phrases = english_phrases(lang, sweep["names"][lang])
    found = {}
    for (what, page_lang), html in sweep["read"].items():
        if page_lang != lang:
            continue
        page = read_page(html)
        assert page.lang == lang, what
        english = english_found(page.text + " " + page.folded, phrases)
        if english:
            found[what] = english
    assert found == {}


@pytest.mark.parametrize("lang", ["da", "nb"])
def test_the_check_catches_an_english_fragment(sweep: dict[str, Any], lang: str) -> None:
    """The English side is not empty, and a page with one English name or sentence in it fails."""
    phrases = english_phrases(lang, sweep["names"][lang])
    html = sweep["read"][("offer open-today", lang)]
    assert english_found(read_page(html).text, phrases) == []
    for english in ("12-month Xbox Live Gold membership",  # the reward's English name
                    "Office 365 Home, full packaged product",  # a product's English name
                    "full packaged product",  # part of one
                    "1st Floor",  # part of a sponsor's address
                    "Check your email",  # an untranslated text
                    "Activate the code by"):  # part of one, around its placeholder
        spoiled = html.replace("</h1>", f" {english}</h1>", 1)
        assert english_found(read_page(spoiled).text, phrases), english
