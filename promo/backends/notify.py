"""Waking the mail relays of every instance on PostgreSQL (issue 18, item 4): LISTEN/NOTIFY.

- The writer side: `outbox.enqueue` marks its connection (`mark_queued`); once that
  transaction has committed, the store tells its `Announcer`, which sends one NOTIFY for a
  whole burst (while one is in flight or just sent, more marks fold into the next one).
  NOTIFY is sent after COMMIT in a statement of its own, never inside the redemption's
  transaction: a NOTIFY in a transaction takes a database-wide lock at its commit, which
  serialised every redemption's commit (pgbench, 16 clients: 5,017 tps without, 848 with).
- The relay side: `listening(db, wake)` keeps one LISTEN connection per relay, which wakes
  the relay on each notification and reconnects by itself (with backoff) when the server
  goes away, waking the relay once on each (re)connect for what it may have missed.
SQLite needs none of this: one process writes it, and its views wake the relay in-process.
A notification is only a hint: a relay still polls (mail relay poll_seconds), so a lost one
delays an email by at most that, and loses nothing. PgBouncer in transaction mode does not
keep a LISTEN session: relays must reach PostgreSQL directly (README, Email).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg

from promo.backends.pg_connection import PgConnection
from promo.logs import get_logger

log = get_logger("promo.mail")

CHANNEL = "promo_outbox"  # per database: instances of another database never hear it
FOLD_SECONDS = 0.01  # after a NOTIFY, marks this long fold into the next: at most ~100 NOTIFYs/s per process
RECONNECT_FIRST_S, RECONNECT_MAX_S = 0.5, 30.0


def mark_queued(conn: Any) -> None:
    """An email was queued in this connection's transaction (outbox.enqueue): announce it
    once the transaction commits (PostgresDatabase does, after the call). SQLite: nothing."""
    if isinstance(conn, PgConnection):
        conn.mail_queued = True


def notify(conn: Any) -> None:
    """The NOTIFY itself, in autocommit (a statement, and so a transaction, of its own)."""
    conn.execute("SELECT pg_notify(:channel, '')", {"channel": CHANNEL})


def announce_if_queued(conn: Any) -> None:
    """For a connection of its own (a `promo` command's): NOTIFY once if it queued email and
    holds no open transaction (what it queued is committed). Best effort: the relays' poll
    finds the email anyway."""
    if isinstance(conn, PgConnection) and conn.mail_queued and not conn.in_transaction:
        try:
            notify(conn)
        except psycopg.Error as exc:
            log.warning("mail.notify_failed", error=type(exc).__name__)


class Announcer:
    """Sends NOTIFY through `send` after commits that queued email, folding a burst into few:
    the first mark sends at once; marks while it is in flight, or within FOLD_SECONDS after,
    make exactly one more. Runs on the event loop; a failed NOTIFY is logged, not raised
    (the relays' poll finds the email anyway)."""

    def __init__(self, send: Callable[[], Awaitable[None]], *, fold_seconds: float = FOLD_SECONDS):
        self._send, self.fold_seconds = send, fold_seconds
        self._pending = False
        self._task: asyncio.Task[None] | None = None
        self.sent = 0  # NOTIFYs sent (tests, metrics)

    def mark(self) -> None:
        if self._task is not None and not self._task.done():
            self._pending = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="promo-announcer")

    async def _run(self) -> None:
        while True:
            self._pending = False
            try:
                await self._send()
                self.sent += 1
            except Exception as exc:  # the database is away: the relays' poll finds the email later
                log.warning("mail.notify_failed", error=type(exc).__name__)
            await asyncio.sleep(self.fold_seconds)  # the folding window, not a wait for anything
            if not self._pending:
                return

    async def idle(self) -> None:
        """Wait until every mark so far is announced (tests; a clean close)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


async def listen(url: str, wake: Callable[[], None]) -> None:
    """LISTEN on the outbox channel and call wake() for each notification, until cancelled. The
    connection is its own (not the pool's: it stays in LISTEN); when it breaks, it is opened
    again after a backoff (0.5 s, doubling, at most 30 s), and wake() is called once it
    listens again, for what was queued meanwhile."""
    delay = RECONNECT_FIRST_S
    while True:
        try:
            conn = await psycopg.AsyncConnection.connect(url, autocommit=True, connect_timeout=10, keepalives=1,
                                                         keepalives_idle=30, keepalives_interval=10, keepalives_count=3)
            async with conn:
                await conn.execute("LISTEN promo_outbox")  # CHANNEL
                log.info("mail.listening", channel=CHANNEL)
                delay = RECONNECT_FIRST_S
                wake()
                async for _ in conn.notifies():
                    wake()
        except (psycopg.Error, OSError) as exc:
            log.warning("mail.listen_lost", error=type(exc).__name__, retry_in_seconds=delay)
        await asyncio.sleep(delay)  # backoff before reconnecting
        delay = min(delay * 2, RECONNECT_MAX_S)


@contextlib.asynccontextmanager
async def listening(db: object, wake: Callable[[], None]) -> AsyncIterator[None]:
    """While inside: `wake` is called on each NOTIFY of the outbox channel, when `db` is a
    PostgreSQL store; nothing for SQLite."""
    url = getattr(db, "listen_url", None)
    if not isinstance(url, str):
        yield
        return
    task = asyncio.get_running_loop().create_task(listen(url, wake), name="promo-mail-listen")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
