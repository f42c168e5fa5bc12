"""The consumer journey through real HTTP (the ASGI app with its lifespan, relay included)
and a real SMTP server: sign in with the link read from the email, redeem, get the code."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from starlette.testclient import TestClient

from promo.app import create_app
from promo.config import Settings
from tests.support.database import product_key, reward_code
from tests.support.mailserver import MailServer
from tests.support.web import ANN, OFFER, follow_link, hidden, redeem_form, sign_in, submit, text_of, wait_for_mail


def test_the_whole_journey(client: TestClient, smtp: MailServer, shop: sqlite3.Connection) -> None:
    assert client.get(f"{OFFER}/redeem").headers["location"] == f"/signin?next={OFFER}/redeem"
    link = sign_in(client, smtp, "Ann@Example.com", f"{OFFER}/redeem")
    assert follow_link(client, link) == f"{OFFER}/redeem"
    page = redeem_form(client)
    assert "Signed in as ann@example.com" in page
    result = submit(client, page, product_key(1).lower().replace("-", " "))
    assert result.status_code == 303 and result.headers["location"].startswith("/rewards/")
    reward = client.get(result.headers["location"])
    assert reward_code(0) in reward.text  # the owner sees the whole code
    mail = wait_for_mail(smtp, 2)[-1]
    assert reward_code(0) in text_of(mail) and mail["To"] == ANN
    assert all(m["Message-ID"].endswith("@mail.promo.test>") for m in smtp.received)  # mail.message_id_domain
    mine = client.get("/rewards")
    assert reward_code(0) not in mine.text and "*****-*****-*****-*****-*0000" in mine.text  # masked in the list
    row = shop.execute("SELECT status FROM outbox WHERE template = 'reward_code'").fetchone()
    assert row["status"] == "sent"


def test_refusals_explain_every_rule_in_plain_words(client: TestClient, smtp: MailServer) -> None:
    follow_link(client, sign_in(client, smtp))
    page = redeem_form(client)
    refused = submit(client, page, product_key(2), country="NO", terms=False)
    assert refused.status_code == 422
    text = refused.text
    assert "Your product key is for Office 365 Home, trial, which is not part of this offer." in text and "R-X4" in text
    assert "O365-HOME-TRIAL" not in text  # the product's name, not its SKU id
    assert "does not match our activation record" in text and "R-X17" in text
    assert "You must accept the terms of use" in text and "R-X8" in text
    # The form comes back as it was sent: the declared country is still chosen, and only it.
    assert text.count(" selected>") == 1 and '<option value="NO" selected>' in text
    unknown = submit(client, redeem_form(client), "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ")
    assert "We have no record of a purchase" in unknown.text and "R-X11" in unknown.text
    bad = submit(client, redeem_form(client), "123")
    assert bad.status_code == 422 and 'aria-invalid="true"' in bad.text and "Enter the 25-character product key" in bad.text


def test_a_second_code_for_the_same_account_is_refused(client: TestClient, smtp: MailServer) -> None:
    follow_link(client, sign_in(client, smtp))
    assert submit(client, redeem_form(client), product_key(1)).status_code == 303
    second = submit(client, redeem_form(client), product_key(3), country="NO")
    assert "already received its reward code" in second.text and "R-X6" in second.text


def test_double_submit_redeems_once_and_shows_no_error(client: TestClient, smtp: MailServer, shop: sqlite3.Connection) -> None:
    follow_link(client, sign_in(client, smtp))
    page = redeem_form(client)
    first, second = submit(client, page, product_key(1)), submit(client, page, product_key(1))
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert shop.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0] == 1


def test_sign_in_links_work_once(client: TestClient, smtp: MailServer) -> None:
    link = sign_in(client, smtp)
    follow_link(client, link)
    reused = client.get(link)
    assert reused.status_code == 400 and "already been used" in reused.text
    tampered = client.get(link[:-3] + "xyz")
    assert tampered.status_code == 400 and "not valid" in tampered.text


def test_an_expired_sign_in_link_is_refused(client: TestClient, web_settings: Settings) -> None:
    links = client.app.state.signin_links  # type: ignore[attr-defined]
    with freeze_time(datetime.now(UTC) - timedelta(minutes=web_settings.signin_link_minutes, seconds=1), real_asyncio=True):
        token = links.create(ANN, "some-jti")
    response = client.get(f"/signin/{token}")
    assert response.status_code == 400 and "expired" in response.text


def test_forms_without_the_csrf_token_are_rejected(client: TestClient, smtp: MailServer, shop: sqlite3.Connection) -> None:
    assert client.post("/signin", data={"email": ANN}).status_code == 403
    follow_link(client, sign_in(client, smtp))
    page = redeem_form(client)
    forged = client.post(f"{OFFER}/redeem", data={"csrf": "forged", "product_key": product_key(1), "country": "DK",
                                                  "accept_terms": "yes", "idempotency_key": hidden(page, "idempotency_key")})
    assert forged.status_code == 403
    assert shop.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0] == 0


def test_sign_in_does_not_reveal_whether_an_address_is_known(client: TestClient, smtp: MailServer) -> None:
    follow_link(client, sign_in(client, smtp, ANN))
    client.cookies.clear()
    pages = []
    for address in (ANN, "nobody-ever@example.com"):
        form = client.get("/signin")
        sent = client.post("/signin", data={"csrf": hidden(form.text, "csrf"), "email": address, "next": "/"})
        pages.append((sent.status_code, sent.headers["location"], client.get(sent.headers["location"]).text))
    assert pages[0] == pages[1]


def test_sessions_are_new_at_sign_in_and_end_on_the_server_at_sign_out(client: TestClient, smtp: MailServer) -> None:
    follow_link(client, sign_in(client, smtp))
    first = client.cookies.get("promo_session")
    follow_link(client, sign_in(client, smtp))
    second = client.cookies.get("promo_session")
    assert first and second and first != second
    page = client.get("/rewards")
    out = client.post("/signout", data={"csrf": hidden(page.text, "csrf")})
    assert out.status_code == 303
    client.cookies.set("promo_session", second)  # replaying the old cookie does not work
    assert client.get("/rewards").headers["location"].startswith("/signin")


def test_session_cookie_flags(client: TestClient, smtp: MailServer) -> None:
    response = client.get(sign_in(client, smtp))
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie  # plain HTTP here


def test_the_idle_timeout_ends_a_session(client: TestClient, smtp: MailServer, web_settings: Settings) -> None:
    follow_link(client, sign_in(client, smtp))
    assert client.get("/rewards").status_code == 200
    with freeze_time(datetime.now(UTC) + timedelta(minutes=web_settings.session_idle_minutes, seconds=1), real_asyncio=True):
        assert client.get("/rewards").status_code == 303


def test_resend_sends_the_same_code_again_rate_limited(client: TestClient, smtp: MailServer, web_settings: Settings) -> None:
    follow_link(client, sign_in(client, smtp))
    location = submit(client, redeem_form(client), product_key(1)).headers["location"]
    wait_for_mail(smtp, 2)
    page = client.get(location).text
    for _ in range(web_settings.mail.resend_per_hour):
        assert client.post(f"{location}/resend", data={"csrf": hidden(page, "csrf")}).headers["location"].endswith("resent=yes")
    assert client.post(f"{location}/resend", data={"csrf": hidden(page, "csrf")}).headers["location"].endswith("resent=limited")
    mails = wait_for_mail(smtp, 2 + web_settings.mail.resend_per_hour)
    codes = [m for m in mails if reward_code(0) in text_of(m)]
    assert len(codes) == 1 + web_settings.mail.resend_per_hour and all(m["To"] == ANN for m in codes)


def test_somebody_elses_reward_is_not_found(client: TestClient, smtp: MailServer) -> None:
    follow_link(client, sign_in(client, smtp))
    location = submit(client, redeem_form(client), product_key(1)).headers["location"]
    client.cookies.clear()
    follow_link(client, sign_in(client, smtp, "mallory@example.com"))
    assert client.get(location).status_code == 404


def test_pages_carry_security_headers(client: TestClient) -> None:
    headers = client.get("/").headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"] and "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff" and headers["referrer-policy"] == "no-referrer"


def test_home_and_offer_pages(client: TestClient) -> None:
    home = client.get("/?country=DK")
    assert home.status_code == 200 and "/offers/open-today" in home.text
    assert "/offers/open-today" not in client.get("/?country=US").text  # not an offer country
    offer = client.get(OFFER)
    assert "Denmark" in offer.text and "Under" not in offer.text
    assert "Children under 13 need a parent" in offer.text and "may differ from the language" in offer.text
    assert client.get("/offers/nope").status_code == 404


def test_the_journey_in_danish(client: TestClient, smtp: MailServer) -> None:
    client.headers["Accept-Language"] = "da-DK,da;q=0.9"
    form = client.get("/signin")
    assert "E-mailadresse" in form.text and "Send link til at logge på" in form.text and 'lang="da"' in form.text
    client.post("/signin", data={"csrf": hidden(form.text, "csrf"), "email": ANN, "next": f"{OFFER}/redeem"})
    mail = wait_for_mail(smtp, 1)[-1]
    assert mail["Subject"] == "Dit link til at logge på" and mail["Content-Language"] == "da"
    follow_link(client, re.search(r"http://testserver(/signin/\S+)", text_of(mail)).group(1))  # type: ignore[union-attr]
    page = client.get(f"{OFFER}/redeem").text
    for label in ("Produktnøgle", "Købsland", "Jeg accepterer tilbuddets vilkår og betingelser", "Land, du bor i", ">Indløs<", ">Danmark<"):
        assert label in page
    refused = submit(client, page, product_key(2), terms=False)
    assert "Din produktnøgle er til Office 365 Home – prøveversion, som ikke er omfattet af dette tilbud." in refused.text
    assert "R-X4" in refused.text
    assert submit(client, client.get(f"{OFFER}/redeem").text, product_key(1)).status_code == 303
    reward_mail = wait_for_mail(smtp, 2)[-1]
    body = text_of(reward_mail)
    assert reward_code(0) in body and "erstattes ikke" in body and "Aktivér koden senest den" in body
    assert "Microsoft Luxembourg" in body and "da-dk/contactus" in body


def test_the_language_can_be_chosen(client: TestClient) -> None:
    response = client.get("/language?lang=nb&next=/signin")
    assert response.headers["location"] == "/signin"
    assert "Send påloggingslenke" in client.get("/signin").text
    assert client.get("/language?lang=nb&next=https://evil.example/").headers["location"] == "/"  # no open redirect


def test_the_absolute_timeout_ends_a_session_even_when_active(client: TestClient, smtp: MailServer,
                                                              web_settings: Settings) -> None:
    follow_link(client, sign_in(client, smtp))
    start = datetime.now(UTC)
    step = timedelta(minutes=web_settings.session_idle_minutes - 1)
    moment = start
    while moment + step < start + timedelta(hours=web_settings.session_max_hours):
        moment += step
        with freeze_time(moment, real_asyncio=True):
            assert client.get("/rewards").status_code == 200  # active: the idle timer keeps resetting
    with freeze_time(start + timedelta(hours=web_settings.session_max_hours, seconds=1), real_asyncio=True):
        assert client.get("/rewards").status_code == 303


def test_cookies_are_secure_over_https(web_settings: Settings, shop: sqlite3.Connection, smtp: MailServer) -> None:
    with TestClient(create_app(replace(web_settings, public_url="https://testserver")), base_url="https://testserver",
                    follow_redirects=False) as secure_client:
        link = sign_in(secure_client, smtp).replace("https://testserver", "")
        response = secure_client.get(link)
        assert "Secure" in response.headers["set-cookie"]
        assert "max-age=31536000" in response.headers["strict-transport-security"]


def unknown_key(n: int) -> str:
    return f"GUESS{n:020d}"


def test_guessing_product_keys_does_not_pay(client: TestClient, smtp: MailServer, web_settings: Settings,
                                             shop: sqlite3.Connection) -> None:
    follow_link(client, sign_in(client, smtp))
    limit = web_settings.key_attempts_per_hour
    for n in range(limit):
        assert "R-X11" in submit(client, redeem_form(client), unknown_key(n)).text
    # Over the limit even a genuine key is refused, before it is looked up (R-X12).
    limited = submit(client, redeem_form(client), product_key(1))
    assert limited.status_code == 429 and limited.headers["retry-after"] == "3600"
    assert "too many attempts" in limited.text and "R-X12" in limited.text and "R-X11" not in limited.text
    assert shop.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0] == 0
    # Another account from the same address is limited too (per IP).
    client.cookies.clear()
    follow_link(client, sign_in(client, smtp, "accomplice@example.com"))
    assert submit(client, redeem_form(client), product_key(1)).status_code == 429
    # An hour later the account may try again.
    with freeze_time(datetime.now(UTC) + timedelta(hours=1, seconds=1), real_asyncio=True):
        client.cookies.clear()
        follow_link(client, sign_in(client, smtp, "later@example.com"))
        assert submit(client, redeem_form(client), product_key(1)).status_code == 303


def test_support_redeeming_through_the_cli_is_not_limited(shop: sqlite3.Connection) -> None:
    from promo.redemption import RedeemRequest, redeem_sync
    now = datetime.now(UTC)
    for n in range(15):
        request = RedeemRequest("open-today", ANN, unknown_key(n), terms_accepted=True).normalized()
        assert redeem_sync(shop, request, now).decision.rules == ["R-X11"]  # guess_limit=None: never R-X12


def test_redeeming_an_unknown_offer_is_a_404(client: TestClient, smtp: MailServer) -> None:
    follow_link(client, sign_in(client, smtp))
    page = redeem_form(client)
    response = client.post("/offers/no-such-offer/redeem", data={
        "csrf": hidden(page, "csrf"), "idempotency_key": hidden(page, "idempotency_key"),
        "product_key": product_key(1), "country": "DK", "accept_terms": "yes"})
    assert response.status_code == 404 and "Traceback" not in response.text


@pytest.mark.sqlite_only("SQLite's group commit on the event loop or the writer thread; PostgreSQL's transactions "
                         "commit side by side and its pool's figures are issue 18's")
def test_metrics_show_where_redemptions_were_committed(client: TestClient, smtp: MailServer) -> None:
    """Operators see group commits made on the event loop (the normal path) and any that had
    to queue on the writer thread (writers contending)."""
    follow_link(client, sign_in(client, smtp))
    assert submit(client, redeem_form(client), product_key(1)).status_code == 303
    body = client.get("/metrics").text
    loop = float(re.search(r'promo_db_group_commits\{where="loop"\} (\S+)', body).group(1))  # type: ignore[union-attr]
    thread = float(re.search(r'promo_db_group_commits\{where="thread"\} (\S+)', body).group(1))  # type: ignore[union-attr]
    writes = float(re.search(r"^promo_db_grouped_writes (\S+)$", body, re.M).group(1))  # type: ignore[union-attr]
    # Every commit here saved at least one write; the relay's may have queued on the thread.
    assert loop >= 1 and writes >= loop + thread
