"""A database that refuses for now (its write lock held past the busy timeout by another
process, say a 1,000,000-code import from the CLI) answers 503 with Retry-After and saves
nothing; the same form succeeds once the lock is free. A real bug stays a 500."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from promo.app import create_app
from promo.config import Settings
from promo.db import is_unavailable
from tests.support.console import new_token, signed_in
from tests.support.database import product_key
from tests.support.mailserver import MailServer
from tests.support.web import OFFER, follow_link, hidden, redeem_form, sign_in

pytestmark = pytest.mark.sqlite_only("SQLite's one write lock held by another process; PostgreSQL's "
                                 "counterpart: test_pg_redemption.py (a transaction it keeps refusing is a 503)")


@pytest.fixture
def busy_client(web_settings: Settings, shop: sqlite3.Connection) -> Iterator[TestClient]:
    settings = replace(web_settings, database_busy_timeout_ms=200)  # give up on the lock quickly
    with TestClient(create_app(settings), follow_redirects=False) as client:
        yield client


@pytest.fixture
def lock(web_settings: Settings) -> Iterator[sqlite3.Connection]:
    """Another process's connection, ready to hold the write lock."""
    other = sqlite3.connect(web_settings.database_path, isolation_level=None)
    yield other
    if other.in_transaction:
        other.execute("ROLLBACK")
    other.close()


def count(conn: sqlite3.Connection, table: str) -> int:
    return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_a_redemption_while_another_process_holds_the_lock_is_a_503_and_saves_nothing(
        busy_client: TestClient, smtp: MailServer, shop: sqlite3.Connection, lock: sqlite3.Connection) -> None:
    follow_link(busy_client, sign_in(busy_client, smtp, next_path=f"{OFFER}/redeem"))
    page = redeem_form(busy_client)
    form = {"csrf": hidden(page, "csrf"), "idempotency_key": hidden(page, "idempotency_key"),
            "product_key": product_key(1), "country": "DK", "accept_terms": "yes"}
    attempts = count(shop, "redemption_attempts")
    lock.execute("BEGIN IMMEDIATE")
    busy = busy_client.post(f"{OFFER}/redeem", data=form)
    assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
    assert "Busy right now" in busy.text and "nothing was changed" in busy.text
    lock.execute("ROLLBACK")
    assert count(shop, "redemptions") == 0 and count(shop, "redemption_attempts") == attempts
    again = busy_client.post(f"{OFFER}/redeem", data=form)  # the same form, once the lock is free
    assert again.status_code == 303 and again.headers["location"].startswith("/rewards/")
    assert count(shop, "redemptions") == 1


def test_the_busy_page_speaks_the_reader_s_language(busy_client: TestClient, smtp: MailServer,
                                                   lock: sqlite3.Connection) -> None:
    follow_link(busy_client, sign_in(busy_client, smtp, next_path=f"{OFFER}/redeem"))
    page = busy_client.get(f"{OFFER}/redeem", headers={"Accept-Language": "da"}).text
    lock.execute("BEGIN IMMEDIATE")
    busy = busy_client.post(f"{OFFER}/redeem", headers={"Accept-Language": "da"}, data={
        "csrf": hidden(page, "csrf"), "idempotency_key": hidden(page, "idempotency_key"),
        "product_key": product_key(1), "country": "DK", "accept_terms": "yes"})
    assert busy.status_code == 503 and "<h1>Travlt lige nu</h1>" in busy.text and "intet blev ændret" in busy.text


def test_an_api_client_gets_a_problem_document(busy_client: TestClient, shop: sqlite3.Connection,
                                              lock: sqlite3.Connection) -> None:
    signed_in(busy_client, shop, "marketer")
    headers = {"Authorization": f"Bearer {new_token(busy_client)}"}
    busy_client.cookies.clear()
    lock.execute("BEGIN IMMEDIATE")
    answer = busy_client.post("/api/v1/campaigns/open-today/state", headers=headers, json={"action": "pause"})
    assert answer.status_code == 503 and answer.headers["retry-after"] == "5"
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["title"] == "the database is busy; try again shortly"
    lock.execute("ROLLBACK")
    assert busy_client.post("/api/v1/campaigns/open-today/state", headers=headers,
                            json={"action": "pause"}).status_code == 200


def test_only_not_now_errors_count_as_unavailable(tmp_path: Path) -> None:
    holder = sqlite3.connect(tmp_path / "x.sqlite3", isolation_level=None)
    other = sqlite3.connect(tmp_path / "x.sqlite3", isolation_level=None, timeout=0)
    holder.execute("BEGIN IMMEDIATE")
    with pytest.raises(sqlite3.OperationalError) as locked:
        other.execute("BEGIN IMMEDIATE")
    assert is_unavailable(locked.value)  # SQLITE_BUSY: try again later
    holder.execute("ROLLBACK")
    with pytest.raises(sqlite3.OperationalError) as syntax:
        holder.execute("SELEC 1")
    assert not is_unavailable(syntax.value)  # a bug, not a busy database
    with pytest.raises(sqlite3.IntegrityError) as integrity:
        holder.execute("CREATE TABLE t (x UNIQUE)")
        holder.execute("INSERT INTO t VALUES (1), (1)")
    assert not is_unavailable(integrity.value)
    assert not is_unavailable(RuntimeError("database is locked"))  # only the driver's word counts


def test_a_real_database_bug_is_still_a_500(busy_client: TestClient, smtp: MailServer,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    import promo.views.consumer as consumer

    async def broken(*args: object, **kwargs: object) -> object:
        sqlite3.connect(":memory:").execute("SELEC 1")
        raise AssertionError("unreachable")

    follow_link(busy_client, sign_in(busy_client, smtp, next_path=f"{OFFER}/redeem"))
    page = redeem_form(busy_client)
    monkeypatch.setattr(consumer, "redeem", broken)
    with TestClient(busy_client.app, follow_redirects=False, raise_server_exceptions=False,
                    cookies=busy_client.cookies) as plain:
        answer = plain.post(f"{OFFER}/redeem", data={"csrf": hidden(page, "csrf"), "product_key": product_key(1),
                                                     "country": "DK", "accept_terms": "yes"})
    assert answer.status_code == 500 and "Internal error" in answer.text
