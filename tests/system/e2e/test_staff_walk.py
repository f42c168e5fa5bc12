"""Every staff page, for every staff role, in a real browser (issue 19, "Tests"): each role
signs in and walks the pages its menu offers and the staff pages those link to, at 1280 and
360 px. On every page:

- no Content-Security-Policy violation and no console error (tests/system/e2e/conftest.py's watch
  fails the test on any, with the page named);
- the page as a whole never scrolls sideways (document.documentElement.scrollWidth <=
  innerWidth): wide tables scroll inside themselves;
- no link leads to a page the role cannot open: each link's target, fetched with the role's
  own session, does not answer 403 (nor 5xx);
- axe-core (tests/system/e2e/vendor/axe.min.js, pinned) finds no serious or critical violation.

Every problem of a role's walk is collected and reported together, page by page, so one
run says everything that is wrong."""

from __future__ import annotations

import re
import subprocess
from collections import deque
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

import pytest
from playwright.sync_api import Page

from promo.db import connect
from promo.staff import ROLES
from tests.support.review_fixtures import add_claim
from tests.support.served import PROMO, Served
from tests.system.e2e.chromium import shot  # importing it skips these tests without chromium

PASSWORD = "walking passphrase 19"
AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
WIDTHS = (1280, 360)
STAFF_PATHS = ("/console", "/audit", "/review", "/staff")
NOT_PAGES = re.compile(r"(\.csv|\.json|/receipt(/preview)?|/signout|/export[^/]*)$")  # downloads and actions, not pages
MAX_PAGES = 45  # per role: one page of each kind is enough to judge its template
SEVERE = ("serious", "critical")


def seed(server: Served, tmp_path: Path) -> None:
    """A staff member of each role, a redemption, and a claim waiting for review."""
    env = {**server.env, "PROMO_STAFF_PASSWORD": PASSWORD}

    def run(*args: str) -> None:
        done = subprocess.run([PROMO, *args], env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr

    for role in ROLES:
        run("staff", "add", f"{role}@example.com", "--role", role)
    run("redeem", "--campaign", "demo-xbox-gold", "--account", "walker@example.com", "--product-key",
        "DEMO1-AAAAA-BBBBB-CCCCC-00001", "--accept-terms")
    conn = connect(tmp_path / "promo.sqlite3")
    try:
        add_claim(conn, tmp_path / "var" / "receipts", account="claimant@example.com", key=300, campaign="demo-xbox-gold")
    finally:
        conn.close()


def kind_of(url: str) -> str:
    """Pages of one kind (one template): ids become N, and only the query's names count."""
    parts = urlsplit(url)
    names = sorted({name for name, _ in parse_qsl(parts.query, keep_blank_values=True)})
    return re.sub(r"\d+", "N", parts.path) + ("?" + "&".join(names) if names else "")


def links_of(page: Page) -> list[str]:
    hrefs = page.evaluate("Array.from(document.querySelectorAll('a[href]'), a => a.getAttribute('href'))")
    return [urljoin(page.url, h).split("#")[0] for h in hrefs if h and not h.startswith(("mailto:", "#"))]


def axe_problems(page: Page) -> list[str]:
    """Serious and critical axe-core violations of the page as it is now. The script is
    evaluated through the DevTools protocol, so the page's CSP does not see it."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text(encoding="utf-8") + "\n;0")
    found = page.evaluate("axe.run(document, {resultTypes: ['violations']}).then(r => r.violations.map(v =>"
                          " ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)})))")
    return [f"axe {v['impact']} {v['id']} ({v['help']}): {', '.join(v['nodes'])}" for v in found if v["impact"] in SEVERE]


def overflow(page: Page) -> str | None:
    widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    if widths[0] <= widths[1]:
        return None
    widest = page.evaluate("""(() => { const out = []; for (const e of document.querySelectorAll('main *, header *')) {
        const r = e.getBoundingClientRect(); if (r.right > window.innerWidth + 0.5 && e.children.length === 0)
        out.push(e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + String(e.className).split(' ')[0] : ''));
        } return out.slice(0, 4); })()""")
    return f"the page scrolls sideways: {widths[0]} px wide in {widths[1]} px ({', '.join(widest)})"


def sign_in(page: Page, server: Served, role: str) -> None:
    page.goto(server.url + "/staff/signin")
    page.get_by_label("Email address").fill(f"{role}@example.com")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()
    assert "/staff/signin" not in page.url, f"{role} could not sign in"


@pytest.mark.parametrize("role", ROLES)
def test_every_staff_page_of_each_role(browser: Any, default_server: Served, tmp_path: Path, role: str) -> None:
    seed(default_server, tmp_path)
    context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
    page = context.new_page()
    sign_in(page, default_server, role)
    origin = default_server.url
    menu = [urljoin(page.url, h) for h in page.evaluate(
        "Array.from(document.querySelectorAll('header.site nav:not(.languages) a[href]'), a => a.getAttribute('href'))")]
    assert menu, f"{role} has no menu"
    queue: deque[tuple[str, int]] = deque([(page.url, 0), *((url, 0) for url in menu)])
    seen_kinds: set[str] = set()
    statuses: dict[str, int] = {}
    problems: dict[str, list[str]] = {}
    walked: list[str] = []

    locations: dict[str, str] = {}

    def status_of(url: str) -> int:
        if url not in statuses:
            answer = context.request.get(url, max_redirects=0)
            statuses[url] = answer.status
            if answer.status in (302, 303, 307):
                locations[url] = urljoin(url, answer.headers.get("location", ""))
        return statuses[url]

    while queue and len(walked) < MAX_PAGES:
        url, depth = queue.popleft()
        path = urlsplit(url).path
        if kind_of(url) in seen_kinds or not path.startswith(STAFF_PATHS) or NOT_PAGES.search(path):
            continue
        seen_kinds.add(kind_of(url))
        target = locations.get(url) if status_of(url) != 200 else None
        if target and urlsplit(target).path.startswith(STAFF_PATHS) and not urlsplit(target).path.startswith("/staff/signin"):
            queue.appendleft((target, depth))  # a link that starts somewhere (View as customer): walk where it leads
            continue
        if status_of(url) != 200:
            problems.setdefault(url, []).append(f"answers {status_of(url)} to {role}")
            continue
        walked.append(url)
        where = problems.setdefault(url, [])
        for width in WIDTHS:
            page.set_viewport_size({"width": width, "height": 900})
            page.goto(url)
            wide = overflow(page)
            if wide:
                where.append(f"at {width} px, {wide}")
            where.extend(f"at {width} px, {p}" for p in axe_problems(page))
        shot(page, f"walk-{role}-{len(walked):02d}-360")
        for link in links_of(page):
            if not link.startswith(origin):
                continue
            code = status_of(link)
            if code == 403 or code >= 500:
                where.append(f"links to {urlsplit(link).path} which answers {code} to {role}")
            if depth < 2:
                queue.append((link, depth + 1))

    report = {url.removeprefix(origin): found for url, found in problems.items() if found}
    assert len(walked) >= len(menu), f"{role} walked {walked}"
    assert not report, f"{role}: problems on {len(report)} of {len(walked)} pages walked:\n" + "\n".join(
        f"  {url}\n    " + "\n    ".join(dict.fromkeys(found)) for url, found in report.items())
