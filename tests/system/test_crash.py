"""SIGKILL the server in the middle of a load, restart it: the database opens cleanly, every
issued code has its redemption, audit event and outbox row, no code is issued twice, and
every queued email is delivered (a duplicate only with the same Message-ID). On both stores
(issue 17); on PostgreSQL 2 instances share the database and both are killed (issue 18)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from promo.config import Settings
from tests.support.database import product_key
from tests.support.invariants import assert_chain_verifies, assert_invariants, count, integrity_ok
from tests.support.mailserver import MailServer
from tests.support.prepared import connect_to
from tests.support.served import Servers, instances, mint_sessions, start_servers, write_config
from tests.support.web import add_open_campaign

ACCOUNTS = 600


async def _until_redeemed(peek: Any, wanted: int, timeout: float = 30) -> None:
    """Wait until `wanted` redemptions are committed (the load is well under way), on a
    connection of the test's own."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if count(peek, "SELECT COUNT(*) FROM redemptions") >= wanted:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {wanted} redemptions after {timeout} s")


async def load(servers: Servers, sessions: dict[str, tuple[str, str]]) -> Counter[str]:
    """Redeem for every account at once, round-robin over the instances; connection errors are
    expected when the servers die."""
    outcomes: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        async def one(n: int) -> None:
            cookie, csrf = sessions[f"user{n}@example.com"]
            try:
                response = await client.post(servers.url(n) + "/offers/open-today/redeem",
                                             headers={"Cookie": f"promo_session={cookie}"},
                                             data={"csrf": csrf, "idempotency_key": f"k{n}", "product_key": product_key(n),
                                                   "country": "DK", "accept_terms": "yes"})
                outcomes[str(response.status_code)] += 1
            except httpx.TransportError:
                outcomes["cut"] += 1

        await asyncio.gather(*(one(n) for n in range(ACCOUNTS)))
    return outcomes


@pytest.mark.slow
def test_sigkill_mid_load_then_restart(settings: Settings, store: str, tmp_path: Path, conn: Any) -> None:
    add_open_campaign(conn, keys=ACCOUNTS, codes=ACCOUNTS)
    sessions = mint_sessions(conn, [f"user{n}@example.com" for n in range(ACCOUNTS)])
    smtp = MailServer().start()
    smtp.handler.stall_seconds = 0.02  # slower than redemptions: mail is still queued at the kill
    config = write_config(tmp_path, settings)
    # Rows a killed relay had leased wait out their lease (3 x timeout + 30 s = 36 s here)
    # before a new relay takes them: no two relays ever send the same batch at once.
    env = {"PROMO_MAIL_SINK": "false", "PROMO_MAIL_PORT": str(smtp.port), "PROMO_MAIL_RETRY_BASE_SECONDS": "1",
           "PROMO_MAIL_TIMEOUT_SECONDS": "2", "PROMO_LOGGING_LEVEL": "WARNING"}
    peek = connect_to(settings)
    try:
        servers = start_servers(config, tmp_path, instances(store), **env)

        async def load_then_kill() -> Counter[str]:
            task = asyncio.create_task(load(servers, sessions))
            await _until_redeemed(peek, ACCOUNTS // 10)  # in the middle of the load
            for process in servers.processes:  # the whole service dies at once
                process.send_signal(signal.SIGKILL)
            return await task

        outcomes = asyncio.run(load_then_kill())
        for process in servers.processes:
            process.wait(timeout=10)
        assert outcomes["cut"] > 0, f"the kill came after the load finished: {outcomes}"

        # The database opens cleanly after the crash, before anything else touches it.
        assert integrity_ok(settings.database_url or settings.database_path)
        redeemed = count(peek, "SELECT COUNT(*) FROM redemptions")
        queued = count(peek, "SELECT COUNT(*) FROM outbox WHERE status = 'queued'")
        assert 0 < redeemed < ACCOUNTS and queued > 0, (redeemed, queued, outcomes)
        assert_invariants(peek)

        smtp.handler.stall_seconds = 0
        for n in range(len(servers)):  # restart
            servers.restart(n)
        try:
            deadline = time.time() + 90
            while (waiting := count(peek, "SELECT COUNT(*) FROM outbox WHERE status <> 'sent'")) > 0:
                assert time.time() < deadline, f"{waiting} emails still not sent after the restart"
                time.sleep(0.2)
        finally:
            with contextlib.suppress(ProcessLookupError):
                servers.stop()

        rows = peek.execute("SELECT message_id, recipient FROM outbox").fetchall()
        assert len(rows) == redeemed  # one reward email per redemption (the sessions were minted, no sign-in mail)
        assert_chain_verifies(peek)
        assert_invariants(peek)
        received = Counter(str(m["Message-ID"]) for m in smtp.received)
        expected = {r["message_id"] for r in rows}
        assert set(received) == expected  # every queued email arrived after the restart
        duplicates = {mid: n for mid, n in received.items() if n > 1}
        # At most the messages in flight at the kill: one per relay lane (mail.connections) of each instance.
        assert sum(duplicates.values()) - len(duplicates) <= 4 * len(servers)
        for message in smtp.received:  # a duplicate is the same email to the same person
            assert {r["recipient"] for r in rows if r["message_id"] == message["Message-ID"]} == {message["To"]}
    finally:
        peek.close()
        smtp.stop()
