"""Races: simultaneous redemptions never give one account two codes or one code to two
accounts. In-process through the async Database (as the web service runs), and across
processes with their own connections (CLI beside the server, or several servers). On both
stores (issue 17): on PostgreSQL each process has its own connection and they really write
at once."""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from promo.campaign_store import get_campaign, save_campaign
from promo.config import Settings
from promo.db import transaction
from promo.redemption import RedeemRequest, redeem
from tests.support import race_worker
from tests.support.database import DURING, SLUG, product_key
from tests.support.invariants import assert_invariants, opened, prepared
from tests.support.prepared import store_of


async def test_200_simultaneous_redemptions_for_one_account_give_one_code(settings: Settings) -> None:
    path = prepared(settings, keys=200, codes=300, owner="ann@example.com")
    async with store_of(settings) as db:
        results = await asyncio.gather(*(
            redeem(db, RedeemRequest(SLUG, "ann@example.com", product_key(n), terms_accepted=True), DURING)
            for n in range(200)))
    outcomes = Counter("redeemed" if r.redeemed else ",".join(r.decision.rules) for r in results)
    assert outcomes == {"redeemed": 1, "R-X6": 199}
    assert_invariants(path)


def capped(store: Path | str, cap: int | None) -> None:
    """The campaign with a total cap (issue 18: shared out among its counter rows), or none."""
    with opened(store) as conn:
        stored = get_campaign(conn, SLUG)
        with transaction(conn):
            save_campaign(conn, replace(stored.campaign, total_cap=cap), actor="test", now=DURING)


# 100 rewards for 500 accounts: as many codes, or a total cap of 100 over twice as many codes.
HUNDRED = pytest.mark.parametrize(("codes", "cap", "refusal"), [(100, None, "no_codes_left"), (200, 100, "total_cap_reached")],
                                  ids=["100 codes", "a cap of 100"])


@HUNDRED
async def test_500_accounts_racing_for_100_rewards(settings: Settings, codes: int, cap: int | None, refusal: str) -> None:
    path = prepared(settings, keys=500, codes=codes)
    capped(path, cap)
    async with store_of(settings) as db:
        results = await asyncio.gather(*(
            redeem(db, RedeemRequest(SLUG, f"user{n}@example.com", product_key(n), terms_accepted=True), DURING)
            for n in range(500)))
    issued = [r.code for r in results if r.redeemed]
    assert len(issued) == len(set(issued)) == 100
    assert Counter(",".join(r.decision.rules) for r in results if not r.redeemed) == {"STOCK": 400}
    assert Counter(",".join(f.reason for f in r.decision.failures) for r in results if not r.redeemed) == {refusal: 400}
    assert_invariants(path)


def race_in_processes(store: Path | str, jobs_per_process: list[list[tuple[str, str]]]) -> Counter[str]:
    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 2.0  # after every process has started and imported
    with ctx.Pool(len(jobs_per_process)) as pool:
        results = pool.starmap(race_worker.run, [(str(store), start_at, jobs) for jobs in jobs_per_process])
    return Counter(outcome for outcomes in results for outcome in outcomes)


@pytest.mark.slow
def test_one_account_racing_from_four_processes(settings: Settings) -> None:
    path = prepared(settings, keys=200, codes=300, owner="ann@example.com")
    jobs = [[("ann@example.com", product_key(n)) for n in range(p, 200, 4)] for p in range(4)]
    assert race_in_processes(path, jobs) == {"redeemed": 1, "R-X6": 199}
    assert_invariants(path)


@pytest.mark.slow
@HUNDRED
def test_500_accounts_racing_for_100_rewards_from_four_processes(settings: Settings, codes: int, cap: int | None,
                                                                 refusal: str) -> None:
    path = prepared(settings, keys=500, codes=codes)
    capped(path, cap)
    jobs = [[(f"user{n}@example.com", product_key(n)) for n in range(p, 500, 4)] for p in range(4)]
    outcomes = race_in_processes(path, jobs)
    assert outcomes == {"redeemed": 100, "STOCK": 400}
    with opened(path) as conn:
        assert conn.execute("SELECT COUNT(DISTINCT code_id) FROM redemptions").fetchone()[0] == 100
        logged = conn.execute("SELECT result FROM redemption_attempts WHERE outcome = 'refused'").fetchall()
        assert sum(f'"{refusal}"' in row[0] for row in logged) == 400  # the decision log names why
    assert_invariants(path)


@pytest.mark.slow
def test_one_product_key_tried_by_many_accounts_in_many_processes(settings: Settings) -> None:
    path = prepared(settings, keys=1, codes=10, owner="")
    jobs = [[(f"user{p}-{i}@example.com", product_key(0)) for i in range(10)] for p in range(4)]
    outcomes = race_in_processes(path, jobs)
    assert outcomes["redeemed"] == 1 and outcomes.total() == 40  # one redemption, whatever the losers were told
    assert_invariants(path)
    assert outcomes == {"redeemed": 1, "R-X5": 39}
