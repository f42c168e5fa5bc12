"""Each role sees only what it may open (issue 19, item 4): the menu and every link and form
on every staff page come from the routes' own role checks (views/access.py). A crawl with
the real app follows every link a role is shown and sends every form it is shown (without
its CSRF token, so nothing happens): none answers "not allowed". An expired or forged
staff form says so, with a way back to retry, instead of blaming the role."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, date, datetime
from html import unescape
from urllib.parse import urljoin, urlsplit

import pytest
from starlette.testclient import TestClient

from promo.activations import Activation
from promo.config import Settings
from promo.db import transaction
from promo.reviews import store_receipt, submit_claim
from promo.staff import ROLES
from promo.views.access import MENU
from tests.support.console import signed_in
from tests.support.database import product_key
from tests.support.staff import PASSWORD, staff, staff_sign_in
from tests.support.web import hidden

STAFF_AREAS = ("/console", "/audit", "/review", "/staff")
FORBIDDEN = "cannot open this page or do this"  # templates/staff/forbidden.html
EXPIRED = 'id="expired-form"'  # templates/staff/expired.html
MENUS = {
    "admin": [label for _path, label in MENU],
    "marketer": ["Campaigns", "Dashboard", "Activations", "Nonprofits", "API tokens"],
    "auditor": ["Campaigns", "Dashboard", "Activations", "Nonprofits", "Decision log", "Staff actions", "Reconciliation",
                "Find a redemption", "API tokens"],
    "support": ["Find a redemption", "Review queue"],
}
MAX_PAGES = 400


@pytest.fixture
def records(shop: sqlite3.Connection, web_settings: Settings) -> sqlite3.Connection:
    """Something behind every kind of link: a redemption, a pending review claim with its
    receipt, an import job, a staff member and a token besides the crawler."""
    from tests.support.open_today import redeem_one
    from tests.support.staff import token_for
    redeem_one(shop)
    name, kind = store_receipt(web_settings.receipts_dir, b"%PDF-1.4\n% receipt\n", 1_000_000)
    evidence = Activation(product_key(50).replace("-", ""), "O365-HOME-ESD", "DK", "DK", date.today(), date.today(), None)
    with transaction(shop):
        submit_claim(shop, campaign="open-today", account_email="bob@example.com", activation=evidence, receipt_file=name,
                     kind=kind, locale="en", ip="192.0.2.9", now=datetime.now(UTC))
        shop.execute("INSERT INTO import_jobs (kind, source, size_bytes, status, imported, actor, started_at)"
                     " VALUES ('activations', 'x.csv', 1, 'done', 1, 'test', '2026-01-01T00:00:00.000000Z')")
    staff(shop, "colleague@example.com", "support")
    token_for(shop, "colleague@example.com", "their script")
    return shop


def links_and_forms(html: str, base: str) -> tuple[set[str], list[tuple[str, str]]]:
    hrefs = {urljoin(base, unescape(h)) for h in re.findall(r'<a [^>]*href="([^"]*)"', html)}
    forms = [(m.lower(), urljoin(base, unescape(a))) for m, a in re.findall(r'<form method="(\w+)" action="([^"]*)"', html)]
    return hrefs, forms


def staff_path(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.netloc not in ("", "testserver") or not parts.path.startswith(STAFF_AREAS):
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def crawl(client: TestClient, start: str) -> tuple[dict[str, int], dict[str, int]]:
    """Every staff page reachable from `start` by links (GET), and every form shown on them
    posted without its token: {url: status} for each."""
    pages: dict[str, int] = {}
    posted: dict[str, int] = {}
    queue = [start]
    while queue and len(pages) < MAX_PAGES:
        url = queue.pop(0)
        if url in pages:
            continue
        response = client.get(url)
        pages[url] = response.status_code
        assert FORBIDDEN not in response.text, url
        if not response.headers.get("content-type", "").startswith("text/html"):
            continue
        hrefs, forms = links_and_forms(response.text, "http://testserver" + url)
        for method, action in forms:
            target = staff_path(action)
            if target is None:
                continue
            if method == "get":
                queue.append(target)
            elif target not in posted and target != "/staff/signout":  # signing out ends the crawl
                answer = client.post(target, data={"csrf": "not-this-session's"})
                posted[target] = answer.status_code
                assert FORBIDDEN not in answer.text and EXPIRED in answer.text, (url, target, answer.status_code)
        queue.extend(t for t in (staff_path(h) for h in hrefs) if t and t not in pages)
    assert len(pages) < MAX_PAGES, "the crawl did not finish: too many distinct addresses"
    return pages, posted


@pytest.mark.parametrize("role", ROLES)
def test_a_role_is_offered_only_what_it_may_open(client: TestClient, records: sqlite3.Connection, role: str) -> None:
    staff(records, f"{role}@example.com", role)
    home = client.get("/staff/signin")  # signed in without a page to go back to: the role's home
    landing = client.post("/staff/signin", data={"csrf": hidden(home.text, "csrf"), "email": f"{role}@example.com",
                                                 "password": PASSWORD, "next": "/"})
    start = landing.headers["location"]
    menu = re.search(r'<nav aria-label="Staff">(.*?)</nav>', client.get(start).text, re.S)
    assert menu, start
    assert [unescape(label) for label in re.findall(r'<a href="[^"]+"[^>]*>([^<]+)</a>', menu.group(1))] == MENUS[role]
    pages, posted = crawl(client, start)
    assert {u: s for u, s in pages.items() if s >= 400} == {}, role
    assert {urlsplit(u).path for u in pages} >= {path for path, label in MENU if label in MENUS[role]}
    assert all(status == 403 for status in posted.values())
    assert client.get("/audit/").status_code in ((200,) if role in ("admin", "auditor") else (403,))  # the crawl's signal
    if role != "support":
        assert any(u.startswith("/console/campaigns/open-today") for u in pages)
    assert len(posted) >= {"admin": 10, "marketer": 8, "auditor": 1, "support": 2}[role], posted  # it found forms to send
    print(role, len(pages), "pages,", len(posted), "forms")


def test_an_expired_form_says_so_and_offers_the_page_again(client: TestClient, shop: sqlite3.Connection) -> None:
    signed_in(client, shop, "marketer")
    page = client.get("/console/campaigns/open-today")
    old_token = hidden(page.text, "csrf")
    client.cookies.clear()  # signed in again (another tab, a new day): a new session and token
    assert staff_sign_in(client, "marketer@example.com").status_code == 303
    events = shop.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0]
    for token in (old_token, "forged", None):
        data = {"action": "pause"} | ({"csrf": token} if token else {})
        expired = client.post("/console/campaigns/open-today/state", data=data)
        assert expired.status_code == 403 and "This form has expired" in expired.text and FORBIDDEN not in expired.text
        retry = re.search(r'<a class="button" href="([^"]+)">Open the page again and retry</a>', expired.text)
        assert retry and retry.group(1) == "/console/campaigns/open-today"
    assert shop.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0] == events  # nothing happened
    fresh = client.get("/console/campaigns/open-today")
    assert client.post("/console/campaigns/open-today/state",
                       data={"csrf": hidden(fresh.text, "csrf"), "action": "pause"}).status_code == 200  # asks to confirm
    for path, retry_to in (("/review/1/approve", None), ("/staff/signout", "/console/"),
                           ("/console/campaigns/open-today/batches/1/void", "/console/campaigns/open-today"),
                           ("/console/tokens/1/revoke", "/console/tokens"),
                           ("/console/campaigns/import", "/console/"),  # not "the campaign called import"
                           ("/console/nonprofit/returns/1/complete", "/console/nonprofit/")):
        answer = client.post(path, data={"csrf": "forged"})
        if retry_to is None:  # the review queue is not a marketer's: their role, truly
            assert answer.status_code == 403 and FORBIDDEN in answer.text
        else:
            assert answer.status_code == 403 and f'href="{retry_to}">Open the page again' in answer.text, path
    assert client.get("/console/").status_code == 200  # the forged sign-out did not sign out


def test_a_form_sent_after_the_session_ended_comes_back_to_its_page(client: TestClient, shop: sqlite3.Connection) -> None:
    staff(shop, "marketer@example.com", "marketer")
    asked = client.post("/console/campaigns/open-today/batches/1/void", data={"csrf": "x"})
    assert asked.status_code == 303 and asked.headers["location"] == "/staff/signin?next=/console/campaigns/open-today"
    form = client.get(asked.headers["location"])
    signed = client.post("/staff/signin", data={"csrf": hidden(form.text, "csrf"), "email": "marketer@example.com",
                                                "password": PASSWORD, "next": hidden(form.text, "next")})
    assert signed.headers["location"] == "/console/campaigns/open-today"
    assert client.get(signed.headers["location"]).status_code == 200


def test_the_staff_sign_in_form_when_expired_can_be_sent_again(client: TestClient, shop: sqlite3.Connection) -> None:
    staff(shop, "auditor@example.com", "auditor")
    expired = client.post("/staff/signin", data={"csrf": "stale", "email": "auditor@example.com", "password": PASSWORD,
                                                 "next": "/audit/actions"})
    assert expired.status_code == 403 and "This form has expired" in expired.text
    again = client.post("/staff/signin", data={"csrf": hidden(expired.text, "csrf"), "email": "auditor@example.com",
                                               "password": PASSWORD, "next": hidden(expired.text, "next")})
    assert again.status_code == 303 and again.headers["location"] == "/audit/actions"
