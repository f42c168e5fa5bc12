"""The offer's own terms (R-X17 … R-X22), its support routes (R-X16) and sponsors by where the
customer lives (R-X13) in the campaign file: what the shipped offer carries, and how a file
that gets them wrong is refused (a field that names the section and the language)."""

from __future__ import annotations

import copy
import sqlite3
import tomllib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promo.campaigns import campaign_from_dict, parse_campaign_file, render_campaign_file, shipped_campaign_text
from promo.campaigns.terms import Block, Item, blocks, canonical_terms, terms_version
from promo.catalog import shipped_catalog
from promo.errors import InputError
from promo.terms_store import accepted_terms, terms_of_version
from tests.support.database import SLUG

CATALOG = {s.sku: s for s in shipped_catalog()}


def shipped() -> dict[str, Any]:
    return tomllib.loads(shipped_campaign_text(SLUG))


def errors_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InputError) as caught:
        campaign_from_dict(data, CATALOG)
    return {e.field: e.message + (f" ({e.rule})" if e.rule else "") for e in caught.value.errors}


def section(data: dict[str, Any], section_id: str) -> dict[str, Any]:
    return next(s for s in data["terms"] if s["id"] == section_id)


# Sentences of the Danish original (../shared/seeds/003_2cbfa96fc612a3cc.txt), by the rule they state.
DANISH = {
    "R-X18": "Xbox Live Gold-koden kan overdrages før aktivering, men kan ikke sælges. Efter aktivering kan koden ikke overdrages.",
    "R-X19": "Du accepterer, at din deltagelse i tilbuddet kan have skattemæssige virkninger for dig, og at du er ansvarlig "
             "for alle tilhørende skatter og afgifter.",
    "R-X20": "Der kræves internetforbindelse. Tilbuddet kan kun indløses online. Der kan påløbe gebyrer for download og "
             "dataforbrug. Kontakt internetudbyderen for at få flere oplysninger.",
    "R-X21": "du har rets- og handleevne i det land/område, du bor.",
    "R-X22": "De øvrige vilkår og betingelser forbliver retsgyldige.",
    "R-X17": "Du forstår og accepterer, at Microsoft må bruge og gemme oplysninger om dig i overensstemmelse med vores "
             "Politik om beskyttelse af personlige oplysninger.",
    "R-X13": "Du og vi udpeger uigenkaldeligt byretten i Taipei som kompetent og værneting for alle tvister",
}
NORWEGIAN = {
    "R-X18": "Xbox Live Gold-koden kan overdras før aktivering, men kan ikke selges. Etter aktivering kan koden ikke overdras.",
    "R-X19": "du er ansvarlig for alle tilhørende skatter og avgifter",
    "R-X20": "Det kreves internettilkobling. Tilbudet kan bare løses inn på nettet.",
    "R-X21": "du har rettslig handleevne i landet/området der du bor.",
    "R-X17": "Personvernerklæringen vår er en del av disse vilkårene og betingelsene",
}
ENGLISH = {
    "R-X18": "The Xbox Live Gold code may be transferred before activation, but it cannot be sold. After activation the code "
             "cannot be transferred.",
    "R-X19": "you are responsible for all related taxes and duties",
    "R-X20": "An internet connection is required. The offer can only be redeemed online. Download and data charges may apply.",
    "R-X21": "you have legal capacity in the country/region where you live.",
    "R-X17": "Our Privacy Policy is part of these terms and conditions",
}


def test_the_shipped_offer_carries_the_seeds_terms_in_english_danish_and_norwegian() -> None:
    campaign = parse_campaign_file(shipped_campaign_text(SLUG), CATALOG)
    terms = campaign.terms
    assert terms is not None and terms.languages == ("en", "da", "nb")
    assert [s.id for s in terms.sections] == ["offer", "how_to_take_part", "periods", "online", "restrictions", "products",
                                             "countries", "requirements", "support", "privacy", "taxes", "representations",
                                             "other", "sponsor"]
    by_rule = {rule: s for s in terms.sections for rule in s.rules}
    for rule in ("R-X13", "R-X16", "R-X17", "R-X18", "R-X19", "R-X20", "R-X21", "R-X22"):
        assert rule in by_rule, f"no section states {rule}"
    for lang, sentences in (("da", DANISH), ("nb", NORWEGIAN), ("en", ENGLISH)):
        for rule, sentence in sentences.items():
            assert sentence in by_rule[rule].text[lang], (lang, rule)
    # Every section says the same in every language: the same number of paragraphs and items.
    for s in terms.sections:
        shapes = {lang: [len(b.items) for b in blocks(s.text[lang])] for lang in terms.languages}
        assert shapes["en"] == shapes["da"] == shapes["nb"], s.id
    # The email's summary covers the terms a customer agrees to (R-X17 … R-X22).
    summarised = {rule for s in terms.sections if s.summary for rule in s.rules}
    assert {"R-X17", "R-X18", "R-X19", "R-X20", "R-X21", "R-X22"} <= summarised
    assert all(len(terms.summaries(lang)) == len(terms.summaries("en")) for lang in terms.languages)


def test_the_shipped_offer_has_three_support_routes_and_laws_in_every_language() -> None:
    campaign = parse_campaign_file(shipped_campaign_text(SLUG), CATALOG)
    support = campaign.support
    assert support.default == "https://support.microsoft.com/contactus"
    assert support.product == "https://office.com/support" and support.reward == "https://support.xbox.com"
    assert support.route_for("DK").contact.endswith("/da-dk/contactus") and not support.route_for("DK").general
    assert support.route_for("FI").contact == support.default and support.route_for("FI").general
    # R-X13: every one of the 38 countries has a sponsor, and each law reads in da and nb.
    assert set(campaign.residence_countries or ()) == set(campaign.countries)
    for sponsor in campaign.sponsors:
        assert set(sponsor.laws) == {"da", "nb"}
    assert campaign.sponsor_for("CA").law_in("da") == "staten Washington"
    assert campaign.sponsor_for("CA").law_in("nb") == "delstaten Washington"


def test_the_version_is_the_hash_of_every_language_and_follows_any_change() -> None:
    campaign = parse_campaign_file(shipped_campaign_text(SLUG), CATALOG)
    version = campaign.terms.version
    assert version == terms_version(canonical_terms(campaign.terms.as_list())) and len(version) == 64
    # Languages listed in another order: the same terms, the same version.
    data = shipped()
    for s in data["terms"]:
        s["text"] = dict(reversed(list(s["text"].items())))
    assert campaign_from_dict(data, CATALOG).terms.version == version
    # One character changed in one language: another version.
    changed = shipped()
    section(changed, "taxes")["text"]["nb"] += " "  # only whitespace at the end: stripped, the same version
    assert campaign_from_dict(changed, CATALOG).terms.version == version
    section(changed, "taxes")["text"]["nb"] = section(changed, "taxes")["text"]["nb"].replace("avgifter", "gebyrer")
    assert campaign_from_dict(changed, CATALOG).terms.version != version


def _without(path: str) -> Any:
    def change(data: dict[str, Any]) -> None:
        section_id, key, lang = path.split(".")
        del section(data, section_id)[key][lang]
    return change


@pytest.mark.parametrize(("change", "field", "words"), [
    (_without("taxes.text.nb"), "terms[10].text.nb", ["'taxes'", "Norwegian Bokmål (nb)", "en, da, nb"]),
    (_without("online.title.da"), "terms[3].title.da", ["'online'", "Danish (da)"]),
    (_without("privacy.summary.en"), "terms[9].summary.en", ["'privacy'", "English (en)"]),
    (lambda d: d["terms"][0]["text"].update(sv="Erbjudandet"), "terms[0].text.sv", ["unknown language 'sv'"]),
    (lambda d: d["terms"][1].update(id="offer"), "terms[1].id", ["already the id of another section"]),
    (lambda d: d["terms"][1].update(id="Has Spaces"), "terms[1].id", ["lower-case"]),
    (lambda d: d["terms"][2].update(rules=["X18"]), "terms[2].rules", ["rule ids"]),
    (lambda d: d["terms"][2].pop("text"), "terms[2].text", ["is required"]),
    (lambda d: d["terms"][2]["text"].update(en="   "), "terms[2].text.en", ["'periods' has no text in English"]),
    (lambda d: d["terms"][2]["text"].update(en=7), "terms[2].text.en", ["must be a text"]),
    (lambda d: d["terms"][2].update(colour="red"), "terms[2].colour", ["unknown setting"]),
    (lambda d: d.update(terms={"offer": "text"}), "terms", ["list of sections"]),
])
def test_terms_that_miss_a_section_in_a_language_are_refused_by_name(change: Any, field: str, words: list[str]) -> None:
    data = shipped()
    change(data)
    errors = errors_of(data)
    assert field in errors, errors
    for word in words:
        assert word in errors[field]


def test_a_language_the_campaign_is_named_in_needs_every_section() -> None:
    """English terms only, but the campaign is named in Danish: every section lacks Danish."""
    data = shipped()
    for s in data["terms"]:
        for key in ("title", "text", "summary"):
            if key in s:
                s[key] = {"en": s[key]["en"]}
    data["names"] = {"da": data["names"]["da"]}
    errors = errors_of(data)
    assert {f"terms[{i}].text.da" for i in range(14)} <= set(errors)
    assert not any(field.endswith(".nb") for field in errors)  # nb: neither named nor written
    del data["names"]
    assert campaign_from_dict(data, CATALOG).terms.languages == ("en",)


@pytest.mark.parametrize(("change", "field", "words"), [
    (lambda s: s.pop("product"), "support.product", ["is required", "R-X16"]),
    (lambda s: s.pop("reward"), "support.reward", ["is required"]),
    (lambda s: s.update(default="javascript:alert(1)"), "support.default", ["http(s) link or a phone number"]),
    (lambda s: s["countries"].update(FI="call us"), "support.countries.FI", ["http(s) link or a phone number"]),
    (lambda s: s["countries"].update(XX="https://example.com"), "support.countries.XX", ["ISO 3166-1"]),
    (lambda s: s.update(fax="123"), "support.fax", ["unknown setting"]),
])
def test_support_routes_are_checked(change: Any, field: str, words: list[str]) -> None:
    data = shipped()
    change(data["support"])
    errors = errors_of(data)
    assert field in errors, errors
    for word in words:
        assert word in errors[field]


def test_a_phone_number_is_a_contact() -> None:
    data = shipped()
    data["support"]["countries"]["FI"] = "+358 9 2534 7000"
    assert campaign_from_dict(data, CATALOG).support.route_for("FI").contact == "+358 9 2534 7000"


def test_a_residence_without_a_sponsor_is_refused_naming_the_field_and_rule() -> None:
    campaign = parse_campaign_file(shipped_campaign_text(SLUG), CATALOG)
    assert campaign.sponsor_for_residence("KR").name.startswith("Microsoft Korea")
    with pytest.raises(InputError) as caught:
        campaign.sponsor_for_residence("US")
    [error] = caught.value.errors
    assert (error.field, error.rule) == ("residence_country", "R-X13")
    assert "United States (US)" in error.message
    no_sponsors = shipped()
    del no_sponsors["sponsors"]
    assert campaign_from_dict(no_sponsors, CATALOG).sponsor_for_residence("US") is None  # nothing to choose from


def test_a_campaign_file_with_terms_exports_byte_for_byte() -> None:
    data = shipped()
    section(data, "offer")["text"]["da"] = 'Linje et\n\n- punkt "et"\n  - under\\punkt'
    text = render_campaign_file(campaign_from_dict(data, CATALOG))
    assert render_campaign_file(parse_campaign_file(text, CATALOG)) == text
    assert parse_campaign_file(text, CATALOG).terms == campaign_from_dict(data, CATALOG).terms


def test_text_becomes_paragraphs_and_lists() -> None:
    assert blocks("One\ntwo.\n\nList:\n- a\n  - a1\n  - a2\n- b\nAfter.") == [
        Block(paragraph="One two."), Block(paragraph="List:"),
        Block(items=(Item("a", ("a1", "a2")), Item("b"))), Block(paragraph="After.")]
    assert blocks("  - lonely") == [Block(items=(Item("lonely"),))]


_texts = st.one_of(st.text(max_size=20), st.integers(), st.none(), st.lists(st.text(max_size=5), max_size=2),
                   st.dictionaries(st.sampled_from(["en", "da", "nb", "sv", ""]), st.one_of(st.text(max_size=10), st.integers()),
                                   max_size=4))
_sections = st.lists(st.dictionaries(st.sampled_from(["id", "rules", "title", "text", "summary", "x"]), _texts, max_size=6),
                     max_size=4)


@given(terms=st.one_of(_sections, _texts), support=st.dictionaries(st.sampled_from(["default", "product", "reward", "countries"]),
                                                                    _texts, max_size=4))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_hostile_terms_and_support_are_input_errors_never_crashes(terms: Any, support: Any) -> None:
    data = copy.deepcopy(SHIPPED)
    data["terms"], data["support"] = terms, support
    try:
        campaign = campaign_from_dict(data, CATALOG)
    except InputError as exc:
        assert exc.errors and all(e.field and e.message for e in exc.errors)
    else:  # what passed exports and parses again to the same campaign
        assert parse_campaign_file(render_campaign_file(campaign), CATALOG).terms == campaign.terms


SHIPPED = shipped()


def test_each_saved_version_is_kept_whole_and_found_by_its_hash(conn: sqlite3.Connection) -> None:
    from promo.campaign_store import get_campaign, save_campaign
    from promo.db import transaction
    from tests.support.database import DURING

    stored = get_campaign(conn, SLUG)
    first = stored.campaign.terms.version
    assert accepted_terms(conn, stored.id, first) == stored.campaign.terms
    data = shipped()
    section(data, "taxes")["text"]["en"] = "Changed."
    with transaction(conn):
        save_campaign(conn, campaign_from_dict(data, CATALOG), actor="test", now=DURING)
    second = get_campaign(conn, SLUG).campaign.terms.version
    assert second != first
    assert accepted_terms(conn, stored.id, first) == stored.campaign.terms  # the old text is still there, whole
    assert terms_of_version(conn, stored.id, second)[10]["text"]["en"] == "Changed."
    # A row whose text no longer matches its hash is not shown as that version.
    conn.execute("UPDATE terms_versions SET terms = replace(terms, 'Changed.', 'Forged.') WHERE version = ?", (second,))
    assert terms_of_version(conn, stored.id, second) is None
    assert accepted_terms(conn, stored.id, None) is None and accepted_terms(conn, stored.id, "0" * 64) is None


def test_a_cached_campaign_is_read_without_its_long_definition_and_an_edit_is_seen_at_once(conn: sqlite3.Connection) -> None:
    """The terms made the definition tens of kB; reading it for every redemption cost 0.19 ms.
    The parsed campaign is found by the definition's sha256 instead."""
    from promo.campaign_store import get_campaign, save_campaign
    from promo.db import transaction
    from tests.support.database import DURING

    get_campaign(conn, SLUG)
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    try:
        assert get_campaign(conn, SLUG).campaign.terms is not None
        assert statements and not any("SELECT definition " in s for s in statements)
        data = shipped()
        section(data, "online")["text"]["en"] = "Online only."
        with transaction(conn):
            save_campaign(conn, campaign_from_dict(data, CATALOG), actor="test", now=DURING)
        assert get_campaign(conn, SLUG).campaign.terms.sections[3].text["en"] == "Online only."
        # A row written before migration 0013 (no hash yet) is still read correctly.
        conn.execute("UPDATE campaigns SET definition_sha256 = NULL")
        assert get_campaign(conn, SLUG).campaign.terms.sections[3].text["en"] == "Online only."
        # And a hash that no longer matches its definition does not serve a stale campaign.
        conn.execute("UPDATE campaigns SET definition_sha256 = 'stale'")
        assert get_campaign(conn, SLUG).campaign.terms.sections[3].text["en"] == "Online only."
    finally:
        conn.set_trace_callback(None)
