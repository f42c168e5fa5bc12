"""The review pages in the reviewer's language (issue 19, item 5): the queue, a claim with its
flags and its receipt's preview problem, the decided claims and their filter errors, and the
decision's refusals, in Danish and Norwegian; English stays as it was."""

from __future__ import annotations

import sqlite3

import pytest
from starlette.testclient import TestClient

from promo.config import Settings
from tests.support.review_fixtures import HOSTILE_PDF, add_claim
from tests.support.staff import staff, staff_sign_in
from tests.support.web import hidden

WORDS = {
    "da": {"queue": ["Gennemgangskø", "Afgjorte sager", "4 konti fra denne adresse", "ingen aktiveringspost (R-X11)"],
           "claim": ["Sag ", "afventer", "Mistænkelig (R-X12):", "Hvorfor den er her (R-X11)", "Godkend og send koden",
                     "Kvitteringen kunne ikke vises (PDF-filen kunne ikke tegnes)", "Tilbage til køen"],
           "history": ["Afgjort fra (UTC-dag)", "Sagsbehandler", "skal være godkendt eller afvist",
                       "skal være en dato som 2013-10-01"],
           "short": "For at afvise skal du med få ord skrive hvorfor", "own": "ingen behandler sin egen sag"},
    "nb": {"queue": ["Gjennomgangskø", "Avgjorte saker", "4 kontoer fra denne adressen", "ingen aktiveringspost (R-X11)"],
           "claim": ["Sak ", "venter", "Mistenkelig (R-X12):", "Hvorfor den er her (R-X11)", "Godkjenn og send koden",
                     "Kvitteringen kunne ikke vises (PDF-filen kunne ikke tegnes)", "Tilbake til køen"],
           "history": ["Avgjort fra (UTC-dag)", "Saksbehandler", "må være godkjent eller avvist",
                       "må være en dato som 2013-10-01"],
           "short": "For å avvise må du med noen få ord skrive hvorfor", "own": "ingen behandler sin egen sak"},
}
ENGLISH = ["Review queue", "Decided claims", "accounts from this address", "Why it is here", "Approve and send the code",
           "could not be previewed", "Back to the queue", "Decided from (UTC day)", "must be approved or rejected",
           "must be a date such as", "To reject, say why", "nobody reviews their own claim"]


@pytest.mark.parametrize("lang", ["da", "nb"])
def test_the_review_pages_speak_the_reviewers_language(client: TestClient, shop: sqlite3.Connection,
                                                        web_settings: Settings, lang: str) -> None:
    ids = [add_claim(shop, web_settings.receipts_dir, account=f"user{n}@example.com", key=210 + n, ip="198.51.100.7",
                     receipt=HOSTILE_PDF) for n in range(4)]
    staff(shop, "support@example.com", "support")
    own = add_claim(shop, web_settings.receipts_dir, account="support@example.com", key=220, ip="203.0.113.9")
    assert staff_sign_in(client, "support@example.com").status_code == 303
    english = client.get(f"/review/{ids[-1]}").text
    assert "Approve and send the code" in english and "4 accounts from this address" in english
    client.cookies.set("promo_lang", lang)
    words = WORDS[lang]
    pages = {"queue": client.get("/review/"), "claim": client.get(f"/review/{ids[-1]}"),
             "history": client.get("/review/decided?decision=maybe&since=yesterday")}
    assert [p.status_code for p in pages.values()] == [200, 200, 422]
    claim = pages["claim"].text
    short = client.post(f"/review/{ids[-1]}/reject", data={"csrf": hidden(claim, "csrf"), "reason": "x"})
    mine = client.post(f"/review/{own}/approve", data={"csrf": hidden(claim, "csrf")})
    assert short.status_code == 422 and mine.status_code == 403
    for name, page in pages.items():
        assert f'<html lang="{lang}">' in page.text
        for word in words[name]:
            assert word in page.text, (name, word)
    assert words["short"] in short.text and words["own"] in mine.text
    for page in (*(p.text for p in pages.values()), short.text, mine.text):
        for phrase in ENGLISH:
            assert phrase not in page, phrase
    assert shop.execute("SELECT COUNT(*) FROM review_claims WHERE status = 'pending'").fetchone()[0] == 5
