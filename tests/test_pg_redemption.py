"""A real redemption on PostgreSQL through PostgresDatabase (issue 17, items 2 and 4): the
service function promo.redemption.redeem, unchanged, on the PostgreSQL schema, with the
shipped catalog and campaign, imported activation records and codes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from promo import totals
from promo.activations import import_activations
from promo.audit import seal_pending, verify_chain
from promo.backends import pg_connection, pg_schema
from promo.backends.pg_connection import PgConnection
from promo.backends.postgresql import MAX_ATTEMPTS, PostgresDatabase, RetriesExhausted, in_transaction, is_unavailable
from promo.campaign_store import get_campaign, save_campaign
from promo.campaigns import parse_campaign_file, shipped_campaign_text
from promo.catalog import load_catalog, shipped_catalog, upsert_skus
from promo.codes import claim_code, import_codes
from promo.db import transaction
from promo.redemption import RedeemRequest, redeem, redeem_unit
from tests.support.database import DURING, SLUG, csv_bytes, product_key, reward_code
from tests.support.pg import counting_round_trips


@pytest.fixture
def pg(pg_url: str) -> Iterator[PgConnection]:
    """The schema, the shipped catalog and campaign (unbound keys allowed), 6 activation
    records and 4 codes: through the same storage functions as on SQLite."""
    conn = pg_connection.connect(pg_url)
    pg_schema.migrate(conn)
    conn.close()
    conn = pg_connection.connect(pg_url)  # after the migration: it reads the identity columns
    try:
        load(conn)
        yield conn
    finally:
        conn.close()


def load(conn: PgConnection) -> None:
    with transaction(conn):
        upsert_skus(conn, shipped_catalog())
        campaign = parse_campaign_file(shipped_campaign_text(SLUG), load_catalog(conn))
        save_campaign(conn, replace(campaign, allow_unbound_keys=True), actor="test", now=datetime(2013, 7, 1, tzinfo=UTC))
    stored = get_campaign(conn, SLUG)
    import_activations(conn, source=csv_bytes(["product_key", "sku", "country", "purchased_at", "activated_at", "account_email"],
                                              [[product_key(n), "O365-HOME-ESD", "DK", "2013-08-01", "2013-08-02", ""]
                                               for n in range(1, 7)]),
                       catalog=load_catalog(conn), now=DURING)
    import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source=csv_bytes(["code"], [[reward_code(i)] for i in range(4)]),
                 source_name="t.csv", now=DURING)


def request(key: int, account: str, **extra: object) -> RedeemRequest:
    return RedeemRequest(campaign=SLUG, account_email=account, product_key=product_key(key), terms_accepted=True, **extra)  # type: ignore[arg-type]


async def test_a_redemption_on_postgresql_records_everything_and_replays(pg_url: str, pg: PgConnection) -> None:
    async with PostgresDatabase(pg_url, pool_size=2) as db:
        result = await redeem(db, request(1, "ann@example.com", client_ip="192.0.2.7", idempotency_key="k-1"), DURING, guess_limit=10)
        assert result.redeemed and result.code == reward_code(0)
        assert result.code_expires_at == datetime(2014, 10, 31, 22, 59, 59, 999999, tzinfo=UTC)
        again = await redeem(db, request(1, "ann@example.com", idempotency_key="k-1"), DURING, guess_limit=10)
        assert again.replayed and again.code == result.code and again.redemption_id == result.redemption_id
        second = await redeem(db, request(2, "ann@example.com"), DURING, guess_limit=10)  # R-X6: one reward per account
        assert not second.redeemed and "R-X6" in second.decision.rules
        sibling = await redeem(db, request(3, "ann+promo@example.com"), DURING, guess_limit=10)  # R-X12: same mailbox
        assert not sibling.redeemed and [f.reason for f in sibling.decision.failures] == ["held_for_review"]
    row = pg.execute("SELECT r.account_email, r.redeemed_at, c.code, c.issued_at FROM redemptions r"
                     " JOIN reward_codes c ON c.id = r.code_id WHERE r.id = ?", (result.redemption_id,)).fetchone()
    assert (row["account_email"], row["code"], row[1], row["issued_at"]) == (
        "ann@example.com", reward_code(0), "2013-09-01T12:00:00.000000Z", "2013-09-01T12:00:00.000000Z")
    outbox = pg.execute("SELECT status FROM outbox WHERE subject_ref = :s", {"s": f"redemption:{result.redemption_id}"}).fetchone()
    assert outbox[0] == "queued"
    assert pg.execute("SELECT SUM(redeemed) FROM campaign_totals").fetchone()[0] == 1
    outcomes = [r[0] for r in pg.execute("SELECT outcome FROM redemption_attempts ORDER BY id")]
    assert outcomes == ["redeemed", "refused", "refused"]  # the replay is not logged twice
    assert pg.execute("SELECT count(*) FROM review_claims WHERE status = 'pending'").fetchone()[0] == 1
    seal_pending(pg)  # events join the chain after COMMIT on PostgreSQL (issue 18)
    chain = verify_chain(pg)
    assert chain.ok and chain.events >= 4


async def test_concurrent_redemptions_on_postgresql_give_each_code_once(pg_url: str, pg: PgConnection) -> None:
    """Six accounts at once for four codes, on six connections really in parallel: four get
    distinct codes, two are told no codes are left, nothing fails; the chain still verifies."""
    async with PostgresDatabase(pg_url, pool_size=6) as db:
        results = await asyncio.gather(*(redeem(db, request(n, f"user{n}@example.com"), DURING, guess_limit=10)
                                         for n in range(1, 7)))
    codes = sorted(r.code for r in results if r.redeemed and r.code)
    assert codes == [reward_code(i) for i in range(4)]
    assert sorted(f.reason for r in results if not r.redeemed for f in r.decision.failures) == ["no_codes_left"] * 2
    assert pg.execute("SELECT count(*), count(DISTINCT code_id) FROM redemptions").fetchone()[:] == (4, 4)
    assert pg.execute("SELECT SUM(redeemed) FROM campaign_totals").fetchone()[0] == 4
    seal_pending(pg)  # sealed first, so the check covers these events
    assert verify_chain(pg).ok


async def test_one_account_asking_six_times_at_once_gets_one_code_on_postgresql(pg_url: str, pg: PgConnection) -> None:
    """R-X6 under READ COMMITTED: six transactions for one account with six keys all read "no
    reward yet"; the UNIQUE (campaign, account, slot) lets one insert through, and the others'
    violations become the R-X6 refusal (their claimed codes rolled back to the pool). The pool
    holds more codes than there are requests: with fewer, SKIP LOCKED finds every free code
    held by a claim still in flight and says "no codes left" although most will roll back."""
    stored = get_campaign(pg, SLUG)
    import_codes(pg, campaign_id=stored.id, campaign=stored.campaign, source=csv_bytes(["code"], [[reward_code(i)] for i in range(4, 10)]),
                 source_name="more.csv", now=DURING)
    async with PostgresDatabase(pg_url, pool_size=6) as db:
        results = await asyncio.gather(*(redeem(db, request(n, "ann@example.com"), DURING, guess_limit=10) for n in range(1, 7)))
    assert sum(r.redeemed for r in results) == 1
    assert all(r.decision.rules == ["R-X6"] for r in results if not r.redeemed), [r.decision.failures for r in results]
    assert pg.execute("SELECT count(*) FROM reward_codes WHERE issued_at IS NOT NULL").fetchone()[0] == 1
    assert pg.execute("SELECT SUM(redeemed) FROM campaign_totals").fetchone()[0] == 1
    seal_pending(pg)  # sealed first, so the check covers these events
    assert verify_chain(pg).ok


async def test_a_constraint_refusal_is_an_integrity_error_the_domain_already_catches(pg_url: str, pg: PgConnection) -> None:
    async with PostgresDatabase(pg_url, pool_size=1) as db:
        def duplicate_slug(conn: PgConnection) -> None:
            conn.execute("INSERT INTO campaigns (slug, kind, definition, created_at, updated_at)"
                         " VALUES (:s, 'x', '{}', :t, :t)", {"s": SLUG, "t": "2013-09-01T12:00:00.000000Z"})

        with pytest.raises(sqlite3.IntegrityError):
            await db.write(duplicate_slug)
        assert await db.lookup(lambda conn: conn.execute("SELECT count(*) FROM campaigns").fetchone()[0]) == 1


async def test_a_deadlock_reruns_the_victims_transaction_and_both_writes_land(pg_url: str, pg: PgConnection) -> None:
    """Two writes lock the same two rows in opposite orders: PostgreSQL aborts one
    (deadlock_detected); PostgresDatabase reruns it, so both callers succeed (item 4)."""
    pg.execute("CREATE TABLE pair (id integer PRIMARY KEY, n integer NOT NULL)")
    pg.execute("INSERT INTO pair VALUES (1, 0), (2, 0)")
    both_hold_one = threading.Barrier(2)
    attempts: list[int] = []

    def cross(conn: PgConnection, first: int, second: int) -> None:
        attempts.append(first)
        conn.execute("UPDATE pair SET n = n + 1 WHERE id = ?", (first,))
        with contextlib.suppress(threading.BrokenBarrierError):  # a rerun finds nobody waiting
            both_hold_one.wait(timeout=5)
        conn.execute("UPDATE pair SET n = n + 1 WHERE id = ?", (second,))

    async with PostgresDatabase(pg_url, pool_size=2) as db:
        await asyncio.gather(db.write(cross, 1, 2), db.write(cross, 2, 1))
    assert len(attempts) == 3  # one of the two ran twice
    assert [tuple(r) for r in pg.execute("SELECT id, n FROM pair ORDER BY id")] == [(1, 2), (2, 2)]


async def test_a_transaction_postgresql_keeps_refusing_gives_up_as_unavailable(pg_url: str, pg: PgConnection) -> None:
    calls: list[int] = []

    def always_conflicts(conn: PgConnection) -> None:
        calls.append(1)
        conn.execute("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$")

    async with PostgresDatabase(pg_url, pool_size=1) as db:
        with pytest.raises(RetriesExhausted) as gave_up:
            await db.write(always_conflicts)
    assert len(calls) == MAX_ATTEMPTS
    assert is_unavailable(gave_up.value)  # a 503 with Retry-After once promo.db's hook asks (never a 500)


def test_a_lost_race_is_rerun_at_once_and_a_serialization_failure_after_a_backoff(
        pg: PgConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    """A lost race's winner has committed (RerunTransaction): the rerun need not wait. A
    serialization failure or deadlock may meet its rival again: those back off first."""
    from promo.backends import RerunTransaction, postgresql
    slept: list[float] = []
    monkeypatch.setattr(postgresql.time, "sleep", slept.append)
    for failure, waits in [("lost race", 0), ("serialization failure", 1)]:
        runs: list[int] = []

        def fails_once(conn: PgConnection, failure: str = failure, runs: list[int] = runs) -> str:
            runs.append(1)
            if len(runs) == 1 and failure == "lost race":
                raise RerunTransaction("lost")
            if len(runs) == 1:
                conn.execute("DO $$ BEGIN RAISE EXCEPTION 'conflict' USING ERRCODE = 'serialization_failure'; END $$")
            return "done"

        slept.clear()
        assert in_transaction(pg, fails_once, (), {}) == "done" and len(runs) == 2
        assert len(slept) == waits, failure


@pytest.mark.parametrize("holder_ends", ["rolls back", "commits"])
def test_a_claim_that_finds_every_free_code_held_waits_for_one_instead_of_saying_none_are_left(
        pg: PgConnection, pg_url: str, holder_ends: str) -> None:
    """SKIP LOCKED passes over codes other transactions hold; when they hold all that are
    free, the claim waits for one: a holder that rolls back (a key race's loser) leaves it to
    the waiter; one that commits took it, and the waiter gets none (no code is free then)."""
    stored = get_campaign(pg, SLUG)
    with transaction(pg):  # leave exactly one free code
        pg.execute("UPDATE reward_codes SET issued_at = :now WHERE id <> (SELECT min(id) FROM reward_codes)",
                   {"now": "2013-08-05T00:00:00.000000Z"})
    holder = pg_connection.connect(pg_url)
    waiter = pg_connection.connect(pg_url)
    try:
        holder.execute("BEGIN")
        held = claim_code(holder, campaign_id=stored.id, not_expiring_before=stored.campaign.code_expires_at, now=DURING)
        assert held is not None
        claimed: list[object] = []

        def claim() -> None:
            with transaction(waiter):
                claimed.append(claim_code(waiter, campaign_id=stored.id, not_expiring_before=stored.campaign.code_expires_at,
                                          now=DURING))

        thread = threading.Thread(target=claim)
        thread.start()
        thread.join(timeout=1.0)
        assert thread.is_alive(), f"the claim answered {claimed} while the only free code was held: it must wait"
        holder.execute("ROLLBACK" if holder_ends == "rolls back" else "COMMIT")
        thread.join(timeout=10)
        assert not thread.is_alive()
        if holder_ends == "rolls back":
            assert claimed == [held]  # the same code, now the waiter's
        else:
            assert claimed == [None]
    finally:
        holder.close()
        waiter.close()


def test_redemptions_by_different_accounts_never_wait_for_each_others_rows(pg: PgConnection, pg_url: str) -> None:
    """Issue 18 item 2, the whole redemption path at once: three redemptions by different
    accounts from one address (its guess counters), each with an idempotency key, on a campaign
    with a low-stock threshold (its alert check), stay open together: none may wait for a row
    or lock another holds (the code claim, the counters, the alert, the decision log, the audit
    append, the outbox). A wait would hit lock_timeout and fail the test. One redemption is
    committed first: a campaign's first redemption makes its counter rows, and redemptions
    beside that one wait for it once (promo/totals.py)."""
    stored = get_campaign(pg, SLUG)
    with transaction(pg):
        save_campaign(pg, replace(stored.campaign, low_stock_threshold=1), actor="test", now=DURING)
    with transaction(pg):
        assert redeem_unit(pg, request(6, "first@example.com").normalized(), DURING, guess_limit=10).redeemed
    results = open_at_once(pg_url, [request(n, f"user{n}@example.com", client_ip="192.0.2.9", idempotency_key=f"key-{n}")
                                    for n in range(1, 4)])
    assert [r.redeemed for r in results] == [True] * 3, [r.decision.failures for r in results]
    assert len({r.code for r in results}) == 3
    assert pg.execute("SELECT SUM(redeemed) FROM campaign_totals").fetchone()[0] == 4
    # Each open transaction saw only its own count, so none of them saw the threshold crossed;
    # the next request, finding the pool empty, raises the alert (once).
    assert pg.execute("SELECT COUNT(*) FROM stock_alerts").fetchone()[0] == 0
    with transaction(pg):
        late = redeem_unit(pg, request(5, "late@example.com").normalized(), DURING, guess_limit=10)
    assert [f.reason for f in late.decision.failures] == ["no_codes_left"]
    assert pg.execute("SELECT COUNT(*) FROM stock_alerts").fetchone()[0] == 1


def test_a_new_campaign_s_first_redemptions_open_at_once_do_not_wait(pg: PgConnection, pg_url: str) -> None:
    """The campaign's counter rows are made when it is saved (promo/totals.py make_rows), not by
    its first redemption, which the others beside it had to wait for (lock waits on
    campaign_totals in every `scripts/bench compare` run)."""
    assert pg.execute("SELECT COUNT(*) FROM campaign_totals").fetchone()[0] == totals.SHARDS
    results = open_at_once(pg_url, [request(n, f"user{n}@example.com") for n in (1, 2)])
    assert [r.redeemed for r in results] == [True, True], [r.decision.failures for r in results]
    assert pg.execute("SELECT SUM(redeemed), COUNT(*) FROM campaign_totals").fetchone()[:] == (2, totals.SHARDS)


def open_at_once(pg_url: str, requests: list[RedeemRequest]) -> list[Any]:
    """Each request redeemed on its own connection, all of them open before any commits; a
    wait for another's row or lock hits lock_timeout (2 s) and fails the caller's test."""
    open_ones = [pg_connection.connect(pg_url) for _ in requests]
    try:
        results = []
        for conn, each in zip(open_ones, requests, strict=True):
            conn.execute("SET lock_timeout = '2s'")
            conn.execute("BEGIN")
            results.append(redeem_unit(conn, each.normalized(), DURING, guess_limit=10))
        for conn in open_ones:
            conn.execute("COMMIT")
        return results
    finally:
        for conn in open_ones:
            conn.close()


def test_the_pipelined_redemption_waits_for_the_server_6_times_instead_of_15_and_records_the_same(pg: PgConnection) -> None:
    """redeem_unit is @pipelined (issue 18). In PostgreSQL's write it waits for the server 6
    times (libpq's trace): BEGIN; the campaign, the idempotency key's replay, the guess cap,
    the activation record, its SKU and the account's history, asked together; the count and
    the code's claim together (an uncapped campaign); the redemption; the email, audit event,
    decision log and activity count together; and COMMIT. The same statements one by one: 15."""
    def one_by_one(conn: PgConnection, *args: Any, **kwargs: Any) -> Any:  # the same, not marked
        return redeem_unit(conn, *args, **kwargs)

    trips, results = [], []
    for key, account, fn in [(1, "warm@example.com", one_by_one), (2, "ann@example.com", one_by_one),
                             (3, "bob@example.com", redeem_unit), (4, "cy@example.com", redeem_unit)]:
        with counting_round_trips(pg.raw) as counted:
            results.append(in_transaction(pg, fn, (request(key, account, idempotency_key=f"k{key}").normalized(), DURING),
                                          {"guess_limit": 10, "alone": True}))
        trips.append(counted.count)
    assert all(result.redeemed for result in results)
    assert trips[1:] == [15, 6, 6], trips  # [0] warms the connection's caches
    for result in results[2:]:  # everything a redemption records is there
        subject = f"redemption:{result.redemption_id}"
        assert pg.execute("SELECT COUNT(*) FROM outbox WHERE subject_ref = ?", (subject,)).fetchone()[0] == 1
        assert pg.execute("SELECT COUNT(*) FROM audit_events WHERE subject = ?", (subject,)).fetchone()[0] == 1
        assert pg.execute("SELECT outcome FROM redemption_attempts WHERE redemption_id = ?",
                          (result.redemption_id,)).fetchone()[0] == "redeemed"
    assert pg.execute("SELECT SUM(n) FROM campaign_activity WHERE outcome = 'redeemed'").fetchone()[0] == 4


@pytest.mark.parametrize("alone", [True, False], ids=["rerun", "savepoint"])
def test_a_pipelined_redemption_that_loses_a_race_in_a_queued_statement_replays_the_winner(
        pg: PgConnection, pg_url: str, alone: bool) -> None:
    """The decision log's INSERT is queued, not answered, when it meets another transaction's
    idempotency key (the same request twice at once). Its unique violation surfaces at a later
    statement, with answers still queued behind it; it must still reach redeem_unit's `try`:
    alone, the transaction reruns; in a savepoint (tests/support/race_worker.py's way), the
    pipeline recovers and the redemption is decided again. Both replay the winner's answer:
    not a 500, nor a 503 from a pipeline left aborted. The winner holds its decision log row
    uncommitted until the loser waits on it; then commits."""
    winner = pg_connection.connect(pg_url)
    first = {"outcome": "refused", "failures": [{"rule": "R-X4", "reason": "product_excluded", "message": "m"}]}
    try:
        winner.execute("BEGIN")
        winner.execute("INSERT INTO redemption_attempts (campaign_id, account_email, idempotency_key, product_key, outcome,"
                       " failed_rules, result, attempted_at, guess_failure) VALUES ((SELECT id FROM campaigns WHERE slug = ?),"
                       " 'ann@example.com', 'same', ?, 'refused', ' R-X4 ', ?, '2013-09-01T12:00:00.000000Z', 0)",
                       (SLUG, product_key(1), json.dumps(first)))
        loser: list[Any] = []
        thread = threading.Thread(target=lambda: loser.append(in_transaction(
            pg, redeem_unit, (request(1, "ann@example.com", idempotency_key="same").normalized(), DURING),
            {"guess_limit": 10, "alone": alone})))
        thread.start()
        waiting = "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = ? AND wait_event_type = 'Lock'"
        for _ in range(500):  # the loser's queued INSERT waits for the winner's uncommitted key
            if winner.raw.execute(waiting.replace("?", "%s"), (pg.backend_pid,)).fetchone()[0]:
                break
            time.sleep(0.01)
        else:
            pytest.fail("the loser never waited for the winner's row")
        winner.execute("COMMIT")
        thread.join(10)
    finally:
        winner.close()
    assert len(loser) == 1 and loser[0].replayed and loser[0].outcome == "refused"
    assert [f.reason for f in loser[0].decision.failures] == ["product_excluded"]
    assert pg.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0] == 0  # the loser's redemption was undone
