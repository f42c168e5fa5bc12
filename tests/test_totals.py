"""The counters on the redemption path (issue 18 item 2): the campaign's redemption counter
(promo/totals.py): the total cap holds exactly under PostgreSQL's concurrency, uncapped
campaigns count on rows nobody else holds; and the hourly activity counters (promo/activity.py)
likewise."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC
from pathlib import Path

import pytest

from promo import activity, totals
from promo import migrate as sqlite_migrations
from promo.activations import import_activations
from promo.backends import pg_connection, pg_schema
from promo.backends.pg_connection import PgConnection
from promo.backends.postgresql import PostgresDatabase
from promo.campaign_store import StoredCampaign, get_campaign, save_campaign
from promo.campaigns import parse_campaign_file, shipped_campaign_text
from promo.catalog import load_catalog, shipped_catalog, upsert_skus
from promo.codes import import_codes
from promo.db import connect, transaction
from promo.redemption import RedeemRequest, redeem
from promo.stock import pool_counts
from tests.support import redemption as on_store
from tests.support.database import DURING, SLUG, csv_bytes, product_key, reward_code
from tests.support.polling import wait_until

REQUESTS = 16


@pytest.fixture
def pg(pg_url: str) -> Iterator[PgConnection]:
    """The schema, the shipped catalog and campaign (unbound keys allowed), REQUESTS activation
    records and as many codes: only the cap can refuse."""
    conn = pg_connection.connect(pg_url)
    pg_schema.migrate(conn)
    conn.close()
    conn = pg_connection.connect(pg_url)  # after the migration: it reads the identity columns
    try:
        with transaction(conn):
            upsert_skus(conn, shipped_catalog())
            campaign = parse_campaign_file(shipped_campaign_text(SLUG), load_catalog(conn))
            save_campaign(conn, replace(campaign, allow_unbound_keys=True), actor="test", now=DURING)
        stored = get_campaign(conn, SLUG)
        import_activations(conn, source=csv_bytes(
            ["product_key", "sku", "country", "purchased_at", "activated_at", "account_email"],
            [[product_key(n), "O365-HOME-ESD", "DK", "2013-08-01", "2013-08-02", ""] for n in range(1, REQUESTS + 1)]),
            catalog=load_catalog(conn), now=DURING)
        import_codes(conn, campaign_id=stored.id, campaign=stored.campaign,
                     source=csv_bytes(["code"], [[reward_code(i)] for i in range(REQUESTS)]), source_name="t.csv", now=DURING)
        yield conn
    finally:
        conn.close()


def with_cap(conn: sqlite3.Connection, cap: int | None) -> None:
    stored = get_campaign(conn, SLUG)
    with transaction(conn):
        save_campaign(conn, replace(stored.campaign, total_cap=cap), actor="test", now=DURING)


def request(n: int) -> RedeemRequest:
    return RedeemRequest(campaign=SLUG, account_email=f"user{n}@example.com", product_key=product_key(n), terms_accepted=True)


async def redeem_all(url: str, numbers: range) -> list[str]:
    """Each request on its own task, four connections really at once: the outcomes' reasons."""
    async with PostgresDatabase(url, pool_size=4) as db:
        results = await asyncio.gather(*(redeem(db, request(n), DURING) for n in numbers))
    return ["redeemed" if r.redeemed else ",".join(f.reason for f in r.decision.failures) for r in results]


async def test_concurrent_redemptions_on_postgresql_give_exactly_the_cap(pg_url: str, pg: PgConnection) -> None:
    """Under READ COMMITTED a plain read of the counter let two transactions both see cap-1
    and both redeem: each counts on a row it holds, below that row's allotment."""
    with_cap(pg, 3)
    outcomes = await redeem_all(pg_url, range(1, REQUESTS + 1))
    assert sorted(outcomes) == ["redeemed"] * 3 + ["total_cap_reached"] * (REQUESTS - 3)
    assert pg.execute("SELECT count(*) FROM redemptions").fetchone()[0] == 3
    assert pg.execute("SELECT count(*) FROM reward_codes WHERE issued_at IS NOT NULL").fetchone()[0] == 3


def shared_out(pg: PgConnection, cap: int) -> int:
    """The campaign with `cap`, its allotments made and committed; its id."""
    with_cap(pg, cap)
    campaign_id = get_campaign(pg, SLUG).id
    with transaction(pg):
        totals.share_out(pg, campaign_id, cap)
    return campaign_id


def blocked_in(pg: PgConnection, pid: int) -> str:
    return str(pg.raw.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0])


class Counting:
    """A transaction on a connection and thread of its own that counts once and stays open."""

    def __init__(self, url: str, campaign_id: int, cap: int | None):
        self.conn = pg_connection.connect(url)
        self.pid = self.conn.raw.execute("SELECT pg_backend_pid()").fetchone()[0]
        self.outcome: list[object] = []
        self.conn.execute("BEGIN")
        self.conn.raw.execute("SET LOCAL deadlock_timeout = '100ms'")
        self.thread = threading.Thread(target=self._count, args=(campaign_id, cap))

    def _count(self, campaign_id: int, cap: int | None) -> None:
        try:
            self.outcome.append(totals.take(self.conn, campaign_id, cap=cap))
        except BaseException as exc:  # noqa: BLE001 - the test reads it
            self.outcome.append(exc)

    def start(self, pg: PgConnection | None = None) -> Counting:
        self.thread.start()
        if pg is not None:
            wait_until_blocked(pg, self.pid)
        return self

    def counted(self) -> object:
        self.thread.join(timeout=30)
        assert len(self.outcome) == 1, "still waiting"
        return self.outcome[0]

    def end(self, how: str = "COMMIT") -> None:
        self.thread.join(timeout=30)
        if not self.conn.raw.closed:
            self.conn.execute(how)
            self.conn.close()


@pytest.mark.parametrize("first_ends", ["COMMIT", "ROLLBACK"])
def test_when_the_only_room_left_is_held_a_redemption_waits_for_it(pg_url: str, pg: PgConnection, first_ends: str) -> None:
    """The end of a capped pool, step by step: with a cap of 1, a second transaction that counts
    while the first holds the one row with room waits for that row (refusing then would be
    wrong: the first may roll back). The first commits: the second refuses, having counted
    nothing. The first rolls back: the second counts on that room."""
    campaign_id = shared_out(pg, 1)
    first = Counting(pg_url, campaign_id, 1).start()
    assert first.counted() is not None
    second = Counting(pg_url, campaign_id, 1).start(pg)
    try:
        assert "SKIP LOCKED" not in blocked_in(pg, second.pid) and "redeemed < allotment" in blocked_in(pg, second.pid)
        assert second.outcome == []  # waiting for room
        first.end(first_ends)
        assert second.counted() == (None if first_ends == "COMMIT" else 0)
    finally:
        first.end()
        second.end()
    assert totals.redeemed(pg, campaign_id) == 1


def test_a_cap_lowered_while_a_count_under_the_old_one_is_open_counts_it(pg_url: str, pg: PgConnection) -> None:
    """Sharing a new cap out waits for the counts still open (they hold their rows), and keeps
    them: 4 given and 1 open under a cap of 10, lowered to 5: nothing more."""
    campaign_id = shared_out(pg, 10)
    for _ in range(4):
        with transaction(pg):
            assert totals.take(pg, campaign_id, cap=10) is not None
    holder = Counting(pg_url, campaign_id, 10).start()
    assert holder.counted() is not None
    sharer = Counting(pg_url, campaign_id, 5).start(pg)
    try:
        holder.end()
        assert sharer.counted() is None
    finally:
        holder.end()
        sharer.end()
    assert totals.redeemed(pg, campaign_id) == 5
    assert pg.execute("SELECT count(*) FROM campaign_totals WHERE campaign_id = :c AND redeemed > allotment",
                      {"c": campaign_id}).fetchone()[0] == 0


def test_two_transactions_sharing_out_different_caps_at_once_do_not_deadlock(pg_url: str, pg: PgConnection) -> None:
    """A cap changed while a transaction that read the old one is in flight, one row made stale
    by an uncapped count: both share out, one after the other (both queue at the campaign's row
    first). Taking the first *stale* row instead, each waited for the other's (a deadlock)."""
    campaign_id = shared_out(pg, 5)
    with transaction(pg):  # what an uncapped count on row 5 leaves behind
        pg.execute("UPDATE campaign_totals SET redeemed = redeemed + 1, cap_basis = NULL WHERE campaign_id = :c AND shard = 5",
                   {"c": campaign_id})
    holder = pg_connection.connect(pg_url)
    holder.execute("BEGIN")  # holds row 3, so both sharers are under way before either finishes
    holder.execute("SELECT 1 FROM campaign_totals WHERE campaign_id = :c AND shard = 3 FOR UPDATE", {"c": campaign_id}).fetchall()
    sharers = [Counting(pg_url, campaign_id, 6).start(pg), Counting(pg_url, campaign_id, 5).start(pg)]
    try:
        holder.execute("COMMIT")
        for sharer in sharers:  # one after the other: the second waits for the first's COMMIT at the gate
            outcome = sharer.counted()
            assert outcome is not None and not isinstance(outcome, BaseException), outcome
            sharer.end()
    finally:
        for sharer in sharers:
            sharer.end()
        holder.close()
    assert totals.redeemed(pg, campaign_id) == 3


def test_those_that_find_the_cap_shared_out_hold_nothing_for_it(pg_url: str, pg: PgConnection) -> None:
    """Two transactions queue at the gate behind one sharing the cap out. Once it commits, the
    first counts and stays open; the second must not wait for it (room is plentiful): the wait
    at the gate is undone, so the first holds only the row it counted on."""
    with_cap(pg, 100)
    campaign_id = get_campaign(pg, SLUG).id
    holder = pg_connection.connect(pg_url)
    holder.execute("BEGIN")  # holds row 5, so the sharer is still sharing out when the others arrive
    holder.execute("SELECT 1 FROM campaign_totals WHERE campaign_id = :c AND shard = 5 FOR UPDATE", {"c": campaign_id}).fetchall()
    sharer = Counting(pg_url, campaign_id, 100).start(pg)
    first, second = Counting(pg_url, campaign_id, 100).start(pg), Counting(pg_url, campaign_id, 100).start(pg)
    try:
        holder.execute("COMMIT")
        sharer.end()
        assert first.counted() is not None  # its transaction still open
        assert second.counted() is not None  # without waiting for first's COMMIT
    finally:
        for counting in (first, second):
            counting.end()
        holder.close()
    assert totals.redeemed(pg, campaign_id) == 3


def test_a_wait_for_room_keeps_no_lock_that_a_sharer_needs(pg_url: str, pg: PgConnection) -> None:
    """P waits for the room T holds; an uncapped count (the cap lifted meanwhile) makes a row
    stale; S, with the cap set again, takes the gate to share out and waits for T's row. T rolls
    back: had P kept the row it waited for, P (then needing the gate S holds) and S (needing that
    row) would deadlock. S shares out and finds no room (4 given, 1 uncapped: the cap of 5),
    then P the same."""
    campaign_id = shared_out(pg, 5)  # rows 0..4 one each
    for _ in range(4):
        with transaction(pg):
            totals.take(pg, campaign_id, cap=5)  # rows 0..3 full
    holder = Counting(pg_url, campaign_id, 5).start()
    assert holder.counted() == 4
    waiter = Counting(pg_url, campaign_id, 5).start(pg)
    with transaction(pg):  # an uncapped count: row 0, its allotment no longer trusted
        assert totals.take(pg, campaign_id, cap=None) == 0
    sharer = Counting(pg_url, campaign_id, 5).start(pg)
    try:
        holder.end("ROLLBACK")
        assert sharer.counted() is None
        sharer.end()
        assert waiter.counted() is None
    finally:
        waiter.end()
        sharer.end()
    assert totals.redeemed(pg, campaign_id) == 5


def test_an_uncapped_count_that_waits_for_a_held_row_clears_its_allotment_too(pg_url: str, pg: PgConnection,
                                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The uncapped count's fallback (every counter row held: it waits for one) may also pass a
    row's allotment, so it too leaves the row stale for a cap set again. Two rows, both held."""
    campaign_id = shared_out(pg, 10)
    with transaction(pg):
        pg.execute("DELETE FROM campaign_totals WHERE campaign_id = :c AND shard >= 2", {"c": campaign_id})
    monkeypatch.setattr(totals, "SHARDS", 2)
    holders = [Counting(pg_url, campaign_id, 10).start() for _ in range(2)]
    assert sorted(holder.counted() for holder in holders) == [0, 1]  # type: ignore[type-var]
    uncapped = Counting(pg_url, campaign_id, None).start(pg)  # no free row: waits in the fallback
    try:
        for holder in holders:
            holder.end()
        shard = uncapped.counted()
    finally:
        uncapped.end()
    assert pg.execute("SELECT cap_basis FROM campaign_totals WHERE campaign_id = :c AND shard = :s",
                      {"c": campaign_id, "s": shard}).fetchone()[0] is None
    assert totals.redeemed(pg, campaign_id) == 3


@pytest.mark.parametrize("cap", [None, 10])
def test_counters_of_open_transactions_are_different_rows(pg_url: str, pg: PgConnection, cap: int | None) -> None:
    """No hot row, capped or not: while three transactions each hold the counter row they took,
    a fourth counts on yet another row at once (a wait would run into the lock timeout); after
    the COMMITs readers sum them all. The first capped count shares the cap out."""
    with_cap(pg, cap)
    campaign_id = get_campaign(pg, SLUG).id
    with transaction(pg):
        assert totals.take(pg, campaign_id, cap=cap) is not None
    assert pg.execute("SELECT count(*) FROM campaign_totals WHERE campaign_id = :c", {"c": campaign_id}).fetchone()[0] == totals.SHARDS
    if cap is not None:
        assert pg.execute("SELECT sum(allotment) FROM campaign_totals WHERE campaign_id = :c AND cap_basis = :cap",
                          {"c": campaign_id, "cap": cap}).fetchone()[0] == cap
    conns = [pg_connection.connect(pg_url) for _ in range(4)]
    try:
        for conn in conns:
            conn.execute("BEGIN")
            conn.raw.execute("SET LOCAL lock_timeout = '5s'")  # a wait would fail the test, not hang it
        shards = [totals.take(conn, campaign_id, cap=cap) for conn in conns]
        assert len(set(shards)) == 4 and None not in shards, shards
        for conn in conns:
            conn.execute("COMMIT")
        assert totals.redeemed(pg, campaign_id) == 5
    finally:
        for conn in conns:
            conn.close()


def test_activity_counts_of_open_transactions_are_different_rows(pg_url: str, pg: PgConnection) -> None:
    """The hour's counter rows: while three transactions each hold the row they counted on,
    a fourth counts (and its refusal reason) at once; readers sum them; one at a time, all
    on one row."""
    campaign_id = get_campaign(pg, SLUG).id

    def count(conn: sqlite3.Connection, n: int) -> None:
        activity.count_attempt(conn, campaign_id=campaign_id, outcome="refused", reasons=["R-X6 already_redeemed"],
                               at=DURING, tz=UTC, shard_of=n)
    for n in range(2):
        with transaction(pg):
            count(pg, n)
    assert pg.execute("SELECT count(*) FROM campaign_activity WHERE outcome = 'refused'").fetchone()[0] == 1
    conns = [pg_connection.connect(pg_url) for _ in range(4)]
    try:
        for n, conn in zip((10, 14, 18, 22), conns, strict=True):  # one row of the four that `shard_of % 4` had
            conn.execute("BEGIN")
            conn.raw.execute("SET LOCAL lock_timeout = '5s'")  # a wait would fail the test, not hang it
            count(conn, n)
        for conn in conns:
            conn.execute("COMMIT")
    finally:
        for conn in conns:
            conn.close()
    assert activity.total(pg, campaign_id, "refused") == 6
    assert activity.reasons(pg, campaign_id) == [("R-X6 already_redeemed", 6)]
    assert pg.execute("SELECT count(*) FROM campaign_activity WHERE outcome = 'refused'").fetchone()[0] == 4


def wait_until_blocked(pg: PgConnection, pid: int) -> None:
    wait_until(lambda: pg.raw.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()[0]
               == "Lock", 30, "the second transaction waits for a counter row")


# ---- on each store, through the redemption ----

@pytest.fixture
def many(conn: sqlite3.Connection, stored: StoredCampaign) -> sqlite3.Connection:
    """Unbound keys allowed, 12 eligible keys and 12 codes."""
    on_store.allow_unbound_keys(conn)
    on_store.add_activations(conn, [(n, "O365-HOME-ESD", "DK", None) for n in range(1, 13)])
    on_store.add_codes(conn, stored, 12)
    return conn


def reason(conn: sqlite3.Connection, n: int) -> str:
    result = on_store.redeem(conn, n, f"user{n}@example.com")
    return "redeemed" if result.redeemed else ",".join(f.reason for f in result.decision.failures)


def test_uncapped_redemptions_one_at_a_time_count_on_one_row(many: sqlite3.Connection) -> None:
    stored = get_campaign(many, SLUG)
    assert [reason(many, n) for n in range(1, 9)] == ["redeemed"] * 8
    counted = [r[0] for r in many.execute("SELECT redeemed FROM campaign_totals WHERE campaign_id = :c ORDER BY shard",
                                          {"c": stored.id})]
    assert counted[0] == 8 and not any(counted[1:])  # nobody else held the first row: always that one
    assert totals.redeemed(many, stored.id) == 8
    assert pool_counts(many, stored, DURING)["issued"] == 8


def test_a_cap_set_later_counts_what_was_redeemed_before(many: sqlite3.Connection) -> None:
    assert [reason(many, n) for n in range(1, 6)] == ["redeemed"] * 5
    with_cap(many, 6)
    assert [reason(many, n) for n in range(6, 9)] == ["redeemed", "total_cap_reached", "total_cap_reached"]
    stored = get_campaign(many, SLUG)
    assert totals.redeemed(many, stored.id) == 6 == pool_counts(many, stored, DURING)["issued"]
    with_cap(many, 4)  # lowered below what was given: nothing more
    assert reason(many, 9) == "total_cap_reached"


def test_a_cap_lifted_and_set_again_counts_what_was_given_meanwhile(many: sqlite3.Connection) -> None:
    """Counts made without a cap may pass a row's allotment: the same cap set again must share
    out what is left anew, or the rows still below their old allotments would give more (on
    PostgreSQL: SQLite's one row holds the whole cap, so there it checks the plain sequence)."""
    with_cap(many, 6)
    assert [reason(many, n) for n in range(1, 3)] == ["redeemed"] * 2
    with_cap(many, None)
    assert [reason(many, n) for n in range(3, 6)] == ["redeemed"] * 3
    with_cap(many, 6)
    assert [reason(many, n) for n in range(6, 9)] == ["redeemed", "total_cap_reached", "total_cap_reached"]
    assert totals.redeemed(many, get_campaign(many, SLUG).id) == 6


def test_sharing_out_keeps_each_rows_count_and_spreads_the_room_left(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    with transaction(conn):
        totals.make_rows(conn, stored.id)
        conn.execute("UPDATE campaign_totals SET redeemed = 7 WHERE campaign_id = :c AND shard = 0", {"c": stored.id})
        totals.share_out(conn, stored.id, 10)
    rows = conn.execute("SELECT redeemed, allotment, cap_basis FROM campaign_totals WHERE campaign_id = :c ORDER BY shard",
                        {"c": stored.id}).fetchall()
    assert sum(int(r[1]) for r in rows) == 10 and {int(r[2]) for r in rows} == {10}
    room = [int(r[1]) - int(r[0]) for r in rows]
    assert int(rows[0][1]) >= 7 and sum(room) == 3 and max(room) - min(room) <= 1  # 3 left, spread evenly
    with transaction(conn):
        totals.share_out(conn, stored.id, 5)  # lowered below what was given: no room anywhere
        assert totals.take(conn, stored.id, cap=5) is None
    assert [int(r[0]) for r in conn.execute("SELECT redeemed FROM campaign_totals WHERE campaign_id = :c AND allotment > redeemed",
                                            {"c": stored.id})] == []


@pytest.mark.parametrize("cap", [None, 20])
def test_a_refusal_for_want_of_codes_counts_nothing(conn: sqlite3.Connection, stored: StoredCampaign, cap: int | None) -> None:
    on_store.allow_unbound_keys(conn)
    on_store.add_activations(conn, [(n, "O365-HOME-ESD", "DK", None) for n in range(1, 4)])
    on_store.add_codes(conn, stored, 1)
    with_cap(conn, cap)
    assert [reason(conn, n) for n in range(1, 4)] == ["redeemed", "no_codes_left", "no_codes_left"]
    assert totals.redeemed(conn, stored.id) == 1
    assert pool_counts(conn, get_campaign(conn, SLUG), DURING) == {"available": 0, "issued": 1, "expired": 0, "voided": 0}


@pytest.mark.sqlite_only("migrates a SQLite file step by step; PostgreSQL's 0025 is an ALTER of the same columns, run by every test")
def test_migration_0025_keeps_each_campaigns_total_as_its_shard_0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conn = connect(tmp_path / "old.sqlite3")
    every = sqlite_migrations.available_migrations()
    monkeypatch.setattr(sqlite_migrations, "available_migrations", lambda: [m for m in every if m[0] < 25])
    sqlite_migrations.migrate(conn)
    with transaction(conn), monkeypatch.context() as then:
        then.setattr(totals, "make_rows", lambda *_: [])  # saved as before 0025: no counter rows at save time
        upsert_skus(conn, shipped_catalog())
        save_campaign(conn, parse_campaign_file(shipped_campaign_text(SLUG), load_catalog(conn)), actor="test", now=DURING)
    campaign_id = get_campaign(conn, SLUG).id
    with transaction(conn):
        conn.execute("INSERT INTO campaign_totals (campaign_id, redeemed) VALUES (:c, 41)", {"c": campaign_id})
    monkeypatch.setattr(sqlite_migrations, "available_migrations", lambda: every)
    assert "0025_sharded_totals.sql" in sqlite_migrations.migrate(conn)
    assert [tuple(r) for r in conn.execute("SELECT campaign_id, shard, redeemed FROM campaign_totals")] == [(campaign_id, 0, 41)]
    assert totals.redeemed(conn, campaign_id) == 41
    conn.close()
