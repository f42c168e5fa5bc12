"""promo/decision_log.py on a real SQLite file: filters from a query string are checked
field by field, every real redemption attempt is found by each filter with its rules, its
key and code masked, paged by id both ways, and one attempt's detail shows what it rests on."""

from __future__ import annotations

import sqlite3
from datetime import date

import pytest

from promo.campaign_store import StoredCampaign
from promo.decision_log import AttemptFilter, attempt_detail, count_attempts, query_attempts
from promo.errors import InputError
from tests.support.database import SLUG, product_key
from tests.support.redemption import add_activations, add_codes, redeem


@pytest.fixture
def attempts(conn: sqlite3.Connection, stored: StoredCampaign) -> sqlite3.Connection:
    """Three attempts: user1 redeems key 1, user2 tries user1's key (R-X5), user3 a key with no record (R-X11)."""
    add_codes(conn, stored, 3)
    add_activations(conn, [(n, "O365-HOME-ESD", "DK", f"user{n}@example.com") for n in (1, 2)])
    assert redeem(conn, 1, "user1@example.com").redeemed
    assert not redeem(conn, 1, "user2@example.com").redeemed
    assert not redeem(conn, 99, "user3@example.com").redeemed
    return conn


def find(conn: sqlite3.Connection, **query: str) -> list[str]:
    return [row.account for row in query_attempts(conn, AttemptFilter.from_query(query))]


def test_every_attempt_is_logged_newest_first_with_key_and_code_masked(attempts: sqlite3.Connection) -> None:
    rows = query_attempts(attempts, AttemptFilter())
    assert [(r.account, r.outcome) for r in rows] == [
        ("user3@example.com", "refused"), ("user2@example.com", "refused"), ("user1@example.com", "redeemed")]
    redeemed = rows[-1]
    assert redeemed.code is not None and "*" in redeemed.code and redeemed.email_status == "queued"
    assert product_key(1) not in redeemed.product_key and "*" in redeemed.product_key
    assert rows[0].rules == ["R-X11"] and "R-X5" in rows[1].rules


@pytest.mark.parametrize(("query", "accounts"), [
    ({"outcome": "redeemed"}, ["user1@example.com"]),
    ({"outcome": "refused"}, ["user3@example.com", "user2@example.com"]),
    ({"rule": "r-x11"}, ["user3@example.com"]),
    ({"account": "USER2@example.com"}, ["user2@example.com"]),
    ({"campaign": SLUG, "country": "dk"}, ["user2@example.com", "user1@example.com"]),
    ({"campaign": "other"}, []),
    ({"since": "2013-09-01", "until": "2013-09-01"}, ["user3@example.com", "user2@example.com", "user1@example.com"]),
    ({"since": "2013-09-02"}, []),
])
def test_each_filter_finds_what_it_names(attempts: sqlite3.Connection, query: dict[str, str], accounts: list[str]) -> None:
    assert find(attempts, **query) == accounts
    assert count_attempts(attempts, AttemptFilter.from_query(query)) == len(accounts)


def test_bad_filters_are_named_one_by_one() -> None:
    with pytest.raises(InputError) as refused:
        AttemptFilter.from_query({"outcome": "maybe", "rule": "X-1", "country": "Denmark"})
    assert [e.field for e in refused.value.errors] == ["outcome", "rule", "country"]
    assert AttemptFilter.from_query({"rule": " stock ", "since": "2013-10-01"}).as_query() == {"rule": "STOCK", "since": "2013-10-01"}
    assert AttemptFilter.from_query({"since": "2013-10-01"}).since == date(2013, 10, 1)


def test_pages_go_forward_by_before_id_and_back_by_after_id(attempts: sqlite3.Connection) -> None:
    everything = [r.id for r in query_attempts(attempts, AttemptFilter())]
    first = query_attempts(attempts, AttemptFilter(), limit=2)
    second = query_attempts(attempts, AttemptFilter(), before_id=first[-1].id, limit=2)
    assert [r.id for r in first + second] == everything
    back = query_attempts(attempts, AttemptFilter(), after_id=second[0].id, limit=2)
    assert [r.id for r in back] == sorted(r.id for r in first)  # oldest first on the way back


def test_an_attempts_detail_shows_its_record_failures_email_and_acceptance(attempts: sqlite3.Connection) -> None:
    rows = {r.account: r for r in query_attempts(attempts, AttemptFilter())}
    redeemed = attempt_detail(attempts, rows["user1@example.com"].id)
    assert redeemed is not None and redeemed["failures"] == []
    assert redeemed["activation"]["account_email"] == "user1@example.com" and len(redeemed["emails"]) == 1
    assert redeemed["accepted"]["terms_version"] and redeemed["accepted"]["residence_country"] == "DK"
    refused = attempt_detail(attempts, rows["user3@example.com"].id)
    assert refused is not None and refused["activation"] is None and refused["emails"] == [] and refused["accepted"] is None
    assert [f["rule"] for f in refused["failures"]] == ["R-X11"]
    assert attempt_detail(attempts, 10_000) is None
