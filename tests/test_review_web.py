"""The manual review journey over HTTP: a consumer asks, a reviewer decides, email follows."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime

from starlette.testclient import TestClient

from promo.config import Settings
from tests.support.mailserver import MailServer
from tests.support.review_fixtures import DAY_FIELD, PDF, UNKNOWN_KEY, ask_for_review
from tests.support.staff import staff, staff_sign_in
from tests.support.web import ANN, follow_link, hidden, redeem_form, sign_in, submit, text_of, wait_for_mail_to


def reviewer(client: TestClient, shop: sqlite3.Connection, email: str = "support@example.com", role: str = "support") -> str:
    client.cookies.clear()
    staff(shop, email, role)
    assert staff_sign_in(client, email).status_code == 303
    page = client.get("/review/")
    assert page.status_code == 200
    return page.text


def test_a_reviewer_approves_and_the_code_is_emailed(client: TestClient, smtp: MailServer, shop: sqlite3.Connection,
                                                      web_settings: Settings) -> None:
    sent = ask_for_review(client, smtp)
    assert sent.status_code == 200 and "Waiting for review" in sent.text
    stored = list(web_settings.receipts_dir.iterdir())
    assert len(stored) == 1 and stored[0].read_bytes() == PDF
    assert not str(web_settings.receipts_dir).startswith(str(web_settings.database_path.parent.parent / "static"))
    queue = reviewer(client, shop)
    claim_id = re.search(r'href="/review/(\d+)"', queue).group(1)  # type: ignore[union-attr]
    receipt = client.get(f"/review/{claim_id}/receipt")
    assert receipt.content == PDF and receipt.headers["content-type"] == "application/pdf"
    assert receipt.headers["content-disposition"].startswith("attachment")
    page = client.get(f"/review/{claim_id}").text
    already = len(smtp.received)
    assert client.post(f"/review/{claim_id}/approve", data={"csrf": hidden(page, "csrf")}).status_code == 303
    mail = wait_for_mail_to(smtp, ANN, after=already)
    code = shop.execute("SELECT k.code FROM redemptions r JOIN reward_codes k ON k.id = r.code_id").fetchone()[0]
    assert code in text_of(mail)
    assert shop.execute("SELECT status FROM review_claims").fetchone()[0] == "approved"


def test_a_rejection_emails_the_reason(client: TestClient, smtp: MailServer, shop: sqlite3.Connection) -> None:
    ask_for_review(client, smtp, lang="da")
    del client.headers["Accept-Language"]
    queue = reviewer(client, shop)
    claim_id = re.search(r'href="/review/(\d+)"', queue).group(1)  # type: ignore[union-attr]
    page = client.get(f"/review/{claim_id}").text
    already = len(smtp.received)
    short = client.post(f"/review/{claim_id}/reject", data={"csrf": hidden(page, "csrf"), "reason": "x"})
    assert short.status_code == 422 and "say why" in short.text
    assert client.post(f"/review/{claim_id}/reject", data={"csrf": hidden(page, "csrf"),
                                                          "reason": "The receipt is from 2012."}).status_code == 303
    mail = wait_for_mail_to(smtp, ANN, after=already)
    assert mail["Subject"] == "Din anmodning om manuel gennemgang"  # in the customer's language
    assert "The receipt is from 2012." in text_of(mail) and "Begrundelse:" in text_of(mail)


def test_receipts_are_checked_by_content_on_upload(client: TestClient, smtp: MailServer, web_settings: Settings) -> None:
    refused = ask_for_review(client, smtp, receipt=b"<script>alert(1)</script>")
    assert refused.status_code == 422 and "PDF, JPEG or PNG" in refused.text
    assert not web_settings.receipts_dir.exists() or not list(web_settings.receipts_dir.iterdir())


def test_nobody_reviews_their_own_claim_and_auditors_cannot_decide(client: TestClient, smtp: MailServer,
                                                                   shop: sqlite3.Connection) -> None:
    ask_for_review(client, smtp, account="support@example.com")
    queue = reviewer(client, shop, "support@example.com")
    claim_id = re.search(r'href="/review/(\d+)"', queue).group(1)  # type: ignore[union-attr]
    page = client.get(f"/review/{claim_id}").text
    own = client.post(f"/review/{claim_id}/approve", data={"csrf": hidden(page, "csrf")})
    assert own.status_code == 403 and "nobody reviews their own claim" in own.text
    client.cookies.clear()
    staff(shop, "auditor@example.com", "auditor")
    staff_sign_in(client, "auditor@example.com")
    assert client.get("/review/").status_code == 403
    assert client.post(f"/review/{claim_id}/approve", data={}).status_code == 403
    assert shop.execute("SELECT status FROM review_claims").fetchone()[0] == "pending"


def test_a_review_form_sent_back_keeps_the_chosen_country(client: TestClient, smtp: MailServer) -> None:
    """The review form's country list is the redeem form's fragment: the choice survives an error."""
    def countries(html: str) -> str:
        found = re.search(r'<select id="country".*?</select>', html, re.S)
        assert found
        return found.group(0)

    follow_link(client, sign_in(client, smtp))
    form = client.get(f"/offers/open-today/review?product_key={UNKNOWN_KEY}")
    assert " selected>" not in countries(form.text)
    again = client.post("/offers/open-today/review", data={
        "csrf": hidden(form.text, "csrf"), "product_key": UNKNOWN_KEY, "sku": "O365-HOME-ESD", "country": "DK",
        "purchased_at": "not a date", "activated_at": DAY_FIELD}, files={"receipt": ("receipt.pdf", PDF, "application/pdf")})
    assert again.status_code == 422
    chosen = countries(again.text)
    assert chosen.count(" selected>") == 1 and '<option value="DK" selected>' in chosen


def test_an_unbound_key_is_explained_and_reaches_the_queue_with_its_cause(
        client: TestClient, smtp: MailServer, shop: sqlite3.Connection, web_settings: Settings) -> None:
    """R-X5: in an offer that does not allow unbound keys, a key whose record names no account
    is not granted to whoever comes first: the customer is told why and sent to review."""
    from promo.campaign_store import get_campaign, save_campaign
    from promo.campaigns import parse_campaign_file
    from promo.catalog import load_catalog
    from promo.db import transaction
    from tests.support.database import open_campaign_text, product_key
    from tests.support.redemption import add_codes

    with transaction(shop):
        save_campaign(shop, parse_campaign_file(open_campaign_text("strict-today", allow_unbound_keys=False),
                                                load_catalog(shop)), actor="test", now=datetime.now(UTC))
    add_codes(shop, get_campaign(shop, "strict-today"), 2, start=50)
    follow_link(client, sign_in(client, smtp))
    page = client.get("/offers/strict-today/redeem").text
    key = product_key(1)  # recorded by the shop with no account
    refused = client.post("/offers/strict-today/redeem", data={
        "csrf": hidden(page, "csrf"), "idempotency_key": hidden(page, "idempotency_key"), "product_key": key,
        "country": "DK", "accept_terms": "yes"})
    assert refused.status_code == 422
    assert "does not say which account it belongs to" in refused.text and "R-X5" in refused.text
    link = re.search(r'href="(/offers/strict-today/review\?[^"]+)"', refused.text)
    assert link and "cause=unbound" in link.group(1)
    form = client.get(link.group(1).replace("&amp;", "&"))
    assert form.status_code == 200 and "does not say which account it belongs to" in form.text
    sent = client.post("/offers/strict-today/review", data={
        "csrf": hidden(form.text, "csrf"), "cause": "unbound", "product_key": key, "sku": "O365-HOME-ESD",
        "country": "DK", "purchased_at": DAY_FIELD, "activated_at": DAY_FIELD},
        files={"receipt": ("receipt.pdf", PDF, "application/pdf")})
    assert sent.status_code == 200 and "Waiting for review" in sent.text
    assert shop.execute("SELECT cause FROM review_claims").fetchone()[0] == "key_not_bound"
    queue = reviewer(client, shop)
    assert "key names no account (R-X5)" in queue
    claim_id = re.search(r'href="/review/(\d+)"', queue).group(1)  # type: ignore[union-attr]
    claim_page = client.get(f"/review/{claim_id}").text
    assert 'id="record"' in claim_page and "the key's activation record names no account" in claim_page
    already = len(smtp.received)
    assert client.post(f"/review/{claim_id}/approve", data={"csrf": hidden(claim_page, "csrf")}).status_code == 303
    wait_for_mail_to(smtp, ANN, after=already)
    assert shop.execute("SELECT account_email FROM activations WHERE product_key = :k",
                        {"k": key.replace("-", "")}).fetchone()[0] == ANN


def test_the_review_link_for_an_unknown_key_keeps_its_own_words(client: TestClient, smtp: MailServer) -> None:
    follow_link(client, sign_in(client, smtp))
    refused = submit(client, redeem_form(client), UNKNOWN_KEY)
    assert "cause=unbound" not in refused.text
    form = client.get(f"/offers/open-today/review?product_key={UNKNOWN_KEY}&cause=<b>x</b>")
    assert "We have no record of your purchase" in form.text and "<b>x</b>" not in form.text
