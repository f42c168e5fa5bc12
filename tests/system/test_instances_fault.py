"""Kill one of two instances during a load (issue 18, item 5): the other keeps serving, and
nothing is lost or doubled. Two `promo serve` processes on one PostgreSQL database, each with
its relay; the load goes round-robin to both; one is SIGKILLed in the middle of it. Every
request sent to the survivor is answered; every request the dead one cut is sent again to the
survivor with its idempotency key (as a client or a proxy retries) and either replays the
redemption the dead instance committed or redeems now. Afterwards each account has one code,
each code one account, and every reward email went out (the dead relay's leased rows by the
survivor's relay once the lease ends)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from promo.config import Settings
from tests.support.database import product_key
from tests.support.invariants import assert_chain_verifies, assert_invariants, count
from tests.support.mailserver import MailServer
from tests.support.prepared import connect_to
from tests.support.served import Servers, mint_sessions, start_servers, write_config
from tests.support.web import add_open_campaign

ACCOUNTS = 600
VICTIM, SURVIVOR = 0, 1
OFFER = "/offers/open-today/redeem"
# (status, Location) of a response, or None when the connection was cut.
Answer = tuple[int, str] | None

pytestmark = [pytest.mark.slow,
              pytest.mark.postgresql_only("two instances share one database only on PostgreSQL (SQLite has one writer)")]


async def redeem(client: httpx.AsyncClient, url: str, n: int, sessions: dict[str, tuple[str, str]]) -> Answer:
    """Account n redeems its own key, with idempotency key k{n} (the same on a retry)."""
    cookie, csrf = sessions[f"user{n}@example.com"]
    try:
        response = await client.post(url + OFFER, headers={"Cookie": f"promo_session={cookie}"}, data={
            "csrf": csrf, "idempotency_key": f"k{n}", "product_key": product_key(n), "country": "DK",
            "accept_terms": "yes"})
    except httpx.TransportError:
        return None
    return response.status_code, response.headers.get("location", "")


async def load_then_kill(servers: Servers, sessions: dict[str, tuple[str, str]], peek: Any) -> dict[int, Answer]:
    """Every account at once, round-robin over the two; the victim killed once a tenth of the
    codes are issued (in the middle of the load)."""
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=64), timeout=30) as client:
        task = asyncio.gather(*(redeem(client, servers.url(n), n, sessions) for n in range(ACCOUNTS)))
        deadline = time.monotonic() + 30
        while count(peek, "SELECT COUNT(*) FROM redemptions") < ACCOUNTS // 10:
            assert time.monotonic() < deadline, "the load did not get going"
            await asyncio.sleep(0.01)
        servers.processes[VICTIM].send_signal(signal.SIGKILL)
        answers = await task
    return dict(enumerate(answers))


async def retry_on_survivor(servers: Servers, sessions: dict[str, tuple[str, str]], cut: list[int]) -> dict[int, Answer]:
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=32), timeout=30) as client:
        answers = await asyncio.gather(*(redeem(client, servers.url(SURVIVOR), n, sessions) for n in cut))
    return dict(zip(cut, answers, strict=True))


def test_killing_one_of_two_instances_mid_load_loses_and_doubles_nothing(settings: Settings, tmp_path: Path,
                                                                         conn: Any, smtp: MailServer) -> None:
    add_open_campaign(conn, keys=ACCOUNTS, codes=ACCOUNTS)
    sessions = mint_sessions(conn, [f"user{n}@example.com" for n in range(ACCOUNTS)])
    smtp.handler.stall_seconds = 0.02  # slower than redemptions: the victim's relay has mail leased at the kill
    # A leased row waits out its lease (3 x timeout + 30 s = 36 s here) before the survivor's relay takes it.
    servers = start_servers(write_config(tmp_path, settings), tmp_path, 2, PROMO_MAIL_SINK="false",
                            PROMO_MAIL_PORT=str(smtp.port), PROMO_MAIL_RETRY_BASE_SECONDS="1",
                            PROMO_MAIL_TIMEOUT_SECONDS="2", PROMO_LOGGING_LEVEL="WARNING")
    peek = connect_to(settings)
    try:
        answers = asyncio.run(load_then_kill(servers, sessions, peek))
        assert servers.processes[VICTIM].wait(timeout=10) == -signal.SIGKILL
        by_survivor = [answers[n] for n in range(SURVIVOR, ACCOUNTS, 2)]
        # The survivor answered everything sent to it, and each was a redemption.
        assert Counter(a[0] if a else "cut" for a in by_survivor) == {303: len(by_survivor)}
        cut = [n for n, answer in answers.items() if answer is None]
        assert cut and all(n % 2 == VICTIM for n in cut), f"the kill came after the load finished: {len(cut)} cut"
        before_retry = count(peek, "SELECT COUNT(*) FROM redemptions")
        assert before_retry < ACCOUNTS
        assert_invariants(peek)  # nothing doubled by the kill

        retried = asyncio.run(retry_on_survivor(servers, sessions, cut))
        assert Counter(a[0] if a else "cut" for a in retried.values()) == {303: len(cut)}
        answers.update(retried)

        # Nothing lost: every account redeemed once, and its answer names its own redemption
        # (a retry of what the victim committed replays it; the rest redeemed on the survivor).
        rows = peek.execute("SELECT id, account_email FROM redemptions").fetchall()
        assert len(rows) == ACCOUNTS
        assert {r["account_email"]: f"/rewards/{r['id']}" for r in rows} == {
            f"user{n}@example.com": answer[1] for n, answer in answers.items() if answer}
        assert_invariants(peek)
        ready = httpx.get(servers.url(SURVIVOR) + "/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["mail_relay"] == "up", ready.text

        smtp.handler.stall_seconds = 0
        deadline = time.time() + 90
        while (waiting := count(peek, "SELECT COUNT(*) FROM outbox WHERE status <> 'sent'")) > 0:
            assert time.time() < deadline, f"{waiting} emails not sent by the surviving relay"
            time.sleep(0.2)
        outbox = peek.execute("SELECT message_id, recipient FROM outbox").fetchall()
        assert len(outbox) == ACCOUNTS  # one reward email per redemption (sessions were minted: no sign-in mail)
        received = Counter(str(m["Message-ID"]) for m in smtp.received)
        assert set(received) == {r["message_id"] for r in outbox}
        # At most the victim's messages in flight at the kill sent twice: one per relay lane (mail.connections).
        assert sum(received.values()) - len(received) <= 4
        assert_chain_verifies(peek)
    finally:
        peek.close()
        servers.stop()
