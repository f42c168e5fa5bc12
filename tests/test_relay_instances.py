"""The mail relay across instances (issue 18, item 4), on real stores and a real SMTP server
(aiosmtpd): relays lease disjoint batches (SKIP LOCKED on PostgreSQL); a NOTIFY sent after
commit wakes an idle relay of another instance long before its poll, over a LISTEN
connection that reconnects by itself; a burst of commits folds into few NOTIFYs; a lane never
sends past its lease and hands back what it did not send; and a `promo relay` killed with
SIGKILL mid-batch loses nothing: another relay sends its leased emails once the lease ends,
with at most one duplicate per SMTP lane of the dead relay, counted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from promo.backends.notify import FOLD_SECONDS, Announcer
from promo.backends.postgresql import PostgresDatabase
from promo.config import MailSettings, Settings
from promo.db import Database, transaction
from promo.mail import MailRelay
from promo.outbox import claim_due, enqueue
from promo.templating import Templates
from promo.timeutil import db_time, from_db_time, utcnow
from tests.support.cli import Cli
from tests.support.database import product_key
from tests.support.mailserver import MailServer, ScriptedHandler
from tests.support.polling import await_until
from tests.support.prepared import store_of
from tests.support.served import PROMO

LEASE = timedelta(minutes=5)
PG_ONLY = "LISTEN/NOTIFY between instances; SQLite has one writing process, whose views wake its relay in-process"


def queue_in(conn: Any, count: int, *, first: int = 0) -> list[str]:
    """`count` sign-in emails (their data is their payload), inside the caller's transaction;
    their Message-IDs."""
    return [enqueue(conn, template="signin_link", recipient=f"user{i}@example.com", subject_ref=f"signin:t{i}",
                    at=utcnow(), payload={"link": f"https://promo.test/signin/{i}", "minutes": 15})
            for i in range(first, first + count)]


def queue_signins(conn: Any, count: int) -> list[str]:
    with transaction(conn):
        return queue_in(conn, count)


@contextmanager
def smtp_with(handler: ScriptedHandler) -> Iterator[MailServer]:
    """A real SMTP server (aiosmtpd) answering with `handler`."""
    server = MailServer()
    server.handler = handler
    server.start()
    try:
        yield server
    finally:
        server.stop()


def mail_settings(settings: Settings, port: int, **changes: Any) -> MailSettings:
    return replace(settings.mail, **{"host": "127.0.0.1", "port": port, "timeout_seconds": 2, "connections": 2, **changes})


def listeners(conn: Any) -> list[int]:
    """The backends LISTENing for the outbox on this database (pg_stat_activity)."""
    return [row[0] for row in conn.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query = 'LISTEN promo_outbox'")]


def received_by(smtp: MailServer, recipient: str) -> int:
    return sum(1 for m in smtp.received if m["To"] == recipient)


# -- leases -------------------------------------------------------------------------------

async def test_two_relays_on_one_database_lease_disjoint_batches(settings: Settings, conn: Any) -> None:
    queue_signins(conn, 150)
    every = {row[0] for row in conn.execute("SELECT id FROM outbox WHERE status = 'queued'")}

    async def drain(db: Database | PostgresDatabase) -> list[int]:
        taken: list[int] = []
        while batch := await db.write_grouped(claim_due, now=utcnow(), lease=LEASE, limit=10):
            taken += [m.id for m in batch]
        return taken

    async with store_of(settings) as a, store_of(settings) as b:
        runs = await asyncio.gather(drain(a), drain(b), drain(a), drain(b))
    taken = [row_id for run in runs for row_id in run]
    assert len(taken) == len(set(taken)), "a row was leased to two relays at once"
    assert set(taken) == every and len(every) == 150


async def test_a_lane_never_sends_past_its_lease_and_hands_back_the_rest(settings: Settings, conn: Any) -> None:
    """A slow SMTP server (each message takes 4 s on the relay's clock, which the server
    advances): the batch's lanes stop a timeout before the lease ends; what they did not send
    is due again at once, attempts unchanged, and the next round sends it, once."""
    message_ids = queue_signins(conn, 30)
    started = utcnow()
    clock = SteppingClock(started)
    handler = ClockedHandler(clock, step=timedelta(seconds=4))
    with smtp_with(handler) as smtp:
        await deliver_rounds(settings, conn, smtp, handler, clock, message_ids)


async def deliver_rounds(settings: Settings, conn: Any, smtp: MailServer, handler: ClockedHandler,
                         clock: SteppingClock, message_ids: list[str]) -> None:
    mail = mail_settings(settings, smtp.port, timeout_seconds=10, lease_seconds=60, connections=2)
    rounds = 0
    async with store_of(settings) as db:
        relay = MailRelay(db, mail, Templates(), "http://promo.test", clock=clock, batch_size=30)
        while conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'queued'").fetchone()[0]:
            rounds += 1
            assert rounds <= 5, "the rounds do not progress"
            leased_at, before = clock(), len(handler.times)
            sent = await relay.deliver_once(keep_open=True)
            assert 0 < sent == len(handler.times) - before
            assert max(handler.times[before:]) <= leased_at + timedelta(seconds=60)  # none sent past the lease
            released = conn.execute("SELECT attempts, next_attempt_at FROM outbox WHERE status = 'queued'").fetchall()
            assert all(row[0] == 0 and from_db_time(row[1]) <= clock() for row in released)  # due again, no attempt spent
        await relay.close()
    assert rounds > 1  # the slow server made the first lane stop and hand back
    assert sorted(m["Message-ID"] for m in smtp.received) == sorted(message_ids)  # each once


async def test_a_send_that_would_outlast_the_lease_is_cut_and_the_rest_handed_back(settings: Settings, conn: Any) -> None:
    """The last send that may start (the relay's clock just before `send_by`) meets a server
    that takes 4 s over DATA: it is cut off when the lease has half a margin left (2.6 s here,
    before the client's own 5 s timeout), counted as a temporary failure (the server may still
    deliver it: the duplicate an SMTP timeout always risks, same Message-ID), and the lane's
    other emails are handed back untried."""
    queue_signins(conn, 4)
    leased_at = utcnow()
    calls = iter([leased_at])
    clock = lambda: next(calls, leased_at + timedelta(seconds=4.9))  # noqa: E731 (the lease, then just before send_by)
    handler = ScriptedHandler()
    handler.stall_seconds = 4
    with smtp_with(handler) as smtp:
        mail = mail_settings(settings, smtp.port, timeout_seconds=5, lease_seconds=10, connections=1)
        async with store_of(settings) as db:
            relay = MailRelay(db, mail, Templates(), "http://promo.test", clock=clock)
            assert await relay.deliver_once() == 1
    rows = conn.execute("SELECT recipient, attempts, last_error FROM outbox ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [("user0@example.com", 1, "the lease ended during the send"),
                                        ("user1@example.com", 0, None), ("user2@example.com", 0, None),
                                        ("user3@example.com", 0, None)]


@dataclass
class SteppingClock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now


class ClockedHandler(ScriptedHandler):
    """Each message accepted moves the relay's clock on by `step` (a slow server) and notes when."""

    def __init__(self, clock: SteppingClock, step: timedelta):
        super().__init__()
        self.clock, self.step = clock, step
        self.times: list[datetime] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.clock.now += self.step
        self.times.append(self.clock.now)
        return await super().handle_DATA(server, session, envelope)


# -- NOTIFY -------------------------------------------------------------------------------

@asynccontextmanager
async def listening_relay(settings: Settings, conn: Any, smtp: MailServer) -> AsyncIterator[tuple[MailRelay, Any]]:
    """A relay on a store of its own, polling only every 600 s, once it LISTENs; and another
    instance's store to queue emails through. The relay is stopped on leaving."""
    async with store_of(settings) as relay_db, store_of(settings) as web_db:
        relay = MailRelay(relay_db, mail_settings(settings, smtp.port), Templates(), "http://promo.test", poll_seconds=600)
        running = asyncio.create_task(relay.run())
        try:
            await await_until(lambda: len(listeners(conn)) == 1, 20, "the relay LISTENs")
            yield relay, web_db
        finally:
            relay.stop()
            await running


@pytest.mark.postgresql_only(PG_ONLY)
async def test_a_notify_from_another_instance_wakes_an_idle_relay_long_before_its_poll(
        settings: Settings, conn: Any, smtp: MailServer) -> None:
    async with listening_relay(settings, conn, smtp) as (relay, web_db):
        for n in range(2):  # the second one is queued while the relay is surely idle
            await await_until(relay.idle.is_set, 20, "the relay waits for work")
            await web_db.write(queue_in, 1, first=n)
            # Its poll is 600 s away: only the NOTIFY of the other store can wake it now.
            recipient = f"user{n}@example.com"
            await await_until(lambda: received_by(smtp, recipient) == 1, 30, f"email {n} sent")  # noqa: B023 (awaited here)


@pytest.mark.postgresql_only(PG_ONLY)
async def test_the_relay_listens_again_by_itself_when_its_connection_is_cut(
        settings: Settings, conn: Any, smtp: MailServer) -> None:
    async with listening_relay(settings, conn, smtp) as (relay, web_db):
        [cut] = listeners(conn)
        conn.execute("SELECT pg_terminate_backend(:pid)", {"pid": cut})
        await await_until(lambda: listeners(conn) not in ([], [cut]), 20, "a new LISTEN connection")
        await await_until(relay.idle.is_set, 20, "the relay waits for work")
        await web_db.write(queue_in, 1)
        await await_until(lambda: received_by(smtp, "user0@example.com") == 1, 30, "the email sent on the new connection's NOTIFY")


@pytest.mark.postgresql_only(PG_ONLY)
async def test_a_burst_of_commits_folds_into_few_notifies_and_a_rollback_sends_none(settings: Settings, conn: Any) -> None:
    assert settings.database_url
    with psycopg.connect(settings.database_url, autocommit=True) as heard:
        heard.execute("LISTEN promo_outbox")
        async with store_of(settings) as db:
            assert isinstance(db, PostgresDatabase)

            def queue_then_fail(c: Any) -> None:
                queue_in(c, 1, first=999)
                raise LookupError("rolled back")

            with pytest.raises(LookupError):
                await db.write(queue_then_fail)
            await db.announcer.idle()
            assert db.announcer.sent == 0  # nothing committed, nothing announced

            started = time.monotonic()
            await asyncio.gather(*(db.write(queue_in, 1, first=i) for i in range(200)))
            await db.announcer.idle()
            elapsed = time.monotonic() - started
        heard.execute("NOTIFY promo_outbox, 'end'")  # after every NOTIFY of the store: they committed first
        count = 0
        for note in heard.notifies(timeout=20):
            if note.payload == "end":
                break
            count += 1
    assert conn.execute("SELECT COUNT(*) FROM outbox").fetchone()[0] == 200
    assert 1 <= count == db.announcer.sent < 200
    assert count <= 2 + elapsed / FOLD_SECONDS  # at most one per folding window, whatever the machine's speed


async def test_marks_while_a_notify_is_in_flight_fold_into_exactly_one_more() -> None:
    gate = asyncio.Event()
    sends = 0

    async def send() -> None:
        nonlocal sends
        sends += 1
        await gate.wait()

    announcer = Announcer(send, fold_seconds=0)
    announcer.mark()
    await await_until(lambda: sends == 1, 5, "the first NOTIFY goes at once")
    for _ in range(50):
        announcer.mark()
    gate.set()
    await announcer.idle()
    assert sends == 2 and announcer.sent == 2


# -- a relay killed mid-batch -------------------------------------------------------------

class GatedHandler(ScriptedHandler):
    """Accepts `open_for` messages; each later one is taken in (and counted as received) but
    its "250" is held until `gate` is set: the relay is then certainly mid-batch, and a relay
    killed meanwhile never learns that those were delivered (so they go out twice). Notes
    for each Message-ID taken in when, and whether its answer was held."""

    def __init__(self, open_for: int):
        super().__init__()
        self.open_for = open_for
        self.gate = threading.Event()
        self.holding = 0
        self.log: list[tuple[str, datetime, bool]] = []  # (Message-ID, taken in at, answer held)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        held = len(self.log) >= self.open_for and not self.gate.is_set()
        reply = await super().handle_DATA(server, session, envelope)
        self.log.append((self.received[-1]["Message-ID"], utcnow(), held))
        if held:
            self.holding += 1
            await asyncio.get_running_loop().run_in_executor(None, self.gate.wait)
        return reply


def relay_env(settings: Settings, smtp: MailServer) -> dict[str, str]:
    """A `promo relay` process's environment: this test's store and SMTP server, 2 lanes, a
    4 s lease (so the test waits for it), 1 s SMTP timeout."""
    return {**os.environ, "PROMO_CONFIG": str(settings.database_path.parent / "config.toml"),
            "PROMO_MAIL_HOST": "127.0.0.1", "PROMO_MAIL_PORT": str(smtp.port), "PROMO_MAIL_CONNECTIONS": "2",
            "PROMO_MAIL_TIMEOUT_SECONDS": "1", "PROMO_MAIL_LEASE_SECONDS": "4", "PROMO_LOGGING_LEVEL": "WARNING"}


@pytest.fixture
def relays(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=15)


def start_relay(env: dict[str, str], log: Path, started: list[subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        process = subprocess.Popen([PROMO, "relay"], env=env, stdout=out, stderr=subprocess.STDOUT)
    started.append(process)
    return process


def wait_for(condition: Callable[[], bool], seconds: float, what: str, process: subprocess.Popen[bytes] | None = None,
             log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the relay exited ({process.returncode}): {log.read_text() if log else ''}")
        assert time.monotonic() < deadline, f"not within {seconds} s: {what}"
        time.sleep(0.02)


def test_a_relay_killed_mid_batch_loses_nothing_and_its_lease_goes_out_from_another(
        settings: Settings, conn: Any, relays: list[subprocess.Popen[bytes]], tmp_path: Path) -> None:
    message_ids = queue_signins(conn, 240)
    handler = GatedHandler(open_for=70)  # past the first batch of 50: the second is leased and in flight
    with smtp_with(handler) as smtp:
        kill_one_then_drain(settings, conn, smtp, handler, relays, tmp_path, message_ids)


def kill_one_then_drain(settings: Settings, conn: Any, smtp: MailServer, handler: GatedHandler,
                        relays: list[subprocess.Popen[bytes]], tmp_path: Path, message_ids: list[str]) -> None:
    env = relay_env(settings, smtp)
    log = tmp_path / "relays.log"
    first = start_relay(env, log, relays)
    wait_for(lambda: handler.holding >= 1, 60, "the first relay sends 70 and then waits on the server", first, log)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=15)
    handler.gate.set()
    killed_at = utcnow()
    orphaned = {row[0]: from_db_time(row[1]) for row in conn.execute(
        "SELECT message_id, next_attempt_at FROM outbox WHERE status = 'queued' AND next_attempt_at > :now",
        {"now": db_time(killed_at)})}
    assert orphaned, "the killed relay held a lease"

    second = start_relay(env, log, relays)
    wait_for(lambda: conn.execute("SELECT COUNT(*) FROM outbox WHERE status <> 'sent'").fetchone()[0] == 0, 90,
             "every email sent by the second relay", second, log)

    copies = Counter(message_id for message_id, _, _ in handler.log)
    assert set(copies) == set(message_ids)  # nothing lost
    duplicates = sum(copies.values()) - len(message_ids)
    print(f"\nkilled mid-batch: {len(orphaned)} leased emails left behind; {duplicates} duplicate(s) of 240")
    # Those whose "250" the dead relay never heard (held), and any it heard but had not yet
    # recorded when it died: at most one per lane (two here).
    assert handler.holding <= duplicates <= 2
    for message_id, at, held in handler.log:
        if message_id in orphaned and not held:  # sent by the second relay
            assert at >= orphaned[message_id], "an email leased to the dead relay went out before its lease ended"



@pytest.mark.postgresql_only(PG_ONLY)
def test_a_command_that_queues_email_announces_it_after_its_commit(cli: Cli) -> None:
    """`promo redeem` (a process, its own connection): the relays hear of its email at once;
    the commands before it queued none and announced none."""
    assert cli.url
    with psycopg.connect(cli.url, autocommit=True) as heard:
        heard.execute("LISTEN promo_outbox")
        cli.open_offer_with_one_code()
        redeemed = cli("redeem", "--campaign", "open-today", "--account", "ann@example.com", "--accept-terms",
                       "--product-key", product_key(1))
        assert redeemed.returncode == 0, redeemed.stderr
        heard.execute("NOTIFY promo_outbox, 'end'")
        payloads = []
        for note in heard.notifies(timeout=20):
            payloads.append(note.payload)
            if note.payload == "end":
                break
    assert payloads == ["", "end"]  # the redemption's NOTIFY (committed before ours), and no other
