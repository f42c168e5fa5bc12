"""Names customers read, per language (R-X15; issue 15, item 9): the reward's and the
sponsors' in the campaign file, the products' in the catalog, each with the English one as
the fallback for a language it does not name."""

from __future__ import annotations

import sqlite3
import tomllib

import pytest
import tomli_w

from promo.campaigns import parse_campaign_file, render_campaign_file, shipped_campaign_text
from promo.catalog import get_sku, load_catalog, shipped_catalog, sku_from_dict
from promo.errors import InputError
from tests.support.database import SLUG

CATALOG = {s.sku: s for s in shipped_catalog()}


def shipped() -> dict:  # type: ignore[type-arg]
    return tomllib.loads(shipped_campaign_text(SLUG))


def test_the_reward_and_the_sponsors_are_named_per_language_with_english_as_the_fallback() -> None:
    offer = parse_campaign_file(shipped_campaign_text(SLUG), CATALOG)
    assert offer.reward.name_in("en") == "12-month Xbox Live Gold membership"
    assert offer.reward.name_in("da") == "12 måneders Xbox Live Gold-medlemskab"
    assert offer.reward.name_in("nb") == "12 måneders Xbox Live Gold-medlemskap"
    assert offer.reward.name_in("sv") == offer.reward.name  # no Swedish name: the English one
    europe = offer.sponsor_for("DK")
    assert europe is not None and "1. sal" in europe.name_in("da") and "1st Floor" in europe.name_in("en")
    americas = offer.sponsor_for("BR")
    assert americas is not None and americas.law_in("da") == "staten Washington" and americas.name_in("da") == americas.name
    assert render_campaign_file(offer) == shipped_campaign_text(SLUG)  # the new tables export as they came


@pytest.mark.parametrize(("change", "field"), [
    (lambda d: d["reward"].update(names={"da": 3}), "reward.names"),
    (lambda d: d["reward"].update(names="12 måneder"), "reward.names"),
    (lambda d: d["sponsors"][0].update(laws={"da": " "}), "sponsors[0].laws"),
    (lambda d: d["sponsors"][1].update(names=["x"]), "sponsors[1].names"),
])
def test_a_table_of_names_holds_text_per_language(change, field: str) -> None:  # type: ignore[no-untyped-def]
    data = shipped()
    change(data)
    with pytest.raises(InputError) as refused:
        parse_campaign_file(tomli_w.dumps(data), CATALOG)
    assert [e.field for e in refused.value.errors] == [field]


def test_product_names_per_language_are_stored_with_the_catalog(conn: sqlite3.Connection) -> None:
    catalog = load_catalog(conn)
    trial = catalog["O365-HOME-TRIAL"]
    assert (trial.name_in("en"), trial.name_in("da"), trial.name_in("nb")) == \
        ("Office 365 Home, trial", "Office 365 Home – prøveversion", "Office 365 Home – prøveversjon")
    assert trial.name_in("sv") == trial.name
    assert get_sku(conn, "O365-HOME-TRIAL", with_names=True) == trial
    assert get_sku(conn, "O365-HOME-TRIAL").names == ()  # the redemption's rules never read names
    assert all(dict(s.names).keys() == {"da", "nb"} for s in catalog.values())


def test_a_catalog_entry_names_itself_with_text() -> None:
    entry = {"sku": "X-1", "name": "X", "family": "f", "edition": "e", "channel": "fpp", "term": "annual"}
    assert sku_from_dict({**entry, "names": {"da": "X på dansk"}}).name_in("da") == "X på dansk"
    with pytest.raises(InputError) as refused:
        sku_from_dict({**entry, "names": {"da": ""}}, "sku[0]")
    assert refused.value.errors[0].field == "sku[0].names"
