"""The dashboard and overview pages over HTTP (the app with its lifespan, a real SQLite
file), on the campaign with a known history, at the instant the history was written for;
and every console page as HTML the CSP lets through (no style attribute, no inline script)."""

from __future__ import annotations

import re
import sqlite3
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import replace

import pytest
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route
from starlette.testclient import TestClient

from promo.app import create_app
from promo.config import Settings
from tests.support.console import signed_in
from tests.support.dashboard_history import NOW, SPRING, spring_history

DASHBOARD = f"/console/campaigns/{SPRING}/dashboard"


@pytest.fixture
def board_client(settings: Settings, conn: sqlite3.Connection) -> Iterator[TestClient]:
    """The history at NOW, and no mail relay: the email figures stay as written."""
    spring_history(conn)
    with freeze_time(NOW, real_asyncio=True), \
            TestClient(create_app(replace(settings, public_url="http://testserver"), start_relay=False),
                       follow_redirects=False) as client:
        yield client


def cell(html: str, attribute: str, name: str) -> str:
    match = re.search(rf'{attribute}="{name}">([^<]*)<', html)
    assert match, f"no {attribute}={name}"
    return match.group(1)


def rows(html: str, table: str) -> list[list[str]]:
    body = re.search(rf'<table id="{table}"[^>]*>.*?<tbody>(.*?)</tbody>', html, re.S)
    assert body, table
    return [re.findall(r"<td[^>]*>(?:<a [^>]*>)?(?:<span[^>]*>)?([^<]*)", row) for row in re.findall(r"<tr>(.*?)</tr>", body.group(1))]


def svgs(html: str) -> list[ET.Element]:
    """Every chart, parsed as XML: well-formed, or this fails."""
    return [ET.fromstring(svg) for svg in re.findall(r"<svg .*?</svg>", html, re.S)]


def test_the_dashboard_shows_the_figures_of_the_known_history(board_client: TestClient, conn: sqlite3.Connection) -> None:
    signed_in(board_client, conn, "marketer")
    page = board_client.get(f"{DASHBOARD}?day=2026-03-28")
    assert page.status_code == 200, page.text
    html = page.text
    figures = dict(re.findall(r'<li id="fig-([\w-]+)"><strong>([^<]*)</strong>', html))
    assert figures == {"redeemed": "5", "refused": "5", "available": "5", "run-out": "2026-04-06", "mail": "3", "claims": "2"}
    days = {row[0]: row[1:] for row in rows(html, "days")}
    assert days["2026-03-27"] == ["1", "0"] and days["2026-03-28"] == ["3", "3"] and days["2026-03-29"] == ["1", "0"]
    hours = {row[0]: row[1:] for row in rows(html, "hours")}
    assert len(hours) == 24 and hours["00:00"] == ["1", "0"] and hours["10:00"] == ["2", "1"] and hours["23:00"] == ["0", "0"]
    assert rows(html, "refusal-reasons")[0] == ["R-X2", "Bought or activated outside the offer&#39;s countries", "2"]
    assert [cell(html, "data-mail", s) for s in ("sent", "queued", "failed")] == ["3", "2", "1"]
    assert '<strong id="open-claims">2</strong>' in html and 'href="/review/"' not in html.split("<main")[1]
    assert "the codes run out around <strong>2026-04-06</strong>" in html
    charts = svgs(html.split("<main")[1])
    assert len(charts) == 4  # per day, per hour, refusals by reason, burn-down
    for chart in charts:
        assert chart.get("role") == "img" and chart.find("{http://www.w3.org/2000/svg}title") is not None
        assert chart.find("{http://www.w3.org/2000/svg}desc") is not None
    assert " style=" not in html


def test_the_overview_lists_live_campaigns_with_their_figures(board_client: TestClient, conn: sqlite3.Connection) -> None:
    signed_in(board_client, conn, "auditor")
    html = board_client.get("/console/dashboard").text
    row = re.search(rf'<tr data-campaign="{SPRING}">(.*?)</tr>', html, re.S)
    assert row and 'data-campaign="office365-xbox-gold-2013"' not in html  # ended in 2013
    figures = dict(re.findall(r'data-figure="(\w+)">(.*?)</td>', row.group(1), re.S))
    assert {k: v for k, v in figures.items() if k != "top_refusal"} == {
        "redeemed_24h": "0", "redeemed_7d": "5", "refused_7d": "4", "available": "5", "run_out": "2026-04-06",
        "mail_queued": "2", "mail_failed": "1", "open_claims": "2"}
    assert "R-X2" in figures["top_refusal"] and "(2)" in figures["top_refusal"]
    (spark,) = svgs(row.group(1))
    assert spark.get("aria-label", "").endswith("03-27 1, 03-28 3, 03-29 1, 03-30 0")
    assert f'href="{DASHBOARD}"' in row.group(1)


def test_admins_are_sent_on_to_the_review_queue(board_client: TestClient, conn: sqlite3.Connection) -> None:
    signed_in(board_client, conn, "admin")
    assert 'in the <a href="/review/">review queue</a>' in board_client.get(DASHBOARD).text


def test_unknown_campaigns_and_programs_have_no_dashboard(board_client: TestClient, conn: sqlite3.Connection) -> None:
    from promo.demo import install_donation_program
    from tests.support.dashboard_history import CPH, local
    install_donation_program(conn, local(CPH, 2026, 3, 1))
    signed_in(board_client, conn, "marketer")
    assert board_client.get("/console/campaigns/no-such-campaign/dashboard").status_code == 404
    assert board_client.get("/console/campaigns/nonprofit-donations/dashboard").status_code == 404


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.text(max_size=30), st.sampled_from(["2026-02-30", "2026-3-1", "99999-01-01", "2026-03-28T10:00", "0001-01-01"])))
def test_any_day_asked_for_is_shown_or_refused_by_name(board_client: TestClient, conn: sqlite3.Connection, day: str) -> None:
    if not board_client.cookies.get("promo_staff"):
        signed_in(board_client, conn, "marketer")
    response = board_client.get(DASHBOARD, params={"day": day})
    assert response.status_code in (200, 400), (day, response.status_code)
    if response.status_code == 400:
        assert "day: must be a date like 2026-05-01" in response.text


# ---- every console page is HTML the CSP lets through ------------------------------------------

INLINE = [(re.compile(r"<[^>]+\sstyle\s*="), "a style attribute (style-src 'self' blocks it)"),
          (re.compile(r"<script(?![^>]*\ssrc=)[^>]*>"), "an inline script (script-src 'self' blocks it)"),
          (re.compile(r"<[^>]+\son[a-z]+\s*="), "an event handler attribute (script-src 'self' blocks it)")]


def test_no_console_page_has_inline_styles_or_scripts(client: TestClient, shop: sqlite3.Connection) -> None:
    """Each GET route under /console/, as an admin sees it, with a campaign that has
    redemptions, refusals, batches and an upload job (so charts and tables are drawn)."""
    from tests.support.open_today import add_keys, redeem
    add_keys(shop, range(30, 33))
    assert redeem(shop, 30) and redeem(shop, 31)
    signed_in(client, shop, "admin")
    shop.execute("INSERT INTO import_jobs (kind, source, size_bytes, status, imported, actor, started_at)"
                 " VALUES ('activations', 'x.csv', 1, 'done', 1, 'test', '2026-01-01T00:00:00.000000Z')")  # autocommit
    values = {"slug": "open-today", "job_id": shop.execute("SELECT MAX(id) FROM import_jobs").fetchone()[0],
              "lang": "da", "page": "offer", "template": "reward_code"}  # "view as customer" (issue 19, item 10)
    paths = sorted({r.path.replace(":int64}", "}") for r in client.app.routes  # type: ignore[attr-defined]
                    if isinstance(r, Route) and r.path.startswith("/console/") and "GET" in (r.methods or ())})
    checked = 0
    for path in paths:
        if path.endswith(".toml"):
            continue  # a file, not a page
        if path.endswith("/email/{template}/html"):
            continue  # an email's HTML (inline styles are how email is styled), framed with its own CSP: views/email_frame.py
        response = client.get(path.format(**values), follow_redirects=True)  # the preview's start page redirects
        assert response.status_code == 200, (path, response.status_code)
        for pattern, what in INLINE:
            found = pattern.search(response.text)
            assert found is None, f"{path} has {what}: {found.group(0) if found else ''}"
        checked += 1
    assert checked >= 9 and f"{DASHBOARD}".replace(SPRING, "open-today") in {p.format(**values) for p in paths}


def test_ended_and_scheduled_campaigns_have_a_dashboard_too(board_client: TestClient, conn: sqlite3.Connection) -> None:
    from tests.support.dashboard_history import add_campaign
    add_campaign(conn, "later", "Europe/Copenhagen", first="2026-05-01", last="2026-05-31", codes=2, code_start=900)
    signed_in(board_client, conn, "marketer")
    ended = board_client.get("/console/campaigns/office365-xbox-gold-2013/dashboard")
    assert ended.status_code == 200 and "Redemption closed on 2013-10-31." in ended.text
    assert '<span class="status status-ended">ended</span>' in ended.text
    later = board_client.get("/console/campaigns/later/dashboard")
    assert later.status_code == 200 and "Redemption opens on 2026-05-01." in later.text
    assert 'value="2026-05-01"' in later.text  # the hours shown: the window's first day
    overview = board_client.get("/console/dashboard").text
    assert 'data-campaign="later"' not in overview and f'data-campaign="{SPRING}"' in overview
