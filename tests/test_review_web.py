"""The manual review journey over HTTP: a consumer asks, a reviewer decides, email follows."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta

from starlette.testclient import TestClient

from promo.config import Settings
from tests.mailserver import MailServer
from tests.test_auditor import staff, staff_sign_in
from tests.web import ANN, follow_link, hidden, redeem_form, sign_in, submit, text_of, wait_for_mail_to

PDF = b"%PDF-1.4\n% a receipt\n"
UNKNOWN_KEY = "QQQQQ-QQQQQ-QQQQQ-QQQQQ-QQQQ1"
DAY = (datetime.now(UTC).date() - timedelta(days=2)).isoformat()  # inside the open-today offer's window


def ask_for_review(client: TestClient, smtp: MailServer, receipt: bytes = PDF, account: str = ANN,  # type: ignore[no-untyped-def]
                   lang: str | None = None):
    follow_link(client, sign_in(client, smtp, account))
    refused = submit(client, redeem_form(client), UNKNOWN_KEY)
    assert "R-X11" in refused.text and "Ask for a manual review with your receipt" in refused.text
    if lang:  # the claim remembers the language it was made in, for the emails about it
        client.headers["Accept-Language"] = lang
    form = client.get(f"/offers/open-today/review?product_key={UNKNOWN_KEY}")
    assert form.status_code == 200 and UNKNOWN_KEY in form.text
    return client.post("/offers/open-today/review", data={
        "csrf": hidden(form.text, "csrf"), "product_key": UNKNOWN_KEY, "sku": "O365-HOME-ESD", "country": "DK",
        "purchased_at": DAY, "activated_at": DAY}, files={"receipt": ("receipt.pdf", receipt, "application/pdf")})


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
        "purchased_at": "not a date", "activated_at": DAY}, files={"receipt": ("receipt.pdf", PDF, "application/pdf")})
    assert again.status_code == 422
    chosen = countries(again.text)
    assert chosen.count(" selected>") == 1 and '<option value="DK" selected>' in chosen
