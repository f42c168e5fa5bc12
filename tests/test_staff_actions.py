"""The auditor's staff actions page (issue 19, item 2): changes read as field, before, after
(raw data kept at hand), identifiers that do not break, every event reachable by paging,
filters by actor, tag, subject and days in a stated zone, each an index range, and exports
like the decision log's (formula-safe CSV, JSON, no-store)."""

from __future__ import annotations

import csv
import io
import json
import re
import sqlite3
import tomllib
from datetime import UTC, datetime

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from promo.audit import append_event
from promo.backends import dialect_of
from promo.campaign_store import save_campaign
from promo.campaigns import parse_campaign_file
from promo.catalog import load_catalog
from promo.db import transaction
from promo.event_changes import changes_of, summary
from promo.paging import Keyset
from promo.staff_actions import ActionFilter, actions_sql
from promo.views import auditor
from tests.support.console import signed_in
from tests.support.database import open_campaign_text

MARCH_1_LATE = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # 2 March, 00:30 in Copenhagen


@pytest.fixture
def auditor_client(client: TestClient, shop: sqlite3.Connection) -> TestClient:
    signed_in(client, shop, "auditor")
    return client


def event(conn: sqlite3.Connection, tag: str, *, actor: str = "staff:ann@example.com", subject: str = "campaign:x",
          at: datetime = MARCH_1_LATE, data: dict | None = None, ip: str | None = "2001:db8::1") -> int:  # type: ignore[type-arg]
    with transaction(conn):
        append_event(conn, tag=tag, actor=actor, subject=subject, data=data or {}, at=at, ip=ip)
        return int(conn.execute("SELECT max(seq) FROM audit_events").fetchone()[0])  # one writer: its own


def rows_of(html: str) -> list[str]:
    """The events listed, by their sequence numbers."""
    return re.findall(r'<tr><td>(\d+)</td><td class="nowrap">', html)


def test_a_campaign_change_reads_as_field_before_after(auditor_client: TestClient, shop: sqlite3.Connection) -> None:
    data = tomllib.loads(open_campaign_text())
    data["name"] = "Autumn offer"
    data["countries"] = [c for c in data["countries"] if c != "TR"] + ["US"]
    with transaction(shop):
        save_campaign(shop, parse_campaign_file(tomli_w.dumps(data), load_catalog(shop)), actor="staff:mia@example.com",
                      now=datetime.now(UTC), ip="192.0.2.44")
    page = auditor_client.get("/audit/actions?tag=campaign:definition:changed").text
    cells = re.findall(r'<tr><th scope="row" class="nowrap">([^<]+)</th><td class="before">([^<]*)</td>'
                       r'<td class="after">([^<]*)(?: <span class="small">\(([^)]*)\)</span>)?</td></tr>', page)
    by_field = {field: (before, after, note) for field, before, after, note in cells}
    name_before = tomllib.loads(open_campaign_text())["name"]
    assert by_field["name"] == (name_before, "Autumn offer", "")
    assert by_field["countries"][2] == "added US; removed TR" and by_field["countries"][0].startswith("38 items: ")
    assert '<details class="raw"><summary>Raw data</summary>' in page and "&#34;Autumn offer&#34;" in page
    for value in ("campaign:definition:changed", "staff:mia@example.com", "192.0.2.44"):
        assert re.search(rf'<td class="nowrap">(<code>)?{re.escape(value)}', page), value  # never broken mid-word
    assert "{&#34;changes&#34;" not in page.split('<details class="raw">')[0]  # no raw JSON outside the details


def test_changes_and_nested_values_are_summarised() -> None:
    assert changes_of({"changes": {"status": ["live", "paused"]}})[0].after == "paused"
    nested = changes_of({"before": {"reward": {"name": "A", "names": {"da": "B"}}},
                         "after": {"reward": {"name": "A2", "names": {"da": "B"}}}})
    assert [(c.field, c.before, c.after) for c in nested] == [("reward.name", "A", "A2")]
    assert summary({"a": 1, "b": [1, 2]}) == "2 fields: a, b"
    assert summary("x" * 500).endswith("…") and len(summary("x" * 500)) == 80
    assert summary(list(range(10))) == "10 items: 0, 1, 2, 3, 4, 5, …"
    assert changes_of({"batch": 3}) == [] and changes_of({"changes": "not pairs"}) == []


def test_every_event_is_reachable_page_by_page(auditor_client: TestClient, shop: sqlite3.Connection) -> None:
    for n in range(260):  # more than the old page's cap of 200
        event(shop, "staff:test:event", subject=f"thing:{n}")
    wanted = [r[0] for r in shop.execute("SELECT seq FROM audit_events WHERE tag NOT LIKE 'redemption:%' ORDER BY seq DESC")]
    seen, url, pages = [], "/audit/actions", []
    while url:
        page = auditor_client.get(url).text
        pages.append((url, rows_of(page)))
        seen += [int(s) for s in rows_of(page)]
        found = re.search(r'<a rel="next" href="([^"]+)">', page)
        url = found.group(1).replace("&amp;", "&") if found else ""
    assert seen == wanted and len(pages) == -(-len(wanted) // 50)
    back = re.search(r'<a rel="prev" href="([^"]+)">', auditor_client.get(pages[-1][0]).text)
    assert back and rows_of(auditor_client.get(back.group(1).replace("&amp;", "&")).text) == pages[-2][1]


def test_filters_by_actor_tag_subject_and_days_in_a_zone(auditor_client: TestClient, shop: sqlite3.Connection) -> None:
    late = event(shop, "codes:batch:voided", actor="staff:mia@example.com", subject="campaign:autumn")
    early = event(shop, "codes:batch:voided", actor="staff:bo@example.com", subject="campaign:autumn",
                  at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC))
    other = event(shop, "staff:token:revoked", actor="staff:mia@example.com", subject="token:4")

    def found(query: str) -> set[int]:
        response = auditor_client.get("/audit/actions?" + query)
        assert response.status_code == 200, response.text
        return {int(s) for s in rows_of(response.text)}

    assert found("actor=staff:mia") == {late, other}
    assert found("tag=codes:batch:v") == {late, early}
    assert found("subject=campaign:autumn&actor=staff:bo") == {early}
    assert found("since=2026-03-01&until=2026-03-01") >= {late, early, other}  # UTC days
    assert found("since=2026-03-02&until=2026-03-02&zone=Europe/Copenhagen") == {late, other}  # 00:30 local
    assert found("since=2026-03-01&until=2026-03-01&zone=Europe/Copenhagen") >= {early}
    assert late not in found("since=2026-03-01&until=2026-03-01&zone=Europe/Copenhagen")
    assert "Time (Europe/Copenhagen)" in auditor_client.get("/audit/actions?zone=Europe/Copenhagen").text
    assert "2026-03-02 00:30:00" in auditor_client.get("/audit/actions?zone=Europe/Copenhagen&actor=staff:mia").text


@pytest.mark.parametrize(("query", "field"), [
    ("zone=Mars/Olympus", "zone"), ("since=yesterday", "since"), ("since=2026-03-02&until=2026-03-01", "until"),
    ("until=9999-12-31", "until"), ("before=12a", "before"), ("before=1&after=2", "after"),
    ("before=99999999999999999999", "before"), ("actor=%00", "actor"), ("tag=" + "x" * 201, "tag"),
])
def test_a_bad_filter_is_named_not_a_500(auditor_client: TestClient, query: str, field: str) -> None:
    response = auditor_client.get("/audit/actions?" + query)
    assert response.status_code == 400, query
    assert f'id="f-{field}-error"' in response.text or f"{field}: " in response.text, query


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["actor", "tag", "subject", "since", "until", "zone", "before", "after"]),
                       st.text(max_size=30), max_size=4))
def test_hostile_filters_never_break_the_page(auditor_client: TestClient, query: dict[str, str]) -> None:
    for path in ("/audit/actions", "/audit/actions.csv", "/audit/actions.json", "/audit/redemptions"):
        response = auditor_client.get(path, params=query)
        assert response.status_code in (200, 400), (path, query, response.status_code)
        assert "Traceback" not in response.text


def test_exports_hold_every_filtered_action_safely(auditor_client: TestClient, shop: sqlite3.Connection,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auditor, "EXPORT_CHUNK", 7)  # several chunks
    for n in range(20):
        event(shop, "codes:batch:voided", subject=f"=HYPERLINK(\"http://evil\",\"{n}\")", data={"voided": n})
    response = auditor_client.get("/audit/actions.csv?tag=codes:batch:v")
    assert response.headers["cache-control"] == "no-store" and response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert len(rows) == 20 and all(r["tag"] == "codes:batch:voided" for r in rows)
    assert all(r["subject"].startswith("'=HYPERLINK") for r in rows)  # never a formula
    assert json.loads(rows[0]["data"]) == {"voided": 19}  # newest first
    exported = auditor_client.get("/audit/actions.json?tag=codes:batch:v")
    assert exported.headers["cache-control"] == "no-store"
    items = exported.json()
    assert [i["data"]["voided"] for i in items] == list(range(19, -1, -1)) and items[0]["created_at"].endswith("Z")
    page = auditor_client.get("/audit/actions?tag=codes:batch:v").text
    assert 'href="/audit/actions.csv?tag=codes%3Abatch%3Av"' in page and 'href="/audit/actions.json?tag=codes%3Abatch%3Av"' in page


@pytest.mark.parametrize("query", [{}, {"actor": "staff:ann"}, {"tag": "codes:"}, {"subject": "campaign:x"},
                                   {"since": "2026-03-01", "zone": "Europe/Oslo"}])
def test_each_filter_is_an_index_range(conn: sqlite3.Connection, query: dict[str, str]) -> None:
    for n in range(300):  # redemption events must not be read, and cannot be in these indexes
        event(conn, "redemption:code:issued" if n % 3 else "staff:x:y", subject=f"s:{n}")
    conn.execute("ANALYZE")
    postgresql = dialect_of(conn).name == "postgresql"
    if postgresql:  # its planner scans tiny tables whole unless told not to
        conn.execute("SET enable_seqscan = off")
    for keyset in (Keyset(), Keyset(before=100), Keyset(after=10)):
        sql, params = actions_sql(ActionFilter.from_query(query), keyset)
        if postgresql:
            plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + sql, params))
            assert "audit_events_staff" in plan and "Seq Scan" not in plan, plan
            continue
        plan = " / ".join(row[3] for row in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert "USING INDEX audit_events_staff" in plan and not re.search(r"SCAN audit_events(?! USING)", plan), plan
