"""The review queue a support agent can work all day (issue 19, item 9), over real HTTP on a
real database: receipts shown inline (a PDF's first page drawn as a PNG, an image as it is, a
hostile PDF "could not be previewed" and never a 5xx), the key's activation record beside the
claim, the decided claims filtered and paged, the "many accounts from one address" flag that
ignores known shared addresses, and the decision that moves on to the next claim."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from promo.app import create_app
from promo.config import Settings
from promo.db import transaction
from promo.paging import Keyset
from promo.review_history import DecidedFilter, decided_claims
from promo.reviews import decide
from tests.support.database import product_key
from tests.support.review_fixtures import HOSTILE_PDF, RECEIPT_PDF, add_claim, decode_png, minimal_pdf, red_png
from tests.support.staff import staff, staff_sign_in
from tests.support.web import hidden


@pytest.fixture
def support(client: TestClient, shop: sqlite3.Connection) -> TestClient:
    staff(shop, "support@example.com", "support")
    assert staff_sign_in(client, "support@example.com").status_code == 303
    return client


def test_a_pdf_receipt_is_shown_as_its_first_page(support: TestClient, shop: sqlite3.Connection,
                                                  web_settings: Settings) -> None:
    claim_id = add_claim(shop, web_settings.receipts_dir, account="ann@example.com", key=101)
    page = support.get(f"/review/{claim_id}")
    assert page.status_code == 200
    assert f'<img id="receipt-preview" src="/review/{claim_id}/receipt/preview"' in page.text
    assert "first page of the PDF" in page.text and f'href="/review/{claim_id}/receipt"' in page.text
    image = support.get(f"/review/{claim_id}/receipt/preview")
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"
    assert image.headers["content-disposition"].startswith("inline")
    assert "img-src 'self'" in image.headers["content-security-policy"]
    assert "img-src 'self'" in page.headers["content-security-policy"]
    width, height, rows = decode_png(image.content)
    assert (width, height) == (400, 200)  # 200 x 100 pt at 2x
    middle = rows[height // 2]
    assert middle[:3] == b"\0\0\0" and middle[-3:] == b"\xff\xff\xff"  # the black box on the left, white on the right
    # Drawn once: kept beside the receipts, readable by the server only.
    kept = list((web_settings.receipts_dir / "previews").iterdir())
    assert [p.suffix for p in kept] == [".png"] and oct(kept[0].stat().st_mode & 0o777) == "0o600"
    assert support.get(f"/review/{claim_id}/receipt/preview").content == image.content


def test_an_image_receipt_is_shown_as_it_is(support: TestClient, shop: sqlite3.Connection, web_settings: Settings) -> None:
    receipt = red_png()
    claim_id = add_claim(shop, web_settings.receipts_dir, account="ann@example.com", key=102, receipt=receipt)
    assert f'src="/review/{claim_id}/receipt/preview"' in support.get(f"/review/{claim_id}").text
    image = support.get(f"/review/{claim_id}/receipt/preview")
    assert image.content == receipt and image.headers["content-type"] == "image/png"
    assert image.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("receipt", [HOSTILE_PDF, b"%PDF-", minimal_pdf(b"", pages=51)],
                         ids=["garbage-with-a-pdf-header", "header-only", "too-many-pages"])
def test_a_pdf_that_cannot_be_drawn_could_not_be_previewed(support: TestClient, shop: sqlite3.Connection,
                                                            web_settings: Settings, receipt: bytes) -> None:
    claim_id = add_claim(shop, web_settings.receipts_dir, account="ann@example.com", key=103, receipt=receipt)
    page = support.get(f"/review/{claim_id}")
    assert page.status_code == 200 and 'id="receipt-problem"' in page.text
    assert "could not be previewed" in page.text and "receipt-preview" not in page.text
    assert support.get(f"/review/{claim_id}/receipt").content == receipt  # the download is still offered
    assert support.get(f"/review/{claim_id}/receipt/preview").status_code == 404
    assert support.get(f"/review/{claim_id}").status_code == 200  # remembered, not drawn again
    assert [p.suffix for p in (web_settings.receipts_dir / "previews").iterdir()] == [".failed"]


def test_a_receipt_is_shown_to_reviewers_only(client: TestClient, shop: sqlite3.Connection, web_settings: Settings) -> None:
    claim_id = add_claim(shop, web_settings.receipts_dir, account="ann@example.com", key=104)
    assert client.get(f"/review/{claim_id}/receipt/preview").status_code in (302, 303)  # not signed in: sign in first
    staff(shop, "auditor@example.com", "auditor")
    assert staff_sign_in(client, "auditor@example.com").status_code == 303
    assert client.get(f"/review/{claim_id}/receipt/preview").status_code == 403


def test_the_key_s_activation_record_is_beside_every_claim_that_has_one(support: TestClient, shop: sqlite3.Connection,
                                                                          web_settings: Settings) -> None:
    claim_id = add_claim(shop, web_settings.receipts_dir, account="ann@example.com", key=105)
    assert 'id="no-record"' in support.get(f"/review/{claim_id}").text
    # The record arrives after the claim (an activation import), bound to someone, for another product.
    day = (datetime.now(UTC).date() - timedelta(days=2)).isoformat()
    with transaction(shop):
        shop.execute("INSERT INTO activations (product_key, sku, country, activation_country, purchased_at, activated_at,"
                     " account_email, imported_at, import_batch) VALUES (:k, 'O365-UNI-FPP', 'NO', 'NO', :d, :d,"
                     " 'bob@example.com', :i, 'test')", {"k": product_key(105).replace("-", ""), "d": day, "i": day})
    page = support.get(f"/review/{claim_id}").text
    record = page.split('id="record"')[1].split("</table>")[0]
    assert "bound to bob@example.com" in record
    assert re.search(r'<tr class="mismatch"><th scope="row">Product</th><td>O365-UNI-FPP</td>\s*<td>O365-HOME-ESD', record)
    assert re.search(r'<tr class="mismatch"><th scope="row">Bought in</th><td>NO</td>\s*<td>DK', record)
    assert re.search(rf'<tr><th scope="row">Bought</th><td>{day}</td>', record)  # the same day: no mismatch
    assert "*****-*****-*****-*****-" + product_key(105)[-5:] in page and product_key(105).replace("-", "") not in page


def test_many_accounts_from_one_address_are_flagged_unless_it_is_known_shared(
        shop: sqlite3.Connection, web_settings: Settings) -> None:
    ids = [add_claim(shop, web_settings.receipts_dir, account=f"user{n}@example.com", key=110 + n, ip="198.51.100.7")
           for n in range(4)]
    other = add_claim(shop, web_settings.receipts_dir, account="solo@example.com", key=120, ip="203.0.113.9")
    staff(shop, "support@example.com", "support")
    for shared, flagged in [((), True), (("198.51.100.0/24",), False), (("198.51.100.7", "2001:db8::/32"), False)]:
        with TestClient(create_app(web_settings.replace(shared_addresses=shared)), follow_redirects=False) as client:
            assert staff_sign_in(client, "support@example.com").status_code == 303
            claim = client.get(f"/review/{ids[-1]}").text
            assert ("4 accounts from this address" in claim) is flagged, shared
            queue = client.get("/review/").text
            assert queue.count("4 accounts from this address") == (4 if flagged else 0), shared
            assert "accounts from this address" not in client.get(f"/review/{other}").text


def test_deciding_moves_on_to_the_next_waiting_claim(support: TestClient, shop: sqlite3.Connection,
                                                     web_settings: Settings) -> None:
    first, second = (add_claim(shop, web_settings.receipts_dir, account=f"c{n}@example.com", key=130 + n) for n in range(2))
    page = support.get(f"/review/{first}").text
    sent = support.post(f"/review/{first}/reject", data={"csrf": hidden(page, "csrf"), "reason": "The receipt is unreadable."})
    assert sent.status_code == 303 and sent.headers["location"] == f"/review/{second}?decided={first}"
    assert f"Claim {first} is decided" in support.get(sent.headers["location"]).text
    sent = support.post(f"/review/{second}/reject", data={"csrf": hidden(page, "csrf"), "reason": "Not our product."})
    assert sent.headers["location"] == f"/review/?decided={second}"
    assert "No other claim is waiting" in support.get(sent.headers["location"]).text
    rows = shop.execute("SELECT id, status, reason FROM review_claims ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [(first, "rejected", "The receipt is unreadable."), (second, "rejected", "Not our product.")]


def test_decided_claims_are_filtered_and_paged_as_the_database_holds_them(
        support: TestClient, shop: sqlite3.Connection, web_settings: Settings) -> None:
    now = datetime.now(UTC)
    ids = [add_claim(shop, web_settings.receipts_dir, account=f"h{n}@example.com", key=140 + n) for n in range(7)]
    for n, claim_id in enumerate(ids[:6]):  # the last stays pending
        who = "ann.support@example.com" if n % 2 else "bo.support@example.com"
        decide(shop, claim_id, "reject", reviewer=who, reason=f"Reason number {n}.", now=now - timedelta(days=n), ip=None)
    assert support.get("/review/decided").status_code == 200

    def listed(query: str) -> list[int]:
        page = support.get("/review/decided?" + query)
        assert page.status_code == 200, page.text
        table = page.text.split('id="decided-claims"')[1].split("</table>")[0] if 'id="decided-claims"' in page.text else ""
        return [int(n) for n in re.findall(r'<a href="/review/(\d+)">', table)]

    def stored(where: str, params: dict[str, object]) -> list[int]:
        return [r[0] for r in shop.execute(
            "SELECT r.id FROM review_claims r JOIN campaigns c ON c.id = r.campaign_id"
            f" WHERE r.status IN ('approved', 'rejected') AND {where} ORDER BY r.id DESC", params)]

    day = lambda days: (now - timedelta(days=days)).date().isoformat()  # noqa: E731
    assert listed("") == stored("1 = 1", {}) and len(listed("")) == 6
    assert listed("decision=rejected") == stored("r.status = 'rejected'", {})
    assert listed("decision=approved") == [] == stored("r.status = 'approved'", {})
    assert listed("reviewer=ann.support@example.com") == stored("r.reviewer_email = :r", {"r": "ann.support@example.com"})
    assert listed("reviewer=ANN.support@example.com") == listed("reviewer=ann.support@example.com") != []
    assert listed("campaign=open-today") == stored("c.slug = 'open-today'", {})
    assert listed("campaign=no-such-campaign") == []
    since, until = day(3), day(1)
    expected = stored("r.decided_at >= :s AND r.decided_at < :u",
                      {"s": since + "T00:00:00", "u": (now - timedelta(days=0)).date().isoformat() + "T00:00:00"})
    assert listed(f"since={since}&until={until}") == expected and len(expected) == 3
    assert listed(f"reviewer=bo.support@example.com&since={since}") == stored(
        "r.reviewer_email = 'bo.support@example.com' AND r.decided_at >= :s", {"s": since + "T00:00:00"})
    # Paging: a page of two, then the next, through the service's Keyset, as the pages link them.
    first = decided_claims(shop, DecidedFilter(), Keyset(size=2))
    second = decided_claims(shop, DecidedFilter(), Keyset(before=int(first.next_query["before"]), size=2))  # type: ignore[index]
    assert [c.id for c in first.items + second.items] == stored("1 = 1", {})[:4]
    assert second.prev_query == {"after": str(second.items[0].id)}
    # Bad filters: named, never a 500.
    bad = support.get("/review/decided?decision=maybe&since=yesterday&before=x")
    assert bad.status_code == 422
    assert "must be approved or rejected" in bad.text and "must be a date such as" in bad.text


def test_a_decided_claim_page_shows_who_decided_and_why(support: TestClient, shop: sqlite3.Connection,
                                                         web_settings: Settings, tmp_path: Path) -> None:
    claim_id = add_claim(shop, web_settings.receipts_dir, account="d@example.com", key=150, receipt=RECEIPT_PDF)
    decide(shop, claim_id, "reject", reviewer="bo.support@example.com", reason="Wrong product.", now=datetime.now(UTC),
           ip=None)
    page = support.get(f"/review/{claim_id}").text
    assert "Wrong product." in page and "bo.support@example.com" in page and 'id="approve"' not in page
    assert "review.js" not in page  # no shortcuts where nothing is left to decide
