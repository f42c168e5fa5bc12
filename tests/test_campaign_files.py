from __future__ import annotations

import json
import sqlite3
import tomllib
from datetime import UTC, datetime
from typing import Any

import pytest
import tomli_w

from promo.campaign_store import get_campaign, save_campaign
from promo.campaigns import parse_campaign_file, render_campaign_file, shipped_campaign_text
from promo.catalog import load_catalog, shipped_catalog
from promo.db import transaction
from promo.errors import InputError
from tests.support.database import SLUG
from tests.support.invariants import assert_chain_verifies

CATALOG = {s.sku: s for s in shipped_catalog()}


def shipped() -> dict[str, Any]:
    return tomllib.loads(shipped_campaign_text(SLUG))


def errors_for(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(InputError) as info:
        parse_campaign_file(tomli_w.dumps(data), CATALOG)
    return {e.field: e.message for e in info.value.errors}


def test_shipped_file_round_trips_byte_for_byte() -> None:
    text = shipped_campaign_text(SLUG)
    assert render_campaign_file(parse_campaign_file(text, CATALOG)) == text


def test_stored_campaign_exports_identically(conn: sqlite3.Connection) -> None:
    stored = get_campaign(conn, SLUG)
    assert render_campaign_file(stored.campaign) == shipped_campaign_text(SLUG)


def test_shipped_offer_states_what_the_issue_asks() -> None:
    data = shipped()
    assert data["timezone"] == "Europe/Copenhagen"
    assert len(data["countries"]) == 38
    assert data["limit_per_account"] == 1
    assert data["reward"]["code_expires_on"].isoformat() == "2014-10-31"
    assert data["products"]["qualifying"] and data["products"]["excluded"]  # by attribute
    assert len(data["products"]["qualifying_skus"]) == 8 and len(data["products"]["excluded_skus"]) == 14
    assert "availability" not in data  # the documents give no per-country list (R-X3)
    assert "allow_unbound_keys" not in data  # the default: a key with no account goes to review (R-X5)


def test_the_new_settings_round_trip_and_are_written_only_when_set() -> None:
    data = shipped() | {"allow_unbound_keys": True, "availability": {"O365-HOME-MIL": ["GB", "DE"]}}
    offer = parse_campaign_file(tomli_w.dumps(data), CATALOG)
    assert offer.allow_unbound_keys is True and offer.products.availability == {"O365-HOME-MIL": frozenset({"DE", "GB"})}
    text = render_campaign_file(offer)
    assert "allow_unbound_keys = true" in text and 'O365-HOME-MIL = [\n    "DE",\n    "GB",\n]' in text
    assert render_campaign_file(parse_campaign_file(text, CATALOG)) == text
    quiet = render_campaign_file(parse_campaign_file(tomli_w.dumps(shipped() | {"allow_unbound_keys": False}), CATALOG))
    assert "allow_unbound_keys" not in quiet and quiet == shipped_campaign_text(SLUG)


@pytest.mark.parametrize(("change", "field", "message"), [
    (lambda d: d["eligibility_window"].update(last_day=d["eligibility_window"]["first_day"].replace(day=1)),
     "eligibility_window.last_day", "ends"),
    (lambda d: d["redemption_window"].update(first_day=d["redemption_window"]["first_day"].replace(month=1),
                                             last_day=d["redemption_window"]["first_day"].replace(month=2)),
     "redemption_window.last_day", "closes before the eligibility window opens"),
    (lambda d: d.update(countries=[]), "countries", "at least one"),
    (lambda d: d.update(countries=["DK", "XX"]), "countries", "'XX' is not an ISO"),
    (lambda d: d["products"].update(qualifying_skus=["O365-NOPE"]), "products.qualifying_skus", "unknown SKU O365-NOPE"),
    (lambda d: d.update(limit_per_account=0), "limit_per_account", "at least 1"),
    (lambda d: d.update(timezone="Mars/Olympus"), "timezone", "unknown time zone"),
    (lambda d: d["reward"].update(code_pattern="(["), "reward.code_pattern", "regular expression"),
    (lambda d: d["products"]["excluded"].append({"channel": ["retail"]}), "products.excluded[4].channel", "unknown channel"),
    (lambda d: d.update(colour="red"), "colour", "unknown setting"),
    (lambda d: d.update(allow_unbound_keys="yes"), "allow_unbound_keys", "must be true or false"),
    (lambda d: d.update(availability={"O365-HOME-MIL": []}), "availability.O365-HOME-MIL", "non-empty list"),
    (lambda d: d.pop("reward"), "reward", "required"),
])
def test_validation_names_the_field(change: Any, field: str, message: str) -> None:
    data = shipped()
    change(data)
    found = errors_for(data)
    assert field in found, found
    assert message in found[field]


def test_all_errors_are_reported_together() -> None:
    data = shipped()
    data["countries"] = []
    data["limit_per_account"] = -1
    data["timezone"] = "Nowhere/Else"
    assert {"countries", "limit_per_account", "timezone"} <= set(errors_for(data))


def test_unknown_kind_and_bad_toml_are_input_errors() -> None:
    with pytest.raises(InputError, match="kind: unknown campaign kind 'lottery'"):
        parse_campaign_file('kind = "lottery"\n', CATALOG)
    with pytest.raises(InputError, match="file: not valid TOML"):
        parse_campaign_file("slug = [", CATALOG)


def test_re_import_records_field_level_changes_in_the_audit_chain(conn: sqlite3.Connection) -> None:
    data = shipped()
    data["reward"]["name"] = "Xbox Live Gold (12 months)"
    data["countries"] = data["countries"][:-1]
    campaign = parse_campaign_file(tomli_w.dumps(data), load_catalog(conn))
    with transaction(conn):
        _, changes = save_campaign(conn, campaign, actor="marketer@example.com", now=datetime(2013, 7, 2, tzinfo=UTC))
    assert changes["reward.name"] == ["12-month Xbox Live Gold membership", "Xbox Live Gold (12 months)"]
    assert "countries" in changes
    event = conn.execute("SELECT tag, actor, data FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    assert event["tag"] == "campaign:definition:changed" and event["actor"] == "marketer@example.com"
    assert json.loads(event["data"])["changes"]["reward.name"][1] == "Xbox Live Gold (12 months)"
    assert_chain_verifies(conn)
    # Importing the same definition again changes nothing and records nothing.
    with transaction(conn):
        _, again = save_campaign(conn, campaign, actor="x", now=datetime(2013, 7, 3, tzinfo=UTC))
    assert again == {}
    assert conn.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0] == 2
