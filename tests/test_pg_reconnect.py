"""PostgreSQL restarted under a running service (issue 18, item 5), on a private cluster
(tests/support/pg_cluster.py): calls during the outage fail at once as "unavailable" (a 503
with Retry-After, a page in the reader's language or a problem document), never a 500 and
never a hang; the pool reconnects by itself; what was committed before is still there."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from promo.app import create_app
from promo.backends.postgresql import PostgresDatabase
from promo.config import Settings, load_settings
from promo.db import is_unavailable
from tests.support.pg_cluster import Cluster, private_cluster
from tests.support.polling import await_until, wait_until
from tests.support.prepared import prepared_store

GUARD_S = 30  # only so that a hang fails the test instead of stalling the run; no figure is asserted


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with private_cluster(tmp_path) as started:
        yield started


@pytest.fixture
def cluster_settings(cluster: Cluster, tmp_path: Path) -> Settings:
    url = cluster.create_database("promo")
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\nurl = "{url}"\npool_size = 3\n[mail]\nsink = false\n', encoding="utf-8")
    settings = load_settings(config, environ={"PROMO_SECURITY_SECRET_KEY": "x" * 40})
    prepared_store(settings).close()  # migrated, with the shipped catalog
    return settings


def count_campaign_rows(conn: Any) -> int:
    return int(conn.execute("SELECT COUNT(*) FROM campaigns").fetchone()[0])


def add_marker(conn: Any, name: str) -> None:
    conn.execute("INSERT INTO settings_probe (name) VALUES (:n)", {"n": name})


def markers(conn: Any) -> list[str]:
    return [row[0] for row in conn.execute("SELECT name FROM settings_probe ORDER BY name")]


async def outcome(call: Any) -> str:
    try:
        await asyncio.wait_for(call, GUARD_S)
    except Exception as exc:
        return "unavailable" if is_unavailable(exc) else f"bug: {exc!r}"
    return "ok"


def test_the_pool_fails_fast_while_the_server_is_down_and_reconnects_by_itself(
        cluster: Cluster, cluster_settings: Settings) -> None:
    async def scenario() -> dict[str, Any]:
        assert cluster_settings.database_url
        db = await PostgresDatabase(cluster_settings.database_url, pool_size=3).open()
        try:
            await db.write(lambda conn: conn.execute("CREATE TABLE settings_probe (name text PRIMARY KEY)"))
            await db.write(add_marker, "before")
            cluster.stop()
            # Every pooled connection is now dead, and no new one can be made: each call ends
            # (the broken connection's error, or the bounded wait for a connection) as "unavailable".
            during = [await outcome(db.lookup(count_campaign_rows)) for _ in range(4)]
            during.append(await outcome(db.write(add_marker, "during")))
            stats_down = db.pool_stats()
            cluster.start()
            # No reopen: the pool replaces its connections by itself.
            deadline = time.monotonic() + GUARD_S
            while await outcome(db.lookup(count_campaign_rows)) != "ok":
                assert time.monotonic() < deadline, "the pool did not reconnect"
                await asyncio.sleep(0.05)
            await db.write(add_marker, "after")
            # The first connection back serves at once; the pool refills the others in the background.
            await await_until(lambda: db.pool_stats()["size"] == 3, GUARD_S, "the pool back to its 3 connections")
            return {"during": during, "down": stats_down, "up": db.pool_stats(), "markers": await db.read(markers)}
        finally:
            await db.close()

    seen = asyncio.run(scenario())
    assert set(seen["during"]) == {"unavailable"}, seen["during"]
    assert seen["down"]["max"] == 3 and seen["down"]["available"] == 0
    assert seen["up"]["size"] == 3 and seen["up"]["connections_lost"] >= 1
    assert seen["markers"] == ["after", "before"]  # committed before the restart: kept; refused during: not there


def test_a_transaction_on_a_connection_that_died_while_idle_runs_again_on_a_new_one(
        cluster: Cluster, cluster_settings: Settings) -> None:
    """Restarted while nobody asked anything: the pooled connection is dead, found so at BEGIN
    (nothing sent), and the write runs on a fresh connection instead of failing as a 503."""
    async def scenario() -> tuple[list[str], dict[str, Any]]:
        assert cluster_settings.database_url
        db = await PostgresDatabase(cluster_settings.database_url, pool_size=1).open()
        try:
            await db.write(lambda conn: conn.execute("CREATE TABLE settings_probe (name text PRIMARY KEY)"))
            cluster.stop()
            cluster.start()
            await db.write(add_marker, "after the restart")
            return await db.read(markers), db.pool_stats()
        finally:
            await db.close()

    stored, stats = asyncio.run(scenario())
    assert stored == ["after the restart"] and stats["connections_lost"] == 1


def test_requests_during_the_outage_are_503_pages_and_problem_documents_then_served_again(
        cluster: Cluster, cluster_settings: Settings) -> None:
    with TestClient(create_app(cluster_settings, start_relay=False), follow_redirects=False) as client:
        assert client.get("/readyz").status_code == 200
        cluster.stop()
        page = client.get("/", headers={"Accept-Language": "da", "Cookie": "promo_session=whatever"})
        api = client.get("/api/v1/campaigns", headers={"Authorization": "Bearer promo_nothing"})
        ready = client.get("/readyz")
        cluster.start()
        wait_until(lambda: client.get("/readyz").status_code == 200, what="/readyz answers 200 again")
        again = client.get("/", headers={"Accept-Language": "da"})
    # A person gets a page in their language (built without the database: no session lookup).
    assert page.status_code == 503 and page.headers["retry-after"] == "5"
    assert page.headers["content-type"].startswith("text/html") and "Travlt lige nu" in page.text
    # A program gets a problem document.
    assert api.status_code == 503 and api.headers["retry-after"] == "5"
    assert api.headers["content-type"].startswith("application/problem+json") and api.json()["status"] == 503
    assert ready.status_code == 503 and ready.json()["database"] == "unreachable"
    assert ready.json()["pool"]["max"] == 3 and ready.headers["retry-after"] == "5"
    assert again.status_code == 200
