"""Two redemptions at once on two connections (issue 17, item 4), on each store.

On SQLite the one writer serialises them; on PostgreSQL they really overlap (READ COMMITTED),
so both pass the checks and the loser meets a UNIQUE key. Either way the loser must get what
it would have got a moment later: the replay of the first result for a shared idempotency
key, or the rule's own refusal (R-X6 one reward per account, R-X5 one redemption per product
key), logged like any refusal; never an IntegrityError (a 500).
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from promo.campaign_store import StoredCampaign
from promo.config import Settings
from promo.redemption import RedeemRequest, RedemptionResult, redeem, redeem_sync
from tests.support.database import DURING, SLUG, product_key
from tests.support.invariants import assert_chain_verifies
from tests.support.prepared import connect_to, store_of
from tests.support.redemption import add_activations, add_codes, allow_unbound_keys

ROUNDS = 40
KNOWN_KEYS = 2 * ROUNDS  # keys 1..80 have activation records; higher numbers have none (R-X11)

Race = Callable[[RedeemRequest, RedeemRequest], list[RedemptionResult]]


@pytest.fixture
def shop(conn: sqlite3.Connection, stored: StoredCampaign) -> sqlite3.Connection:
    allow_unbound_keys(conn)
    add_activations(conn, [(n, "O365-HOME-ESD", "DK", None) for n in range(1, KNOWN_KEYS + 1)])
    add_codes(conn, stored, 2 * ROUNDS)  # enough that a claim held by a loser never empties the pool
    return conn


@pytest.fixture
def race(settings: Settings, shop: sqlite3.Connection) -> Iterator[Race]:
    """race(a, b): a on one connection and b on another, released together; both results."""
    connections = [connect_to(settings), connect_to(settings)]
    with ThreadPoolExecutor(2) as threads:
        def run(a: RedeemRequest, b: RedeemRequest) -> list[RedemptionResult]:
            start = threading.Barrier(2)

            def one(conn: Any, request: RedeemRequest) -> RedemptionResult:
                start.wait(timeout=10)
                return redeem_sync(conn, request.normalized(), DURING)

            futures = [threads.submit(one, c, r) for c, r in zip(connections, (a, b), strict=True)]
            return [f.result(timeout=60) for f in futures]  # an IntegrityError here fails the test

        yield run
    for conn in connections:
        conn.close()


def ask(key: int, account: str, idempotency_key: str | None = None) -> RedeemRequest:
    return RedeemRequest(campaign=SLUG, account_email=account, product_key=product_key(key), terms_accepted=True,
                         idempotency_key=idempotency_key)


def reasons(result: RedemptionResult) -> list[tuple[str, str]]:
    return [(f.rule, f.reason) for f in result.decision.failures]


def test_one_idempotency_key_sent_twice_at_once_gives_the_first_result_twice(race: Race, shop: sqlite3.Connection) -> None:
    """Each round: the same request twice with one idempotency key. Even rounds redeem; odd
    rounds are refused (a key with no activation record, R-X11), so the race is met both at
    the redemption's UNIQUE keys and at the decision log's."""
    for n in range(ROUNDS):
        key = n + 1 if n % 2 == 0 else 1000 + n
        request = ask(key, f"user{n}@example.com", idempotency_key=f"idem-{n}")
        first, second = sorted(race(request, request), key=lambda r: r.replayed)
        assert (first.replayed, second.replayed) == (False, True), n
        assert first.outcome == second.outcome == ("redeemed" if n % 2 == 0 else "refused"), (n, reasons(first))
        assert (second.redemption_id, second.code, reasons(second)) == (first.redemption_id, first.code, reasons(first))
    assert shop.execute("SELECT count(*) FROM redemptions").fetchone()[0] == ROUNDS // 2
    # One decision-log entry per key: a replay is not logged again, and no loser's work remains.
    assert shop.execute("SELECT count(*), count(DISTINCT idempotency_key) FROM redemption_attempts").fetchone()[:] == (ROUNDS, ROUNDS)
    assert shop.execute("SELECT count(*) FROM reward_codes WHERE issued_at IS NOT NULL").fetchone()[0] == ROUNDS // 2
    assert_chain_verifies(shop)


async def test_through_the_service_store_a_key_sent_twice_at_once_is_replayed(settings: Settings, shop: sqlite3.Connection) -> None:
    """The path the web service takes (redeem -> write_grouped): on SQLite both land in one
    group commit, each in its savepoint; on PostgreSQL on two pooled connections at once."""
    async with store_of(settings) as db:
        for n in range(10):
            request = ask(n + 1, f"served{n}@example.com", idempotency_key=f"served-{n}")
            results = await asyncio.gather(redeem(db, request, DURING), redeem(db, request, DURING))
            assert sorted(r.replayed for r in results) == [False, True] and all(r.redeemed for r in results), n
            assert results[0].code == results[1].code and results[0].redemption_id == results[1].redemption_id
    assert shop.execute("SELECT count(*) FROM redemptions").fetchone()[0] == 10


async def test_through_the_service_store_race_losers_get_the_rules_refusal(settings: Settings, shop: sqlite3.Connection) -> None:
    """The service's path for the R-X5 and R-X6 races: on PostgreSQL each redemption is alone in
    its transaction, so a loser reruns the whole of it (RerunTransaction, in_transaction) and is
    refused by the rule; on SQLite the group commit's savepoints decide them in turn."""
    async with store_of(settings) as db:
        for n in range(10):
            key_race = await asyncio.gather(redeem(db, ask(n + 1, f"k{n}a@example.com"), DURING),
                                            redeem(db, ask(n + 1, f"k{n}b@example.com"), DURING))
            account_race = await asyncio.gather(redeem(db, ask(2 * n + 21, f"acct{n}@example.com"), DURING),
                                                redeem(db, ask(2 * n + 22, f"acct{n}@example.com"), DURING))
            for results, refusal in ((key_race, ("R-X5", "key_already_redeemed")),
                                     (account_race, ("R-X6", "account_limit_reached"))):
                assert sorted(r.outcome for r in results) == ["redeemed", "refused"], n
                assert [reasons(r) for r in results if not r.redeemed] == [[refusal]], n
    assert shop.execute("SELECT count(*), count(DISTINCT code_id) FROM redemptions").fetchone()[:] == (20, 20)
    assert_chain_verifies(shop)


def test_one_account_with_two_keys_at_once_is_refused_by_r_x6_as_on_sqlite(race: Race, shop: sqlite3.Connection) -> None:
    for n in range(ROUNDS // 2):
        account = f"both{n}@example.com"
        results = race(ask(2 * n + 1, account), ask(2 * n + 2, account))
        assert sorted(r.outcome for r in results) == ["redeemed", "refused"], n
        (loser,) = (r for r in results if not r.redeemed)
        assert reasons(loser) == [("R-X6", "account_limit_reached")], (n, reasons(loser))
    assert_logged_like_any_refusal(shop, " R-X6 ")


def test_one_key_for_two_accounts_at_once_is_refused_by_r_x5_as_on_sqlite(race: Race, shop: sqlite3.Connection) -> None:
    for n in range(ROUNDS // 2):
        results = race(ask(n + 1, f"first{n}@example.com"), ask(n + 1, f"second{n}@example.com"))
        assert sorted(r.outcome for r in results) == ["redeemed", "refused"], n
        (loser,) = (r for r in results if not r.redeemed)
        assert reasons(loser) == [("R-X5", "key_already_redeemed")], (n, reasons(loser))
    assert_logged_like_any_refusal(shop, " R-X5 ")


def assert_logged_like_any_refusal(shop: sqlite3.Connection, rules: str) -> None:
    """Each round: one redemption, one code out, and the refusal in the decision log and the
    audit chain with its rule (not the database's catch-all "already_redeemed")."""
    rounds = ROUNDS // 2
    assert shop.execute("SELECT count(*) FROM redemptions").fetchone()[0] == rounds
    assert shop.execute("SELECT count(*) FROM reward_codes WHERE issued_at IS NOT NULL").fetchone()[0] == rounds
    logged = [tuple(r) for r in shop.execute("SELECT outcome, failed_rules FROM redemption_attempts ORDER BY id")]
    assert sorted(logged) == sorted([("redeemed", "")] * rounds + [("refused", rules)] * rounds)
    refusals = shop.execute("SELECT data FROM audit_events WHERE tag = 'redemption:claim:refused'").fetchall()
    assert len(refusals) == rounds and not any('"reason":"already_redeemed"' in r[0] for r in refusals)
    assert_chain_verifies(shop)
