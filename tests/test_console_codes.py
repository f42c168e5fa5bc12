"""Code pools and activation records in the console: uploads in the background with
progress and errors by line, voiding a batch, stock with the run-out projection, and the
low-stock email (once per threshold crossing) through a real SMTP server."""

from __future__ import annotations

import functools
import os
import re
import sqlite3
import threading
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from promo.campaign_store import get_campaign
from tests.support.console import audit_changes, csrf, post_confirmed, post_form, signed_in, values_of, wait_for_job
from tests.support.database import product_key, reward_code
from tests.support.mailserver import MailServer
from tests.support.open_today import add_keys, redeem
from tests.support.web import text_of, wait_for_mail_to


@pytest.fixture
def marketer(client: TestClient, shop: sqlite3.Connection) -> TestClient:
    signed_in(client, shop, "marketer")
    return client


def codes_csv(numbers: range, extra: list[str] | None = None) -> bytes:
    return ("code\n" + "".join(f"{reward_code(n)}\n" for n in numbers) + "".join(f"{e}\n" for e in extra or [])).encode()


def upload(client: TestClient, path: str, content: bytes, name: str = "codes.csv") -> str:
    response = client.post(path, data={"csrf": csrf(client, "/console/")}, files={"file": (name, content, "text/csv")})
    assert response.status_code == 303 and response.headers["location"].startswith("/console/jobs/"), response.text
    return wait_for_job(client, response.headers["location"])


def stock_cells(page: str) -> dict[str, int]:
    return {k: int(v.replace(",", "")) for k, v in re.findall(r'data-status="(\w+)">([\d,]+)<', page)}


def test_upload_imports_codes_and_shows_stock(marketer: TestClient, shop: sqlite3.Connection) -> None:
    page = upload(marketer, "/console/campaigns/open-today/codes", codes_csv(range(100, 1100)))
    assert "Done:</strong> 1,000 codes imported" in page
    assert stock_cells(marketer.get("/console/campaigns/open-today").text)["available"] == 1005  # 5 from the shop
    event = audit_changes(shop, "codes:batch:imported")[-1]
    assert event["codes"] == 1000 and event["source"] == "codes.csv"
    actor = shop.execute("SELECT actor FROM audit_events WHERE tag = 'codes:batch:imported' ORDER BY seq DESC").fetchone()[0]
    assert actor == "staff:marketer@example.com"


def test_a_bad_file_imports_nothing_and_names_each_line(marketer: TestClient, shop: sqlite3.Connection) -> None:
    before = shop.execute("SELECT COUNT(*) FROM reward_codes").fetchone()[0]
    content = codes_csv(range(200, 203), ["not-a-code", reward_code(201), reward_code(0)])
    page = upload(marketer, "/console/campaigns/open-today/codes", content, "bad.csv")
    assert "Nothing was imported:</strong> 3 problems found" in page
    assert "line 5: code: does not match the pool&#39;s pattern" in page
    assert "line 6: code: duplicate of line 3" in page
    assert "line 7: code: already in a code pool" in page  # reward_code(0) came with the shop
    assert shop.execute("SELECT COUNT(*) FROM reward_codes").fetchone()[0] == before
    nothing = marketer.post("/console/campaigns/open-today/codes", data={"csrf": csrf(marketer, "/console/")})
    assert nothing.status_code == 422 and "Choose a CSV file to upload." in nothing.text


def test_progress_is_shown_while_a_file_is_read(marketer: TestClient, shop: sqlite3.Connection, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The import reads from a pipe that the test fills by halves, so the page is caught mid-file."""
    content = codes_csv(range(300, 2300))
    half = len(content) // 2
    fifo = tmp_path / "upload.csv"
    os.mkfifo(fifo)
    jobs = marketer.app.state.jobs  # type: ignore[attr-defined]
    portal = marketer.portal  # type: ignore[attr-defined]
    job_id = portal.call(functools.partial(jobs.start, kind="codes", path=str(fifo), size=len(content), source="pipe.csv",
                                           actor="staff:marketer@example.com", campaign_slug="open-today"))
    first_half_written = threading.Event()
    rest = threading.Event()

    def writer() -> None:
        with open(fifo, "wb") as pipe:  # blocks until the import opens the file
            pipe.write(content[:half])
            pipe.flush()
            first_half_written.set()
            rest.wait(30)
            pipe.write(content[half:])

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        assert first_half_written.wait(30)
        for _ in range(200):
            page = marketer.get(f"/console/jobs/{job_id}").text
            shown = re.search(r'<progress id="job-progress" max="100" value="(\d+)">', page)
            if shown and int(shown.group(1)) >= 40:
                break
            threading.Event().wait(0.02)
        assert shown and 40 <= int(shown.group(1)) <= 60, page
        assert "Reading the file… " in page and '<meta http-equiv="refresh" content="1">' in page
    finally:
        rest.set()
        thread.join(30)
    done = wait_for_job(marketer, f"/console/jobs/{job_id}")
    assert "Done:</strong> 2,000 codes imported" in done and "http-equiv" not in done
    assert not fifo.exists()  # the temporary file is removed


def test_void_takes_only_unissued_codes_of_the_batch(marketer: TestClient, shop: sqlite3.Connection) -> None:
    add_keys(shop, range(10, 12))
    assert redeem(shop, 10) and redeem(shop, 11)  # two of the shop's five codes are issued
    first_batch = shop.execute("SELECT MIN(id) FROM code_batches").fetchone()[0]
    page = marketer.get("/console/campaigns/open-today").text
    assert f"Void 3 unissued codes of batch {first_batch}" in page
    assert post_confirmed(marketer, f"/console/campaigns/open-today/batches/{first_batch}/void", {}).status_code == 303
    assert stock_cells(marketer.get("/console/campaigns/open-today").text) == {"available": 0, "issued": 2, "expired": 0, "voided": 3}
    assert audit_changes(shop, "codes:batch:voided") == [{"batch": first_batch, "voided": 3}]
    issued = shop.execute("SELECT COUNT(*) FROM reward_codes WHERE issued_at IS NOT NULL AND voided_at IS NULL").fetchone()[0]
    assert issued == 2  # issued codes stay their owners' (R-X10)
    add_keys(shop, range(12, 13))
    assert not redeem(shop, 12)  # nothing left to issue: refused, no code
    other = post_form(marketer, "/console/campaigns/open-today/batches/999/void", {})
    assert other.status_code == 400


def test_stock_shows_redemptions_per_day_and_the_projected_run_out(marketer: TestClient, shop: sqlite3.Connection) -> None:
    add_keys(shop, range(20, 24))
    assert all(redeem(shop, n) for n in range(20, 24))  # 4 today, 1 of 5 left
    page = marketer.get("/console/campaigns/open-today").text
    today = datetime.now(UTC).date()  # the offer's zone is UTC
    # At 4/7 a day the last code goes in 1.75 days: before or after the window closes at the end
    # of tomorrow, by the hour of the day this runs; the dashboard tests pin both with a fixed clock.
    assert "At 0.6 redemptions a day (mean of the last 7 days)" in page
    assert re.search(r"codes run out around <strong>\d{4}-\d\d-\d\d</strong>|run-out: <strong>not at this rate</strong>", page)
    assert stock_cells(page)["issued"] == 4
    # The chart: 14 bars drawn with SVG attributes (the CSP refuses style attributes), today's 4 to
    # the top of the scale and the days without redemptions with no height at all.
    bars = re.findall(r'<rect class="bar" x="[\d.]+" y="[\d.]+" width="[\d.]+" height="([\d.]+)" data-value="(\d+)">'
                      r"<title>([^<]*)</title>", page)
    assert [(v, t) for _h, v, t in bars][-1] == ("4", f"{today}: 4") and len(bars) == 14
    assert {h for h, v, _t in bars if v == "0"} == {"0"} and float(bars[-1][0]) > 0
    assert f"<tr><td>{today}</td><td>4</td></tr>" in page  # the figures as a table too
    assert " style=" not in page
    upload(marketer, "/console/campaigns/open-today/codes", codes_csv(range(500, 600)))
    page = marketer.get("/console/campaigns/open-today").text  # 101 codes at 4/7 a day outlast the window
    assert "projected run-out: <strong>not at this rate</strong>" in page
    assert "not at this rate" in marketer.get("/console/").text


def test_low_stock_emails_marketers_once_per_crossing(marketer: TestClient, shop: sqlite3.Connection, smtp: MailServer) -> None:
    values = values_of(get_campaign(shop, "open-today").campaign)
    assert post_form(marketer, "/console/campaigns/open-today/edit", {**values, "low_stock_threshold": "3",
                                                                       "action": "save"}).status_code == 303
    add_keys(shop, range(30, 38))

    def alerts() -> int:
        return int(shop.execute("SELECT COUNT(*) FROM outbox WHERE template = 'low_stock'").fetchone()[0])

    assert redeem(shop, 30) and redeem(shop, 31)  # 3 left: not below the threshold
    assert alerts() == 0 and "Low stock" not in marketer.get("/console/campaigns/open-today").text
    already = len(smtp.received)
    assert redeem(shop, 32)  # 2 left: below
    assert alerts() == 1
    email = wait_for_mail_to(smtp, "marketer@example.com", after=already)
    name = get_campaign(shop, "open-today").campaign.name
    assert email["Subject"] == f"Low stock: 2 codes left for {name}"
    assert "http://testserver/console/campaigns/open-today" in text_of(email)
    assert redeem(shop, 33)  # 1 left: still below, no second email for the same crossing
    assert alerts() == 1
    assert '<strong class="error">low stock</strong>' in marketer.get("/console/").text
    assert 'id="low-stock"' in marketer.get("/console/campaigns/open-today").text

    upload(marketer, "/console/campaigns/open-today/codes", codes_csv(range(500, 505)))  # 6 left: re-armed
    assert audit_changes(shop, "codes:stock:rearmed") == [{"threshold": 3}]
    assert all(redeem(shop, n) for n in range(34, 37))  # 3 left
    assert alerts() == 1
    assert redeem(shop, 37)  # 2 left: the next crossing
    assert alerts() == 2
    lows = audit_changes(shop, "codes:stock:low")
    assert [(e["available"], e["notified"]) for e in lows] == [(2, ["marketer@example.com"]), (2, ["marketer@example.com"])]


def test_activation_records_upload_in_the_console(marketer: TestClient, shop: sqlite3.Connection) -> None:
    good = b"product_key,sku,country,purchased_at,activated_at\n" + \
        f"{product_key(40)},O365-HOME-ESD,DK,2026-11-01,2026-11-02T10:00:00+01:00\n".encode() + \
        f"{product_key(41)},O365-UNI-FPP,NO,2026-11-01,2026-11-01\n".encode()
    assert "Done:</strong> 2 activation records imported" in upload(marketer, "/console/activations", good, "acts.csv")
    imported = shop.execute("SELECT actor, data FROM audit_events WHERE tag = 'activations:batch:imported' ORDER BY seq DESC").fetchone()
    assert imported[0] == "staff:marketer@example.com" and '"records":2' in imported[1].replace(" ", "")
    bad = b"product_key,sku,country,purchased_at,activated_at\n" + \
        f"{product_key(42)},NOPE,DK,2026-11-01,2026-11-02T10:00:00\n".encode()
    page = upload(marketer, "/console/activations", bad, "bad.csv")
    assert "Nothing was imported" in page and "line 2: sku:" in page and "line 2: activated_at:" in page
    assert shop.execute("SELECT COUNT(*) FROM activations WHERE product_key LIKE 'PK%42'").fetchone()[0] == 0
    assert "acts.csv" in marketer.get("/console/activations").text
    two = b"product_key,sku,purchase_country,activation_country,purchased_at,activated_at,account_email\n" + \
        f"{product_key(43)},O365-HOME-ESD,DK,SE,2026-11-02,2026-11-01T23:30:00Z,ann@example.com\n".encode()
    assert "Done:</strong> 1 activation records imported" in upload(marketer, "/console/activations", two, "two.csv")
    row = shop.execute("SELECT country, activation_country, activated_at FROM activations WHERE product_key LIKE 'PK%43'").fetchone()
    assert tuple(row) == ("DK", "SE", "2026-11-01T23:30:00.000000Z")  # a bare day stays a day, an instant an instant
    assert "purchase_country,activation_country" in marketer.get("/console/activations").text
