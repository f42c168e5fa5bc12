"""Findable records (issue 19, item 8): the campaign list searched, filtered by state,
sorted by column and paged; paging on every list that grows (batches, decision log, review
queue, organisations, donation requests); a redemption found by account, the last
characters of its product key or code (through an index), or its id, shown masked. Any
query string gets a page or a named error, never a 500."""

from __future__ import annotations

import re
import sqlite3
import tomllib
from datetime import UTC, date, datetime, timedelta
from html import unescape

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from promo.activations import Activation
from promo.backends import dialect_of
from promo.campaign_store import change_state, get_campaign, save_campaign
from promo.campaigns import parse_campaign_file
from promo.catalog import load_catalog
from promo.codes import import_codes
from promo.db import transaction
from promo.paging import Keyset
from promo.redemption import RedeemRequest, redeem_sync
from promo.redemption_lookup import Lookup, lookup_sql
from promo.reviews import store_receipt, submit_claim
from tests.support.console import signed_in
from tests.support.database import csv_bytes, open_campaign_text, product_key, reward_code
from tests.support.open_today import add_keys

TODAY = datetime.now(UTC).date()


def offer(conn: sqlite3.Connection, slug: str, name: str, *, opens: date, closes: date, publish: bool = True,
          names: dict[str, str] | None = None) -> None:
    data = tomllib.loads(open_campaign_text(slug))
    data["name"] = name
    data["redemption_window"] = {"first_day": opens, "last_day": closes}
    data["eligibility_window"] = {"first_day": opens, "last_day": closes}
    if names:
        data["names"] = names
    with transaction(conn):
        save_campaign(conn, parse_campaign_file(tomli_w.dumps(data), load_catalog(conn)), actor="test",
                      now=datetime.now(UTC), publish=publish)


def walk(client: TestClient, url: str, pattern: str) -> tuple[list[str], list[str]]:
    """Follow "Next page" from `url` to the end: the items (by `pattern`) and each page's address."""
    items, urls = [], []
    while url:
        page = client.get(url)
        assert page.status_code == 200, (url, page.text[:500])
        urls.append(url)
        items += re.findall(pattern, page.text)
        found = re.search(r'<a rel="next" href="([^"]+)">', page.text)
        url = unescape(found.group(1)) if found else ""
    return items, urls


def previous(client: TestClient, url: str) -> str:
    found = re.search(r'<a rel="prev" href="([^"]+)">', client.get(url).text)
    assert found, url
    return unescape(found.group(1))


@pytest.fixture
def many_offers(shop: sqlite3.Connection) -> sqlite3.Connection:
    """60 live offers besides open-today, and one in each other state."""
    for n in range(60):
        offer(shop, f"bulk-{n:02d}", f"Bulk offer {59 - n:02d}", opens=TODAY - timedelta(days=n % 7), closes=TODAY + timedelta(days=5))
    offer(shop, "winter-draft", "Winter draft", opens=TODAY, closes=TODAY + timedelta(days=9), publish=False)
    offer(shop, "spring-later", "Spring", opens=TODAY + timedelta(days=30), closes=TODAY + timedelta(days=60),
          names={"da": "Forårstilbud", "nb": "Vårtilbud"})
    offer(shop, "old-summer", "Old summer", opens=TODAY - timedelta(days=60), closes=TODAY - timedelta(days=30))
    offer(shop, "held-back", "Held back", opens=TODAY - timedelta(days=1), closes=TODAY + timedelta(days=1))
    with transaction(shop):
        change_state(shop, "held-back", "pause", actor="test", now=datetime.now(UTC))
    return shop


CAMPAIGN_ROW = r'<tr><td><a href="/console/campaigns/([^"]+)">'


def test_the_campaign_list_is_searched_filtered_sorted_and_paged(client: TestClient, many_offers: sqlite3.Connection) -> None:
    signed_in(client, many_offers, "auditor")
    slugs, urls = walk(client, "/console/", CAMPAIGN_ROW)
    every = sorted(r[0] for r in many_offers.execute("SELECT slug FROM campaigns WHERE kind = 'purchase_offer'"))
    assert slugs == every and len(urls) == 2  # 66 offers, 50 a page, in slug order
    assert previous(client, urls[1]) == "/console/?before=" + str(
        many_offers.execute("SELECT id FROM campaigns WHERE slug = ?", (slugs[50],)).fetchone()[0])
    assert re.findall(CAMPAIGN_ROW, client.get(previous(client, urls[1])).text) == slugs[:50]

    for state, expected in (("draft", ["winter-draft"]), ("scheduled", ["spring-later"]),
                            ("ended", ["office365-xbox-gold-2013", "old-summer"]), ("paused", ["held-back"])):
        page = client.get(f"/console/?state={state}").text
        assert re.findall(CAMPAIGN_ROW, page) == expected and f"{len(expected)} campaign" in page, state
    assert len(walk(client, "/console/?state=live", CAMPAIGN_ROW)[0]) == 61
    assert re.findall(CAMPAIGN_ROW, client.get("/console/?q=SUMMER").text) == ["old-summer"]  # name, any case
    assert re.findall(CAMPAIGN_ROW, client.get("/console/?q=forårs").text) == ["spring-later"]  # a name in Danish
    assert re.findall(CAMPAIGN_ROW, client.get("/console/?q=bulk-0&state=live").text) == [f"bulk-0{n}" for n in range(10)]
    assert "0 campaigns found" in client.get("/console/?q=nothing-like-this").text

    by_name, _ = walk(client, "/console/?sort=name&dir=asc", CAMPAIGN_ROW)
    name = dialect_of(many_offers).json_text("definition", "name")
    names = dict(many_offers.execute(f"SELECT slug, {name} FROM campaigns"))  # noqa: S608 - a fixed expression
    assert by_name == sorted(by_name, key=lambda s: (names[s].casefold(), s)) and len(by_name) == 66
    assert walk(client, "/console/?sort=name&dir=desc", CAMPAIGN_ROW)[0] == by_name[::-1]
    by_status, _ = walk(client, "/console/?sort=status", CAMPAIGN_ROW)
    assert by_status[0] == "winter-draft" and by_status[1] == "spring-later" and by_status[-1] == "old-summer"
    by_opening, _ = walk(client, "/console/?sort=opens&dir=desc", CAMPAIGN_ROW)
    assert by_opening[0] == "spring-later" and by_opening[-2:] == ["old-summer", "office365-xbox-gold-2013"]
    heading = client.get("/console/?sort=name&dir=asc").text
    assert 'aria-sort="ascending"' in heading and 'href="/console/?sort=name&amp;dir=desc"' in heading


def test_a_page_follows_on_when_its_cursor_row_left_the_filter(client: TestClient, many_offers: sqlite3.Connection) -> None:
    signed_in(client, many_offers, "marketer")
    first = client.get("/console/?state=live")
    cursor = re.search(r'<a rel="next" href="/console/\?state=live&amp;after=(\d+)">', first.text)
    assert cursor
    last_shown = many_offers.execute("SELECT slug FROM campaigns WHERE id = ?", (int(cursor.group(1)),)).fetchone()[0]
    with transaction(many_offers):
        change_state(many_offers, last_shown, "pause", actor="test", now=datetime.now(UTC))  # no longer live
    rest = re.findall(CAMPAIGN_ROW, client.get(f"/console/?state=live&after={cursor.group(1)}").text)
    shown = re.findall(CAMPAIGN_ROW, first.text)
    assert rest and rest[0] > last_shown and not set(rest) & set(shown)


@pytest.mark.parametrize(("query", "message"), [
    ("state=sleeping", "must be one of draft, scheduled, live, paused, ended"), ("sort=colour", "sort: must be one of"),
    ("dir=up", "dir: must be asc"),
    ("after=abc", "after: must be a whole number"), ("after=%C2%B2", "after: must be a whole number"),
    ("before=99999999999999999999", "before: must be"), ("after=123456", "after: names no row"),
])
def test_a_bad_list_query_is_named(client: TestClient, shop: sqlite3.Connection, query: str, message: str) -> None:
    signed_in(client, shop, "marketer")
    response = client.get("/console/?" + query)
    assert response.status_code == 400 and message in unescape(response.text), (query, response.text[:300])


def test_batches_are_paged(client: TestClient, shop: sqlite3.Connection) -> None:
    stored = get_campaign(shop, "open-today")
    for n in range(55):
        import_codes(shop, campaign_id=stored.id, campaign=stored.campaign, source=csv_bytes(["code"], [[reward_code(1000 + n)]]),
                     source_name=f"batch-{n}.csv", now=datetime.now(UTC))
    signed_in(client, shop, "marketer")
    batches, urls = walk(client, "/console/campaigns/open-today", r'<tr><td>(\d+)</td><td>[^<]*\.csv</td>')
    assert [int(b) for b in batches] == [r[0] for r in shop.execute("SELECT id FROM code_batches WHERE campaign_id = ?"
                                                                     " ORDER BY id DESC", (stored.id,))]
    assert len(urls) == 2 and urls[1].endswith("#batches") and "batches_before=" in urls[1]


def test_the_decision_log_pages_both_ways(client: TestClient, shop: sqlite3.Connection) -> None:
    for n in range(130):  # refused: no activation record (R-X11)
        request = RedeemRequest(campaign="open-today", account_email=f"p{n}@example.com", product_key=product_key(900 + n),
                                terms_accepted=True)
        redeem_sync(shop, request.normalized(), datetime.now(UTC))
    signed_in(client, shop, "auditor")
    ids, urls = walk(client, "/audit/?outcome=refused", r'<td><a href="/audit/attempts/(\d+)">')
    assert [int(i) for i in ids] == [r[0] for r in shop.execute("SELECT id FROM redemption_attempts ORDER BY id DESC")]
    assert len(urls) == 2 and "outcome=refused" in urls[1]
    back = previous(client, urls[1])
    assert "after=" in back and re.findall(r'<td><a href="/audit/attempts/(\d+)">', client.get(back).text) == ids[:100]
    assert client.get("/audit/?before=%C2%B2").status_code == 400  # "²".isdigit() is True: it was a 500
    assert client.get("/audit/?until=9999-12-31").status_code == 400  # the day after it overflowed: a 500


def test_the_review_queue_is_paged_oldest_first(client: TestClient, shop: sqlite3.Connection, web_settings) -> None:  # type: ignore[no-untyped-def]
    day = TODAY - timedelta(days=2)
    for n in range(55):
        name, kind = store_receipt(web_settings.receipts_dir, b"%PDF-1.4\n", 1_000_000)
        evidence = Activation(product_key(500 + n).replace("-", ""), "O365-HOME-ESD", "DK", "DK", day, day, None)
        with transaction(shop):
            submit_claim(shop, campaign="open-today", account_email=f"c{n}@example.com", activation=evidence,
                         receipt_file=name, kind=kind, locale="en", ip=None, now=datetime.now(UTC))
    signed_in(client, shop, "support")
    claims, urls = walk(client, "/review/", r'<tr><td><a href="/review/(\d+)">')
    assert [int(c) for c in claims] == [r[0] for r in shop.execute("SELECT id FROM review_claims ORDER BY id")]
    assert len(urls) == 2 and "after=" in urls[1]


def test_organisations_and_donation_requests_are_found_and_paged(client: TestClient, conn: sqlite3.Connection) -> None:
    from promo.nonprofit.organisations import register_organisation
    from tests.support.nonprofit import T0, approved_org, ask, install_program, new_code, registration
    install_program(conn, keys_per_product=80, now=T0)
    orgs = [approved_org(conn, name=f"Food Bank {n:02d}", short_name=f"Food{n:02d}", registration_number=f"DK-{n:05d}")
            for n in range(52)]
    with transaction(conn):
        register_organisation(conn, holder_email="new@ngo.example", registration=registration(
            name="Harbour 100% Choir", short_name="Choir", registration_number="DK-99999"), now=T0, ip=None)
    for org in orgs[:3]:
        assert ask(conn, new_code(conn, org), T0 + timedelta(days=1), DON_OFFICE_PROPLUS=1).fulfilled
    signed_in(client, conn, "auditor")
    found, urls = walk(client, "/console/nonprofit/organisations", r"<tr><td>(\d+)</td>")
    assert len(found) == 53 and len(urls) == 2
    assert re.findall(r"<tr><td>(\d+)</td>", client.get("/console/nonprofit/organisations?status=pending").text) == [str(orgs[-1] + 1)]
    assert len(re.findall(r"<tr><td>\d+</td>", client.get("/console/nonprofit/organisations?q=DK-0001").text)) == 10
    assert len(re.findall(r"<tr><td>\d+</td>", client.get("/console/nonprofit/organisations?q=100%25").text)) == 1  # % literal
    assert client.get("/console/nonprofit/organisations?status=closed").status_code == 400
    requests = client.get("/console/nonprofit/requests")
    assert len(re.findall(r"<tr><td>\d+</td>", requests.text)) == 3
    keys = [r[0] for r in conn.execute("SELECT c.code FROM donation_lines l JOIN reward_codes c ON c.id = l.code_id")]
    assert keys and not any(key in requests.text for key in keys)  # licence keys stay masked
    assert len(re.findall(r"<tr><td>\d+</td>", client.get("/console/nonprofit/requests?q=Food00").text)) == 1
    overview = client.get("/console/nonprofit/").text
    assert 'href="/console/nonprofit/organisations?status=approved">All 52 approved organisations' in overview


@pytest.fixture
def redeemed(shop: sqlite3.Connection) -> sqlite3.Connection:
    add_keys(shop, range(10, 14))
    for n in range(10, 13):
        request = RedeemRequest(campaign="open-today", account_email=f"user{n}@example.com", product_key=product_key(n),
                                terms_accepted=True)
        assert redeem_sync(shop, request.normalized(), datetime.now(UTC)).redeemed
    return shop


FOUND = r'<tr><td>(\d+)</td><td class="nowrap">'


@pytest.mark.parametrize("role", ["support", "auditor", "admin"])
def test_a_redemption_is_found_by_account_key_tail_code_tail_or_id(client: TestClient, redeemed: sqlite3.Connection,
                                                                  role: str) -> None:
    signed_in(client, redeemed, role)
    rows = redeemed.execute("SELECT r.id, r.account_email, r.product_key, k.code FROM redemptions r"
                            " JOIN reward_codes k ON k.id = r.code_id ORDER BY r.id").fetchall()
    rid, account, key, code = rows[1]
    for by, value in (("account", account.upper()), ("product_key", key[-5:]), ("product_key", key[-7:].lower()),
                      ("product_key", product_key(11)[-11:]), ("code", code[-5:]), ("code", code[-11:]), ("id", str(rid))):
        page = client.get("/audit/redemptions", params={"by": by, "q": value})
        assert page.status_code == 200 and re.findall(FOUND, page.text) == [str(rid)], (by, value)
        assert key not in page.text and code not in page.text and code.replace("-", "") not in page.text  # masked
        assert "*****-*****-*****-*****-" + key[-5:] in page.text
    nothing = client.get("/audit/redemptions", params={"by": "code", "q": "ZZZZZ"})
    assert nothing.status_code == 200 and 'id="none-found"' in nothing.text
    short = client.get("/audit/redemptions", params={"by": "product_key", "q": "0011"})
    assert short.status_code == 400 and "give the last 5 to 25 letters and digits" in short.text
    assert client.get("/audit/redemptions", params={"by": "id", "q": "1e3"}).status_code == 400
    assert client.get("/audit/redemptions", params={"by": "colour", "q": "x"}).status_code == 400


@pytest.mark.parametrize(("by", "index"), [("product_key", "redemptions_key_tail"), ("code", "reward_codes_issued_tail"),
                                           ("account", "redemptions_account"), ("id", "PRIMARY KEY")])
def test_each_lookup_is_an_index_search(conn: sqlite3.Connection, by: str, index: str) -> None:
    sample = {"product_key": "ABCDE1", "code": "XB000-00001", "account": "a@example.com", "id": "7"}[by]
    dialect = dialect_of(conn)
    if dialect.name == "postgresql":  # its planner scans tiny tables whole unless told not to
        conn.execute("SET enable_seqscan = off")
    for keyset in (Keyset(), Keyset(before=50)):
        sql, params = lookup_sql(Lookup.from_query({"by": by, "q": sample}), keyset, dialect)  # type: ignore[arg-type]
        if dialect.name == "postgresql":
            plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + sql, params))
            assert (index if index != "PRIMARY KEY" else "redemptions_pkey") in plan, plan
            continue
        plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        first = plan.split(" / ")[0]
        assert first.startswith("SEARCH") and index in first, plan
        assert not re.search(r"SCAN (r|k|redemptions|reward_codes)\b(?! USING)", plan), plan


LISTS = ["/console/", "/console/campaigns/open-today", "/console/nonprofit/organisations", "/console/nonprofit/requests",
         "/audit/", "/audit/actions", "/audit/redemptions", "/review/"]
PARAMS = ["q", "state", "sort", "dir", "status", "by", "before", "after", "batches_before", "batches_after", "outcome",
          "since", "until", "zone", "actor"]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(PARAMS), st.one_of(st.text(max_size=25), st.from_regex(r"[0-9]{1,30}", fullmatch=True)),
                       max_size=4))
def test_no_list_breaks_on_any_query(client: TestClient, shop: sqlite3.Connection, query: dict[str, str]) -> None:
    if not shop.execute("SELECT 1 FROM staff WHERE email = 'admin@example.com'").fetchone():
        signed_in(client, shop, "admin")
    for path in LISTS:
        response = client.get(path, params=query)
        assert response.status_code in (200, 400), (path, query, response.status_code, response.text[:300])
        assert "Traceback" not in response.text
