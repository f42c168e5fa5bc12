"""The campaign's redemption counter (promo/totals.py, issue 18 item 2): the total cap holds
exactly under PostgreSQL's concurrency, uncapped campaigns count on shards nobody shares."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace

import pytest

from promo.activations import import_activations
from promo.backends import pg_connection, pg_schema
from promo.backends.pg_connection import PgConnection
from promo.backends.postgresql import PostgresDatabase
from promo.campaign_store import get_campaign, save_campaign
from promo.campaigns import parse_campaign_file, shipped_campaign_text
from promo.catalog import load_catalog, shipped_catalog, upsert_skus
from promo.codes import import_codes
from promo.db import transaction
from promo.redemption import RedeemRequest, redeem
from tests.support.database import DURING, SLUG, csv_bytes, product_key, reward_code

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


def with_cap(conn: PgConnection, cap: int | None) -> None:
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
    and both redeem: the cap is checked and counted in one statement on one row."""
    with_cap(pg, 3)
    outcomes = await redeem_all(pg_url, range(1, REQUESTS + 1))
    assert sorted(outcomes) == ["redeemed"] * 3 + ["total_cap_reached"] * (REQUESTS - 3)
    assert pg.execute("SELECT count(*) FROM redemptions").fetchone()[0] == 3
    assert pg.execute("SELECT count(*) FROM reward_codes WHERE issued_at IS NOT NULL").fetchone()[0] == 3
