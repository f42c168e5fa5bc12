"""R-X13: the sponsor, the governing law and the support contact follow where the customer
LIVES, asked on the redeem form (default: the country of purchase), not where the product
was bought or activated. Through HTTP with a real SMTP server, a real `promo serve`, and
the command line."""

from __future__ import annotations

import json
import re
import sqlite3
from email.message import EmailMessage
from pathlib import Path

import httpx2 as httpx
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.support.cli import Cli
from tests.support.database import product_key, reward_code
from tests.support.mailserver import MailServer
from tests.support.served import Served, field, newest_mail
from tests.support.web import ANN, OFFER, answered, follow_link, hidden, redeem_form, sign_in, text_of, wait_for_mail_to

KOREA = "Microsoft Korea, Inc., 6th Floor, POSCO Center"
LUXEMBOURG = "Microsoft Luxembourg S.à.r.l."


def redeem(client: TestClient, key: str, *, country: str = "DK", residence: str | None = None,
           page: str | None = None):  # type: ignore[no-untyped-def]
    page = page or redeem_form(client)
    data = {"csrf": hidden(page, "csrf"), "idempotency_key": hidden(page, "idempotency_key"), "product_key": key,
            "country": country, "accept_terms": "yes"}
    if residence is not None:
        data["residence_country"] = residence
    return client.post(f"{OFFER}/redeem", data=data)


def html_of(email: EmailMessage) -> str:
    return email.get_body(("html",)).get_content()


def test_the_redeem_form_asks_where_the_customer_lives_default_the_country_of_purchase(client: TestClient,
                                                                                      smtp: MailServer) -> None:
    follow_link(client, sign_in(client, smtp))
    page = redeem_form(client)
    select = re.search(r'<select id="residence_country" name="residence_country"[^>]*>(.*?)</select>', page, re.S)
    assert select, "no residence field"
    options = re.findall(r'<option value="(\w*)"', select.group(1))
    # First "same as the country of purchase", then exactly the countries the offer's sponsors cover.
    assert options[0] == "" and "Same as the country of purchase" in select.group(1)
    assert len(options) == 39 and "KR" in options and "US" not in options
    assert 'for="residence_country"' in page and "depend on where you live" in page


def test_sponsor_law_and_support_follow_residence_not_purchase(client: TestClient, smtp: MailServer,
                                                               shop: sqlite3.Connection) -> None:
    """Bought and activated in Denmark (Europe: Microsoft Luxembourg, Luxembourg law), but the
    customer lives in Korea: Microsoft Korea and Korean law, on every page and in the email."""
    follow_link(client, sign_in(client, smtp))
    before = len(smtp.received)
    result = redeem(client, product_key(1), country="DK", residence="kr")
    assert result.status_code == 303, result.text
    reward = client.get(result.headers["location"]).text
    assert KOREA in reward and "Republic of Korea (Seoul District Court)" in reward and LUXEMBOURG not in reward
    assert "You live in South Korea" in reward
    # Korea has no support contact of its own: the general one, and the page says so (R-X16).
    assert "General customer service (there is no contact of its own for South Korea)" in reward
    assert "https://support.microsoft.com/contactus" in reward and "da-dk/contactus" not in reward
    mine = client.get("/rewards").text
    assert KOREA in mine and LUXEMBOURG not in mine and "no contact of its own for South Korea" in mine
    email = wait_for_mail_to(smtp, ANN, after=before)
    for body in (text_of(email), html_of(email)):
        assert reward_code(0) in body
        assert KOREA in body and "Republic of Korea (Seoul District Court)" in body and LUXEMBOURG not in body
        assert "no contact of its own for South Korea" in body and "da-dk/contactus" not in body
    row = shop.execute("SELECT residence_country FROM redemptions").fetchone()
    assert row[0] == "KR"
    event = json.loads(shop.execute("SELECT data FROM audit_events WHERE tag = 'redemption:code:issued'").fetchone()[0])
    assert event["residence_country"] == "KR" and event["country"] == "DK"


def test_without_a_choice_the_residence_is_the_country_of_purchase(client: TestClient, smtp: MailServer,
                                                                   shop: sqlite3.Connection) -> None:
    follow_link(client, sign_in(client, smtp))
    result = redeem(client, product_key(3), country="NO", residence="")
    assert result.status_code == 303
    reward = client.get(result.headers["location"]).text
    assert LUXEMBOURG in reward and "You live in Norway" in reward
    assert "Customer service for Norway" in reward and "nb-no/contactus" in reward
    assert shop.execute("SELECT residence_country FROM redemptions").fetchone()[0] == "NO"


def test_a_residence_the_terms_name_no_sponsor_for_is_refused_at_its_field(client: TestClient, smtp: MailServer,
                                                                           shop: sqlite3.Connection) -> None:
    follow_link(client, sign_in(client, smtp))
    for value in ("US", "ZZ", "Denmark"):
        refused = redeem(client, product_key(1), residence=value)
        assert refused.status_code == 422, value
        assert 'id="residence_country-error"' in refused.text and 'aria-invalid="true"' in refused.text
        assert "Choose the country where you live from the list" in refused.text
    assert shop.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0] == 0
    assert shop.execute("SELECT COUNT(*) FROM reward_codes WHERE issued_at IS NOT NULL").fetchone()[0] == 0
    # The same form with a country the terms cover goes through.
    assert redeem(client, product_key(1), residence="TW").status_code == 303


def test_the_reason_is_the_field_and_rule_for_the_command_line(cli: Cli) -> None:  # noqa: F811
    cli.open_offer_with_one_code(ANN, allow_unbound_keys=False)
    redeem = ["redeem", "--campaign", "open-today", "--account", ANN, "--accept-terms", "--product-key", product_key(1)]
    bad = cli(*redeem, "--residence-country", "US")
    assert bad.returncode == 2 and "residence_country" in bad.stderr and "R-X13" in bad.stderr
    good = cli(*redeem, "--residence-country", "CA")
    assert good.returncode == 0, good.stderr
    conn = cli.connect()
    assert conn.execute("SELECT residence_country FROM redemptions").fetchone()[0] == "CA"
    conn.close()


def test_the_danish_email_names_sponsor_and_law_in_danish(client: TestClient, smtp: MailServer) -> None:
    follow_link(client, sign_in(client, smtp))
    client.get("/language?lang=da&next=/")
    before = len(smtp.received)
    page = client.get(f"{OFFER}/redeem").text
    assert "Land, du bor i" in page and "Samme som købslandet" in page
    assert redeem(client, product_key(1), residence="CA", page=page).status_code == 303
    email = wait_for_mail_to(smtp, ANN, after=before)
    for body in (text_of(email), html_of(email)):
        assert "Du bor i Canada" in body and "Microsoft Corporation, One Microsoft Way" in body
        assert "Gældende lovgivning: staten Washington." in body
        assert "State of Washington" not in body and "Governing law" not in body and "You live" not in body


@given(value=st.one_of(st.text(max_size=12), st.sampled_from(["kr", " DK ", "US", "XK", "EU", "ZZ", "\x00", "é" * 3])))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
def test_hostile_residence_values_get_an_answer_never_a_500(client: TestClient, smtp: MailServer, value: str) -> None:
    if not client.cookies.get("promo_session"):
        follow_link(client, sign_in(client, smtp))
    response = redeem(client, product_key(1), residence=value)
    assert answered(response, {"residence_country": value}, (303, 422)), (value, response.status_code)
    assert "Traceback" not in response.text
    assert client.get("/rewards").status_code == 200  # the service is still whole


def test_residence_over_real_http_with_the_mail_sink(default_server: Served) -> None:
    """`promo serve` as a newcomer runs it (demo offer, the aiosmtpd sink): bought in
    Denmark, living in Taiwan."""
    server = default_server
    with httpx.Client(base_url=server.url, follow_redirects=True, timeout=10) as client:
        form = client.get("/signin?next=/offers/demo-xbox-gold/redeem").text
        client.post("/signin", data={"csrf": field(form, "csrf"), "email": "tw@example.com",
                                     "next": "/offers/demo-xbox-gold/redeem"})
        link = re.search(rf"{re.escape(server.url)}/signin/[^\s\"<]+", newest_mail(client, 1))
        assert link
        page = client.get(link.group(0))
        assert "Country where you live" in page.text
        result = client.post("/offers/demo-xbox-gold/redeem", data={
            "csrf": field(page.text, "csrf"), "idempotency_key": field(page.text, "idempotency_key"),
            "product_key": "DEMO1-AAAAA-BBBBB-CCCCC-00001", "country": "DK", "residence_country": "TW",
            "accept_terms": "yes"})
        assert "Microsoft Taiwan Corp." in result.text and "Taiwan (Taipei District Court)" in result.text
        assert LUXEMBOURG not in result.text
        mail = newest_mail(client, 2)
        assert "Microsoft Taiwan Corp." in mail and "Taiwan (Taipei District Court)" in mail and LUXEMBOURG not in mail
    assert Path(server.log).exists()


def test_a_refusal_names_customer_service_where_the_customer_lives(client: TestClient, smtp: MailServer) -> None:
    """R-X13/R-X16: bought in Denmark, living in Norway: the refusal's customer service is Norway's."""
    follow_link(client, sign_in(client, smtp))
    refused = redeem(client, product_key(999), country="DK", residence="NO")  # no such record: refused
    assert refused.status_code == 422
    support = re.search(r'<p class="support">(.*?)</p>', refused.text, re.S)
    assert support and "nb-no/contactus" in support.group(1) and "Norway" in support.group(1), refused.text[-2000:]
