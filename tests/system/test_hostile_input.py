"""Hostile input: whatever arrives, the answer is a clear, specific error (or a decision),
never a 500, a traceback, a crash, or a half-done import."""

from __future__ import annotations

import io
import sqlite3
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from promo.activations import import_activations
from promo.campaign_store import StoredCampaign
from promo.campaigns import parse_campaign_file, shipped_campaign_text
from promo.campaigns.purchase_offer import Claim
from promo.catalog import load_catalog, shipped_catalog
from promo.codes import import_codes
from promo.errors import InputError
from promo.timeutil import moment_from_db, moment_to_db, parse_moment
from tests.support.mailserver import MailServer
from tests.support.web import answered, follow_link, hidden, redeem_form, sign_in

NOW = datetime(2013, 8, 1, tzinfo=UTC)
TEXT = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=300)  # any encodable text
FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
CATALOG = {s.sku: s for s in shipped_catalog()}
OFFER = parse_campaign_file(shipped_campaign_text("office365-xbox-gold-2013"), CATALOG)


# ---- forms over HTTP

@FUZZ
@given(key=TEXT, country=TEXT, terms=TEXT, idempotency=TEXT)
def test_the_redeem_form_answers_any_input_clearly(client: TestClient, smtp: MailServer, key: str, country: str,
                                                   terms: str, idempotency: str) -> None:
    if client.cookies.get("promo_session") is None:
        follow_link(client, sign_in(client, smtp))
    page = redeem_form(client)
    data = {"product_key": key, "country": country, "accept_terms": terms, "idempotency_key": idempotency}
    response = client.post("/offers/open-today/redeem", data={"csrf": hidden(page, "csrf"), **data})
    assert answered(response, data, (303, 422, 429)), response.status_code
    assert "Traceback" not in response.text


@FUZZ
@given(email=TEXT, next_path=TEXT)
def test_the_sign_in_form_answers_any_input_clearly(client: TestClient, email: str, next_path: str) -> None:
    form = client.get("/signin")
    data = {"email": email, "next": next_path}
    response = client.post("/signin", data={"csrf": hidden(form.text, "csrf"), **data})
    assert answered(response, data, (303, 422)) and "Traceback" not in response.text
    if response.status_code == 303:
        assert response.headers["location"] == "/signin/sent"


# ---- CSV imports

def counts(conn: sqlite3.Connection) -> tuple[int, int]:
    return conn.execute("SELECT (SELECT COUNT(*) FROM reward_codes), (SELECT COUNT(*) FROM activations)").fetchone()


@FUZZ
@given(content=st.binary(max_size=2000))
def test_any_bytes_as_a_code_file_give_codes_or_a_clear_error(conn: sqlite3.Connection, stored: StoredCampaign,
                                                              content: bytes) -> None:
    before = counts(conn)
    try:
        import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source=io.BytesIO(content),
                     source_name="fuzz.csv", now=NOW)
    except InputError as exc:
        assert exc.errors and all(e.field and e.message for e in exc.errors)
        assert counts(conn) == before  # nothing half-imported
    assert not conn.in_transaction


ACTIVATION_HEADERS = st.sampled_from([
    ["product_key", "sku", "country", "purchased_at", "activated_at", "account_email"],  # the older file: one country
    ["product_key", "sku", "purchase_country", "activation_country", "purchased_at", "activated_at", "account_email"],
    ["product_key", "sku", "purchase_country", "purchased_at", "activated_at"],  # a header error
])


@FUZZ
@given(rows=st.lists(st.lists(TEXT, min_size=0, max_size=8), max_size=6), header=ACTIVATION_HEADERS)
def test_any_rows_as_an_activation_file_give_records_or_a_clear_error(conn: sqlite3.Connection, rows: list[list[str]],
                                                                      header: list[str]) -> None:
    import csv
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    before = counts(conn)
    try:
        import_activations(conn, source=io.BytesIO(text.getvalue().encode()), catalog=load_catalog(conn), now=NOW)
    except InputError as exc:
        assert exc.errors and counts(conn) == before


@pytest.mark.parametrize(("content", "message"), [
    (b"code\n" + b"A" * (10 * 1024 * 1024) + b"\n", "line 2: file: is not valid CSV: field larger than field limit"),
    ("code\nÆØÅÆØ-AAAAA-AAAAA-AAAAA-AAAAA\n".encode("latin-1"), "file: is not UTF-8 text"),
    ("code\nAAAAA-AAAAA-AAAAA-AAAAA-AAAAA\n".encode("utf-16"), "is not UTF-8 text"),
    (b"code\nAAAAA-AAAAA\x00-AAAAA-AAAAA-AAAAA\n", "line 2: code: does not match"),  # 3.11 csv reads NUL
    (b"code,code\nAAAAA-AAAAA-AAAAA-AAAAA-AAAAA,x\n", "line 1: header: column code appears more than once"),
])
def test_hostile_files_are_refused_with_the_reason(conn: sqlite3.Connection, stored: StoredCampaign, content: bytes,
                                                   message: str) -> None:
    with pytest.raises(InputError) as info:
        import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source=io.BytesIO(content),
                     source_name="hostile.csv", now=NOW)
    assert message in str(info.value)
    assert counts(conn)[0] == 0


def test_blank_lines_bom_and_crlf_are_fine(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    content = "\ufeffcode\r\n\r\nAAAAA-AAAAA-AAAAA-AAAAA-AAAA1\r\n   \r\nAAAAA-AAAAA-AAAAA-AAAAA-AAAA2\r\n".encode()
    report = import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source=io.BytesIO(content),
                          source_name="ok.csv", now=NOW)
    assert report.imported == 2


# ---- dates and time zones

ZONES = st.sampled_from(["UTC", "Europe/Copenhagen", "America/Argentina/Buenos_Aires", "Pacific/Auckland",
                         "Asia/Kathmandu", "America/St_Johns", "Australia/Lord_Howe"])


@given(moment=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=ZONES.map(ZoneInfo)))
def test_an_instant_in_any_zone_survives_parsing_and_storage(moment: datetime) -> None:
    # Compare UTC instants: a local time in a DST gap never compares equal across zones (PEP 495).
    instant = moment.astimezone(UTC)
    parsed = parse_moment(moment.isoformat(), "purchased_at")
    assert isinstance(parsed, datetime) and parsed.astimezone(UTC) == instant
    assert moment_from_db(moment_to_db(parsed)) == instant


@given(text=TEXT)
def test_any_text_is_a_moment_or_a_clear_error(text: str) -> None:
    try:
        parsed = parse_moment(text, "purchased_at")
    except InputError as exc:
        assert exc.errors[0].field == "purchased_at"
        return
    assert isinstance(parsed, date)
    if isinstance(parsed, datetime):
        assert parsed.utcoffset() is not None  # never a naive datetime


@given(naive=st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)))
def test_a_time_without_a_zone_is_always_refused(naive: datetime) -> None:
    with pytest.raises(InputError, match="has no time zone"):
        parse_moment(naive.isoformat(), "purchased_at")


# ---- the rules

COUNTRY = st.sampled_from(["DK", "NO", "US", "DE", "JP", "KR", "TW"])


def _in_order(purchased: date, activated: date) -> bool:
    """Activation at or after purchase, a bare day being its whole day in the campaign's zone: an
    instant is in order with a day when it is not before that day's first instant (or, the other
    way round, before the first instant of the next day)."""
    def midnight(day: date) -> datetime:
        return datetime.combine(day, datetime.min.time(), tzinfo=OFFER.tz)

    if isinstance(purchased, datetime) and isinstance(activated, datetime):
        return activated >= purchased
    if isinstance(activated, datetime):
        return activated >= midnight(purchased)
    if isinstance(purchased, datetime):
        return purchased < midnight(activated + timedelta(days=1))
    return activated >= purchased


@given(sku=st.sampled_from(sorted(CATALOG)), bought_in=COUNTRY, activated_in=COUNTRY,
       purchased=st.datetimes(min_value=datetime(2013, 6, 1), max_value=datetime(2013, 12, 1), timezones=ZONES.map(ZoneInfo)),
       delay=st.timedeltas(min_value=timedelta(days=-2), max_value=timedelta(days=90)),
       bare=st.sampled_from([(False, False), (True, False), (False, True), (True, True)]),
       now=st.datetimes(min_value=datetime(2013, 6, 1), max_value=datetime(2014, 1, 1), timezones=st.just(UTC)),
       terms=st.sampled_from([True, False, None]))
def test_an_eligible_decision_means_every_rule_holds(sku: str, bought_in: str, activated_in: str, purchased: datetime,
                                                     delay: timedelta, bare: tuple[bool, bool], now: datetime,
                                                     terms: bool | None) -> None:
    # Either fact may be a bare day (its local day in the campaign's zone) or an instant.
    bought: date = purchased.astimezone(OFFER.tz).date() if bare[0] else purchased
    activated: date = (purchased + delay).astimezone(OFFER.tz).date() if bare[1] else purchased + delay
    claim = Claim(account="a@example.com", product_key="K" * 25, sku=CATALOG[sku], purchase_country=bought_in,
                  activation_country=activated_in, purchased_at=bought, activated_at=activated, terms_accepted=terms)
    decision = OFFER.evaluate(claim, now)
    holds = (OFFER.products.is_qualifying(CATALOG[sku]) and not OFFER.products.is_excluded(CATALOG[sku])
             and OFFER.products.available_in(CATALOG[sku], bought_in) and bought_in in OFFER.countries
             and activated_in in OFFER.countries and _in_order(bought, activated)
             and OFFER.eligibility.contains(bought) and OFFER.eligibility.contains(activated)
             and OFFER.redemption.contains(now) and terms is not False)
    assert decision.eligible == holds
    assert all(f.rule.startswith("R-X") and f.message for f in decision.failures)
