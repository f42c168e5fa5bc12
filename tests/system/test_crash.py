"""SIGKILL the server in the middle of a load, restart it: the database opens cleanly, every
issued code has its redemption, audit event and outbox row, no code is issued twice, and
every queued email is delivered (a duplicate only with the same Message-ID)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sqlite3
import time
from collections import Counter
from pathlib import Path

import httpx2 as httpx
import pytest

from promo.audit import verify_chain
from promo.config import Settings
from tests.support.database import prepare_database, product_key
from tests.support.invariants import assert_invariants
from tests.support.mailserver import MailServer
from tests.support.served import mint_sessions, start_server, write_config
from tests.support.web import add_open_campaign

ACCOUNTS = 600


async def _until_redeemed(path: Path, count: int, timeout: float = 30) -> None:
    """Wait until `count` redemptions are committed (the load is well under way), read-only."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as peek:
            if peek.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0] >= count:
                return
        await asyncio.sleep(0.01)
    raise AssertionError(f"fewer than {count} redemptions after {timeout} s")


async def load(url: str, sessions: dict[str, tuple[str, str]]) -> Counter[str]:
    """Redeem for every account at once; connection errors are expected when the server dies."""
    outcomes: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=64)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as client:
        async def one(n: int) -> None:
            cookie, csrf = sessions[f"user{n}@example.com"]
            try:
                response = await client.post("/offers/open-today/redeem", headers={"Cookie": f"promo_session={cookie}"},
                                             data={"csrf": csrf, "idempotency_key": f"k{n}", "product_key": product_key(n),
                                                   "country": "DK", "accept_terms": "yes"})
                outcomes[str(response.status_code)] += 1
            except httpx.TransportError:
                outcomes["cut"] += 1

        await asyncio.gather(*(one(n) for n in range(ACCOUNTS)))
    return outcomes


@pytest.mark.slow
def test_sigkill_mid_load_then_restart(settings: Settings, tmp_path: Path) -> None:
    conn = prepare_database(settings.database_path)
    add_open_campaign(conn, keys=ACCOUNTS, codes=ACCOUNTS)
    sessions = mint_sessions(conn, [f"user{n}@example.com" for n in range(ACCOUNTS)])
    conn.close()
    smtp = MailServer().start()
    smtp.handler.stall_seconds = 0.02  # slower than redemptions: mail is still queued at the kill
    config = write_config(tmp_path, settings.database_path)
    # Rows the killed relay had leased wait out their lease (3 x timeout + 30 s = 36 s here)
    # before the new relay takes them: no two relays ever send the same batch at once.
    env = {"PROMO_MAIL_SINK": "false", "PROMO_MAIL_PORT": str(smtp.port), "PROMO_MAIL_RETRY_BASE_SECONDS": "1",
           "PROMO_MAIL_TIMEOUT_SECONDS": "2", "PROMO_LOGGING_LEVEL": "WARNING"}
    try:
        process, served = start_server(config, tmp_path / "server.log", **env)

        async def load_then_kill() -> Counter[str]:
            task = asyncio.create_task(load(served.url, sessions))
            await _until_redeemed(settings.database_path, ACCOUNTS // 10)  # in the middle of the load
            process.send_signal(signal.SIGKILL)
            return await task

        outcomes = asyncio.run(load_then_kill())
        process.wait(timeout=10)
        assert outcomes["cut"] > 0, f"the kill came after the load finished: {outcomes}"

        # The database opens cleanly after the crash, before anything else touches it.
        check = sqlite3.connect(settings.database_path)
        assert check.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        redeemed = check.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0]
        queued = check.execute("SELECT COUNT(*) FROM outbox WHERE status = 'queued'").fetchone()[0]
        check.close()
        assert 0 < redeemed < ACCOUNTS and queued > 0, (redeemed, queued, outcomes)
        assert_invariants(settings.database_path)

        smtp.handler.stall_seconds = 0
        process, served = start_server(config, tmp_path / "server.log", **env)  # restart
        try:
            deadline = time.time() + 90
            while True:
                db = sqlite3.connect(settings.database_path)
                waiting = db.execute("SELECT COUNT(*) FROM outbox WHERE status <> 'sent'").fetchone()[0]
                db.close()
                if waiting == 0:
                    break
                assert time.time() < deadline, f"{waiting} emails still not sent after the restart"
                time.sleep(0.2)
        finally:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            process.wait(timeout=15)

        db = sqlite3.connect(settings.database_path)
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT message_id, recipient FROM outbox").fetchall()
        assert len(rows) == redeemed  # one reward email per redemption (the sessions were minted, no sign-in mail)
        assert verify_chain(db).ok
        db.close()
        assert_invariants(settings.database_path)
        received = Counter(str(m["Message-ID"]) for m in smtp.received)
        expected = {r["message_id"] for r in rows}
        assert set(received) == expected  # every queued email arrived after the restart
        duplicates = {mid: n for mid, n in received.items() if n > 1}
        # At most the messages in flight at the kill: one per relay lane (mail.connections).
        assert sum(duplicates.values()) - len(duplicates) <= 4
        for message in smtp.received:  # a duplicate is the same email to the same person
            assert {r["recipient"] for r in rows if r["message_id"] == message["Message-ID"]} == {message["To"]}
    finally:
        smtp.stop()
