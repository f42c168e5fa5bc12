"""Races over real HTTP against a `promo serve` process: whatever the timing, one account
never gets two codes and one code never goes to two accounts."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from promo.config import Settings
from tests.support.database import prepare_database, product_key
from tests.support.invariants import assert_invariants
from tests.support.served import Served, mint_sessions, start_server, write_config
from tests.support.web import add_open_campaign

OFFER = "/offers/open-today/redeem"


@pytest.fixture
def race_db(settings: Settings) -> Iterator[sqlite3.Connection]:
    conn = prepare_database(settings.database_path)
    yield conn
    conn.close()


@pytest.fixture
def server(settings: Settings, tmp_path: Path, race_db: sqlite3.Connection) -> Iterator[Served]:
    config = write_config(tmp_path, settings.database_path)
    # No mail server: emails wait in the outbox. A high guessing limit: here we test the race.
    process, served = start_server(config, tmp_path / "server.log", PROMO_MAIL_SINK="false",
                                   PROMO_MAIL_PORT="9", PROMO_SECURITY_KEY_ATTEMPTS_PER_HOUR="1000000",
                                   PROMO_LOGGING_LEVEL="WARNING")
    yield served
    process.terminate()
    process.wait(timeout=15)


async def fire(url: str, attempts: list[tuple[str, str, str, str]], connections: int = 200) -> Counter[int]:
    """POST every (session cookie, csrf, product key, country) at once; count the statuses."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:
        async def one(cookie: str, csrf: str, key: str, country: str) -> int:
            response = await client.post(OFFER, headers={"Cookie": f"promo_session={cookie}"}, data={
                "csrf": csrf, "idempotency_key": secrets.token_hex(8), "product_key": key, "country": country,
                "accept_terms": "yes"})
            return response.status_code

        return Counter(await asyncio.gather(*(one(*a) for a in attempts)))


def decisions(conn: sqlite3.Connection) -> Counter[str]:
    rows = conn.execute("SELECT outcome, failed_rules FROM redemption_attempts").fetchall()
    return Counter(r["outcome"] if r["outcome"] == "redeemed" else r["failed_rules"].strip() for r in rows)


@pytest.mark.slow
def test_1000_simultaneous_redemptions_for_one_account(server: Served, race_db: sqlite3.Connection, settings: Settings) -> None:
    add_open_campaign(race_db, keys=1000, codes=1000)
    [(cookie, csrf)] = mint_sessions(race_db, ["ann@example.com"]).values()
    statuses = asyncio.run(fire(server.url, [(cookie, csrf, product_key(n), "DK") for n in range(1000)]))
    assert statuses == {303: 1, 422: 999}
    assert decisions(race_db) == {"redeemed": 1, "R-X6": 999}
    assert_invariants(settings.database_path)


@pytest.mark.slow
def test_2000_accounts_racing_for_500_codes(server: Served, race_db: sqlite3.Connection, settings: Settings) -> None:
    add_open_campaign(race_db, keys=2000, codes=500)
    sessions = mint_sessions(race_db, [f"user{n}@example.com" for n in range(2000)])
    attempts = [(*sessions[f"user{n}@example.com"], product_key(n), "DK") for n in range(2000)]
    statuses = asyncio.run(fire(server.url, attempts))
    assert statuses == {303: 500, 422: 1500}
    assert decisions(race_db) == {"redeemed": 500, "STOCK": 1500}  # the rest: "no codes left"
    assert race_db.execute("SELECT COUNT(DISTINCT code_id) FROM redemptions").fetchone()[0] == 500
    assert_invariants(settings.database_path)


@pytest.mark.slow
def test_one_product_key_tried_by_50_accounts_at_once(server: Served, race_db: sqlite3.Connection, settings: Settings) -> None:
    add_open_campaign(race_db, keys=1, codes=10)
    sessions = mint_sessions(race_db, [f"user{n}@example.com" for n in range(50)])
    statuses = asyncio.run(fire(server.url, [(*s, product_key(0), "DK") for s in sessions.values()]))
    assert statuses == {303: 1, 422: 49}
    assert decisions(race_db) == {"redeemed": 1, "R-X5": 49}
    assert_invariants(settings.database_path)


def test_the_server_log_holds_no_codes_or_session_tokens(server: Served, race_db: sqlite3.Connection) -> None:
    add_open_campaign(race_db, keys=3, codes=3)
    sessions = mint_sessions(race_db, ["a@example.com"])
    asyncio.run(fire(server.url, [(*sessions["a@example.com"], product_key(0), "DK")]))
    subprocess.run(["sync"], check=False)
    log = server.log.read_text()
    codes = [r[0] for r in race_db.execute("SELECT code FROM reward_codes")]
    assert codes and not any(code in log for code in codes)
    assert sessions["a@example.com"][0] not in log
