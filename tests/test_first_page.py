"""Issue 15, item 11: the first page never lands a visitor on "no offers for United States"
from a guess (the region of their preferred language chooses the country when it names one,
otherwise every open offer is shown and they choose), and an offer page explains the three
steps with both windows and the code's expiry in the campaign's zone, named, in the
visitor's language. Through a real `promo serve`, except the instants at the windows'
edges, which need a frozen clock (the ASGI app with its lifespan, tests/support/web.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from babel import dates
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from promo.i18n import Localizer
from tests.support.database import SLUG
from tests.support.offer_shop import TODAY, Shop, served_shop
from tests.support.pagetext import read_page

OPEN = ("open-today", "narrow", "late", "paused", "empty", "capped", "auckland", "los-angeles")
NOT_OPEN = ("not-yet", "closed", "draft")
NO_OFFERS_FOR = "There are no open offers for %(country)s right now."


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    with served_shop(tmp_path_factory.mktemp("first-page")) as served:
        yield served


def first_page(served: Shop, accept_language: str | None) -> str:
    response = served.get("/", headers={"Accept-Language": accept_language} if accept_language is not None else None)
    assert response.status_code == 200, response.text
    assert "promo_country" not in response.headers.get("set-cookie", "")  # a header is no choice to remember
    return response.text


def selected(page: str) -> list[str]:
    return re.findall(r'<option value="(\w*)" selected>', page)


def dead_end(page: str) -> bool:
    """Does the page say there is nothing for a country, in any of our languages?"""
    return any(Localizer(lang).gettext(NO_OFFERS_FOR).split("%")[0] in page for lang in ("en", "da", "nb"))


@pytest.mark.parametrize(("header", "lang", "country"), [
    ("da-DK,da;q=0.9,en-US;q=0.8,en;q=0.7", "da", "DK"),  # Chrome in Danish
    ("nb-NO,nb;q=0.9,no;q=0.8", "nb", "NO"),
    ("en-GB,en;q=0.9", "en", "GB"),
    ("de-AT,de;q=0.9", "en", "AT"),  # a region is a region, whatever the language we have
])
def test_the_region_of_the_preferred_language_chooses_the_country(served: Shop, header: str, lang: str, country: str) -> None:
    page = first_page(served, header)
    l10n = Localizer(lang)
    assert f'<html lang="{lang}">' in page and selected(page) == [country]
    text = read_page(page).text
    assert l10n.gettext("The offers you can redeem in %(country)s.") % {"country": l10n.country(country)} in text
    assert all(f'href="/offers/{slug}"' in page for slug in OPEN)  # every open offer sold there
    assert not any(f'href="/offers/{slug}"' in page for slug in NOT_OPEN)


@pytest.mark.parametrize(("header", "lang"), [
    ("da", "da"),
    ("nb", "nb"),
    ("no", "nb"),
    ("en", "en"),
    ("da,en-US;q=0.7,en;q=0.3", "da"),  # Firefox in Danish: the region of a less preferred language is no place
    (None, "en"),
    ("en-US,en;q=0.9", "en"),  # a region with no offer is a hint, not a dead end
    ("*", "en"),
])
def test_without_a_region_every_open_offer_is_shown_and_the_visitor_chooses(served: Shop, header: str | None,
                                                                           lang: str) -> None:
    page = first_page(served, header)
    l10n = Localizer(lang)
    assert f'<html lang="{lang}">' in page
    assert selected(page) == [""]  # "Choose a country", not Andorra, not the United States
    assert f'<option value="" selected>{l10n.gettext("Choose a country")}</option>' in page
    assert all(f'href="/offers/{slug}"' in page for slug in OPEN)
    assert not dead_end(page)
    text = read_page(page).text
    assert l10n.gettext("Every open offer. Choose your country to see the ones that apply where you bought your product.") in text


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(header=st.one_of(
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=300),
    st.lists(st.sampled_from(["da", "-", "DK", "US", "xx", "_", ";", "q=", "0", "1.5", "abc", ",", "*", " ", "nb-NO",
                              "en-US", "zh-Hant-TW", "es-419", "i-klingon", "x-private", ";q=-1", "\t"]),
             max_size=20).map("".join),
).map(str.strip))  # a header value cannot start or end with white space
def test_any_accept_language_header_gets_a_page_and_no_dead_end(served: Shop, header: str) -> None:
    response = served.get("/", headers={"Accept-Language": header})
    assert response.status_code == 200 and "Traceback" not in response.text
    page = response.text
    assert re.search(r'<html lang="(en|da|nb)">', page)
    assert 'href="/offers/open-today"' in page and not dead_end(page)
    assert len(selected(page)) == 1


def test_an_explicit_choice_is_honoured_and_remembered(served: Shop) -> None:
    chosen = served.get("/?country=US", headers={"Accept-Language": "en-GB"})
    assert chosen.status_code == 200 and selected(chosen.text) == ["US"]
    assert NO_OFFERS_FOR % {"country": "United States"} in read_page(chosen.text).text  # the visitor's word, not a guess
    assert any(c.startswith("promo_country=US;") for c in chosen.headers.get_list("set-cookie"))
    again = served.get("/", headers={"Accept-Language": "da-DK", "Cookie": "promo_country=US"})
    assert selected(again.text) == ["US"] and "Der er ingen aktuelle tilbud for USA lige nu." in again.text


def test_the_countries_are_named_and_ordered_in_the_readers_language(served: Shop) -> None:
    page = first_page(served, "da-DK")
    names = re.findall(r'<option value="[A-Z]{2}"\s*(?:selected)?>([^<]+)</option>', page)
    assert names == sorted(names) and "Østrig" in names and "Danmark" in names and "Denmark" not in names


# ---- the offer page -------------------------------------------------------------------

def steps(page: str) -> dict[str, str]:
    found = {name: re.search(rf'<li id="step-{name}">(.*?)</li>', page, re.S) for name in ("buy", "redeem", "email")}
    assert all(found.values()), "the three steps: buy and activate, redeem, receive the code by email"
    return {name: read_page(f"<p>{m.group(1)}</p>").text for name, m in found.items() if m}


def spaced(text: str) -> str:
    return " ".join(text.split())  # as read_page gives text (CLDR puts narrow no-break spaces in times)


def zone_sentence(page: str) -> str:
    found = re.search(r'<p class="small" id="zone">(.*?)</p>', page, re.S)
    assert found
    return read_page(f"<p>{found.group(1)}</p>").text


@pytest.mark.parametrize("lang", ["en", "da", "nb"])
def test_the_offer_page_explains_the_three_steps_in_the_visitors_language(served: Shop, lang: str) -> None:
    page = served.get("/offers/open-today", lang=lang).text
    l10n = Localizer(lang)
    first, last = l10n.date(TODAY - timedelta(days=30)), l10n.date(TODAY + timedelta(days=1))
    told = steps(page)
    assert first in told["buy"] and last in told["buy"] and l10n.gettext("Buy and activate") in told["buy"]
    assert first in told["redeem"] and last in told["redeem"]
    assert l10n.date(TODAY + timedelta(days=365)) in told["email"]  # the code's own expiry (R-X9)
    reward = {"en": "12-month Xbox Live Gold membership", "da": "12 måneders Xbox Live Gold-medlemskab",
              "nb": "12 måneders Xbox Live Gold-medlemskap"}[lang]
    assert reward in told["email"]
    assert "UTC" in zone_sentence(page)


@pytest.mark.parametrize("lang", ["en", "da", "nb"])
@pytest.mark.parametrize(("slug", "zone", "city"), [("auckland", "Pacific/Auckland", "Auckland"),
                                                    ("los-angeles", "America/Los_Angeles", "Los Angeles")])
def test_the_windows_edges_are_shown_in_the_campaigns_zone_not_in_utc(served: Shop, lang: str, slug: str, zone: str,
                                                                       city: str) -> None:
    """Auckland's first day starts on the previous UTC date; Los Angeles's last day ends on
    the next one. The page says the campaign's own days and times, and names its zone."""
    tz = ZoneInfo(zone)
    opens = datetime.combine(TODAY - timedelta(days=30), time(0), tzinfo=tz)
    closes = datetime.combine(TODAY + timedelta(days=2), time(0), tzinfo=tz) - timedelta(microseconds=1)
    page = served.get(f"/offers/{slug}", headers={"Accept-Language": lang}).text  # no region: no "where you are"
    sentence = zone_sentence(page)
    assert f"{city} ({zone})" in sentence
    for instant in (opens, closes):
        assert spaced(dates.format_datetime(instant, "medium", tzinfo=tz, locale=lang)) in sentence
        assert spaced(dates.format_datetime(instant, "medium", tzinfo=ZoneInfo("UTC"), locale=lang)) not in sentence
    edge = opens if slug == "auckland" else closes
    assert edge.astimezone(UTC).date() != edge.date()  # the edge this zone tests really falls on another UTC date
    redeem = steps(page)["redeem"]
    l10n = Localizer(lang)
    assert l10n.date(TODAY - timedelta(days=30)) in redeem and l10n.date(TODAY + timedelta(days=1)) in redeem
    assert l10n.date(edge.astimezone(UTC).date()) not in redeem


# ---- the exact instants, with a frozen clock ------------------------------------------

CPH = ZoneInfo("Europe/Copenhagen")
OPENS = datetime(2013, 7, 18, tzinfo=CPH)  # 2013-07-17T22:00:00Z
CLOSES = datetime(2013, 11, 1, tzinfo=CPH)  # 2013-10-31T23:00:00Z, the first instant after the window
TICK = timedelta(microseconds=1)


@pytest.mark.parametrize(("instant", "is_open"), [
    (OPENS - TICK, False), (OPENS, True), (CLOSES - TICK, True), (CLOSES, False),
])
def test_the_shipped_offer_opens_and_closes_at_its_zones_midnight(client: TestClient, instant: datetime,
                                                                   is_open: bool) -> None:
    with freeze_time(instant.astimezone(UTC), real_asyncio=True):
        offer = client.get(f"/offers/{SLUG}", headers={"Accept-Language": "da-DK"}).text
        home = client.get("/?country=DK").text
    assert ("Indløs nu" in offer) is is_open
    assert (f'href="/offers/{SLUG}"' in home) is is_open
    if instant < OPENS:
        assert "Indløsningen åbner den 18. juli 2013." in offer
    told, sentence = steps(offer), zone_sentence(offer)
    assert "18. juli 2013" in told["redeem"] and "31. oktober 2013" in told["redeem"]
    assert "31. oktober 2014" in told["email"]
    assert "København (Europe/Copenhagen)" in sentence
    assert "18. jul. 2013 00.00.00 CEST" in sentence and "31. okt. 2013 23.59.59 CET" in sentence
    assert "17. jul. 2013" not in sentence and "1. nov. 2013" not in sentence  # the UTC dates of those instants
