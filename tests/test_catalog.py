"""promo/catalog.py on a real SQLite file: a SKU entry is checked field by field, stored and
read back whole (countries, names per language), an update replaces what it lists, and one
SKU is read with or without its names."""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import Any

import pytest

from promo.catalog import get_sku, load_catalog, normalize_sku, shipped_catalog, sku_from_dict, upsert_skus
from promo.db import transaction
from promo.errors import InputError, NotFound

ENTRY = {"sku": " test-sku-1 ", "name": "Test Suite", "family": "office", "edition": "home", "channel": "esd",
         "term": "annual", "countries": ["dk", "NO"], "names": {"da": "Testpakke", "nb": "Testpakke NB"}}


def entry(**changes: Any) -> dict[str, Any]:
    return {**ENTRY, **changes}


def test_an_entry_becomes_a_sku_with_its_id_upper_case_and_countries_normalised() -> None:
    sku = sku_from_dict(entry())
    assert (sku.sku, sku.countries, sku.names) == ("TEST-SKU-1", frozenset({"DK", "NO"}), (("da", "Testpakke"), ("nb", "Testpakke NB")))
    assert sku.name_in("da") == "Testpakke" and sku.name_in("de") == "Test Suite"
    assert sku_from_dict(entry(countries=None)).countries is None  # sold everywhere


@pytest.mark.parametrize(("changes", "errors"), [
    ({"name": " ", "family": None}, [("sku[3].name", "is required"), ("sku[3].family", "is required")]),
    ({"channel": "retail", "term": "weekly"}, [("sku[3].channel", "must be one of fpp, posa, esd, subscription, military, "
                                                "trial, nfr, volume"), ("sku[3].term", "must be one of annual, monthly, perpetual")]),
    ({"product_class": "laptop"}, [("sku[3].product_class", "must be one of desktop, cal, windows_server_standard, server")]),
    ({"names": {"da": ""}}, [("sku[3].names", 'must be a table of language = "name"')]),
])
def test_a_bad_entry_names_every_field_that_is_wrong(changes: dict[str, Any], errors: list[tuple[str, str]]) -> None:
    with pytest.raises(InputError) as refused:
        sku_from_dict(entry(**changes), "sku[3]")
    assert [(e.field, e.message) for e in refused.value.errors] == errors


def test_the_shipped_catalog_is_valid_and_stored_as_it_reads(conn: sqlite3.Connection) -> None:
    shipped = {s.sku: s for s in shipped_catalog()}
    assert shipped and load_catalog(conn) == shipped


def test_an_update_replaces_the_countries_and_names_it_lists(conn: sqlite3.Connection) -> None:
    sku = sku_from_dict(entry())
    with transaction(conn):
        upsert_skus(conn, [sku])
    assert load_catalog(conn)["TEST-SKU-1"] == sku
    changed = dataclasses.replace(sku, name="Test Suite 2", countries=None, names=(("da", "Ny testpakke"),))
    with transaction(conn):
        upsert_skus(conn, [changed])
    assert load_catalog(conn)["TEST-SKU-1"] == changed
    assert get_sku(conn, "TEST-SKU-1", with_names=True) == changed
    assert get_sku(conn, "TEST-SKU-1").names == ()  # the rules never read names


def test_one_sku_is_read_with_all_its_countries(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        upsert_skus(conn, [sku_from_dict(entry())])
    assert get_sku(conn, "TEST-SKU-1").countries == frozenset({"DK", "NO"})
    with pytest.raises(NotFound):
        get_sku(conn, "NO-SUCH-SKU")


@pytest.mark.parametrize(("value", "message"), [
    ("", "is required (a SKU id such as O365-HOME-ESD)"),
    ("nope", "unknown SKU 'nope': not in the product catalog"),
])
def test_a_sku_typed_by_a_person_is_found_or_refused_clearly(conn: sqlite3.Connection, value: str, message: str) -> None:
    catalog = load_catalog(conn)
    assert normalize_sku(" o365-home-esd ", catalog).sku == "O365-HOME-ESD"
    with pytest.raises(InputError) as refused:
        normalize_sku(value, catalog, "products[0]")
    assert [(e.field, e.message) for e in refused.value.errors] == [("products[0]", message)]
