"""Races over real HTTP against `promo serve`: whatever the timing, one account never gets two
codes and one code never goes to two accounts. On both stores (issue 17); on PostgreSQL
against 2 instances sharing the database, the load spread round-robin over them (issue 18)."""

from __future__ import annotations

import asyncio
import secrets
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from promo.config import Settings
from tests.support.database import product_key
from tests.support.invariants import assert_invariants
from tests.support.served import Servers, instances, mint_sessions, start_servers, write_config
from tests.support.web import add_open_campaign

OFFER = "/offers/open-today/redeem"


@pytest.fixture
def server(settings: Settings, store: str, tmp_path: Path, conn: Any) -> Iterator[Servers]:
    config = write_config(tmp_path, settings)
    # No mail server: emails wait in the outbox. A high guessing limit: here we test the race.
    servers = start_servers(config, tmp_path, instances(store), PROMO_MAIL_SINK="false",
                            PROMO_MAIL_PORT="9", PROMO_SECURITY_KEY_ATTEMPTS_PER_HOUR="1000000",
                            PROMO_LOGGING_LEVEL="WARNING")
    yield servers
    servers.stop()


async def fire(servers: Servers, attempts: list[tuple[str, str, str, str]], connections: int = 200) -> Counter[int]:
    """POST every (session cookie, csrf, product key, country) at once, round-robin over the
    instances; count the statuses."""
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=60) as client:
        async def one(n: int, cookie: str, csrf: str, key: str, country: str) -> int:
            response = await client.post(servers.url(n) + OFFER, headers={"Cookie": f"promo_session={cookie}"}, data={
                "csrf": csrf, "idempotency_key": secrets.token_hex(8), "product_key": key, "country": country,
                "accept_terms": "yes"})
            return response.status_code

        return Counter(await asyncio.gather(*(one(n, *a) for n, a in enumerate(attempts))))


def decisions(conn: Any) -> Counter[str]:
    rows = conn.execute("SELECT outcome, failed_rules FROM redemption_attempts").fetchall()
    return Counter(r["outcome"] if r["outcome"] == "redeemed" else r["failed_rules"].strip() for r in rows)


@pytest.mark.slow
def test_1000_simultaneous_redemptions_for_one_account(server: Servers, conn: Any) -> None:
    add_open_campaign(conn, keys=1000, codes=1000)
    [(cookie, csrf)] = mint_sessions(conn, ["ann@example.com"]).values()
    statuses = asyncio.run(fire(server, [(cookie, csrf, product_key(n), "DK") for n in range(1000)]))
    assert statuses == {303: 1, 422: 999}
    assert decisions(conn) == {"redeemed": 1, "R-X6": 999}
    assert_invariants(conn)


@pytest.mark.slow
def test_2000_accounts_racing_for_500_codes(server: Servers, conn: Any) -> None:
    add_open_campaign(conn, keys=2000, codes=500)
    sessions = mint_sessions(conn, [f"user{n}@example.com" for n in range(2000)])
    attempts = [(*sessions[f"user{n}@example.com"], product_key(n), "DK") for n in range(2000)]
    statuses = asyncio.run(fire(server, attempts))
    assert statuses == {303: 500, 422: 1500}
    assert decisions(conn) == {"redeemed": 500, "STOCK": 1500}  # the rest: "no codes left"
    assert conn.execute("SELECT COUNT(DISTINCT code_id) FROM redemptions").fetchone()[0] == 500
    assert_invariants(conn)


@pytest.mark.slow
@pytest.mark.parametrize("codes", [50, 10], ids=["a-code-each", "the-last-10-codes"])
def test_one_product_key_tried_by_50_accounts_at_once(server: Servers, conn: Any, codes: int) -> None:
    """With a code for each racer the refusals are all R-X5; with only 10 codes left, a loser
    must still hear R-X5, never "no codes left" while codes remain."""
    add_open_campaign(conn, keys=1, codes=codes)
    sessions = mint_sessions(conn, [f"user{n}@example.com" for n in range(50)])
    statuses = asyncio.run(fire(server, [(*s, product_key(0), "DK") for s in sessions.values()]))
    assert statuses == {303: 1, 422: 49}
    assert_invariants(conn)  # the key redeemed once, whatever the losers were told
    assert decisions(conn) == {"redeemed": 1, "R-X5": 49}  # no STOCK while codes remain (codes.claim_code waits)


async def same_request(servers: Servers, cookie: str, csrf: str, times: int, first: int = 0) -> list[tuple[int, str]]:
    """One redemption request (one idempotency key) sent `times` times at once, round-robin
    over the instances from instance `first`: a double-click, or a proxy retrying on another."""
    data = {"csrf": csrf, "idempotency_key": "one-click", "product_key": product_key(0), "country": "DK",
            "accept_terms": "yes"}
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=times), timeout=60) as client:
        responses = await asyncio.gather(*(client.post(servers.url(first + n) + OFFER, data=data,
                                                       headers={"Cookie": f"promo_session={cookie}"})
                                           for n in range(times)))
    return [(r.status_code, r.headers.get("location", "")) for r in responses]


def test_one_request_sent_20_times_at_once_redeems_once_and_every_answer_names_it(server: Servers, conn: Any) -> None:
    """Issue 17 item 4: the idempotency key replays the first result, from any process."""
    add_open_campaign(conn, keys=1, codes=20)  # a code for each racer
    [(cookie, csrf)] = mint_sessions(conn, ["ann@example.com"]).values()
    answers = asyncio.run(same_request(server, cookie, csrf, 20))
    assert_invariants(conn)
    [(redemption,)] = conn.execute("SELECT id FROM redemptions").fetchall()
    assert answers == [(303, f"/rewards/{redemption}")] * 20


def test_a_request_sent_again_to_each_instance_in_turn_replays_the_first_result(server: Servers, conn: Any) -> None:
    """A retry after a lost answer (a proxy trying the next instance) redeems nothing twice."""
    add_open_campaign(conn, keys=1, codes=5)
    [(cookie, csrf)] = mint_sessions(conn, ["ann@example.com"]).values()
    answers = [asyncio.run(same_request(server, cookie, csrf, 1, first=n))[0] for n in range(2 * len(server))]
    [(redemption,)] = conn.execute("SELECT id FROM redemptions").fetchall()
    assert answers == [(303, f"/rewards/{redemption}")] * 2 * len(server)
    assert_invariants(conn)


def test_the_server_log_holds_no_codes_or_session_tokens(server: Servers, conn: Any) -> None:
    add_open_campaign(conn, keys=3, codes=3)
    sessions = mint_sessions(conn, ["a@example.com"])
    asyncio.run(fire(server, [(*sessions["a@example.com"], product_key(0), "DK")]))
    subprocess.run(["sync"], check=False)
    log = server.log_text()
    codes = [r[0] for r in conn.execute("SELECT code FROM reward_codes")]
    assert codes and not any(code in log for code in codes)
    assert sessions["a@example.com"][0] not in log
