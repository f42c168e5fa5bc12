"""PostgreSQL restarted during a load through `promo serve` (issue 18, item 5), on a private
cluster (tests/support/pg_cluster.py; the shared server is never restarted).

Redemptions keep arriving while the server stops and starts again. Every answer is a 303
(redeemed) or a 503 with Retry-After (the outage), never another 5xx; the instances reconnect by
themselves; and every redemption a client was told about (303) is in the database afterwards.
The figures (how many of each, how long a 503 took, how soon after the restart requests were
served again) are printed: `scripts/test tests/system/test_pg_restart.py -s`.
"""

from __future__ import annotations

import asyncio
import secrets
import statistics
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import pytest

from promo.backends import pg_connection
from tests.support.database import prepare, product_key
from tests.support.instances import Instance, instance_config, start_instance
from tests.support.pg_cluster import Cluster, private_cluster
from tests.support.served import mint_sessions
from tests.support.web import add_open_campaign

OFFER = "/offers/open-today/redeem"
ACCOUNTS = 600
CONNECTIONS = 8
RESTART_AFTER_OK = 100  # redemptions served before the server is stopped
OUTAGE_S = 1.0  # how long the server stays down: the outage being simulated, not a wait for anything


# Each equals the number of redemptions when every one committed whole.
BOOKS = ("SELECT COUNT(*) FROM redemptions",
         "SELECT COUNT(DISTINCT code_id) FROM redemptions",
         "SELECT COUNT(*) FROM reward_codes WHERE issued_at IS NOT NULL",
         "SELECT COUNT(DISTINCT r.id) FROM redemptions r JOIN outbox o ON o.subject_ref = 'redemption:' || r.id",
         "SELECT COUNT(*) FROM audit_events WHERE tag = 'redemption:code:issued'")


@dataclass
class Load:
    statuses: Counter[int] = field(default_factory=Counter)
    told: set[str] = field(default_factory=set)  # accounts that were answered 303
    unavailable_s: list[float] = field(default_factory=list)  # how long each 503 took
    bad: list[str] = field(default_factory=list)
    ok_after_restart_s: float | None = None
    restarted_at: float | None = None
    ok_event: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    with private_cluster(tmp_path) as started:
        yield started


async def redeem_all(instance: Instance, sessions: dict[str, tuple[str, str]], load: Load) -> None:
    queue: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
    for n, account in enumerate(sessions):
        queue.put_nowait((n, account))
    limits = httpx.Limits(max_connections=CONNECTIONS, max_keepalive_connections=CONNECTIONS)
    async with httpx.AsyncClient(base_url=instance.url, limits=limits, timeout=60) as client:
        async def worker() -> None:
            while not queue.empty():
                n, account = queue.get_nowait()
                cookie, csrf = sessions[account]
                started = time.monotonic()
                response = await client.post(OFFER, headers={"Cookie": f"promo_session={cookie}"}, data={
                    "csrf": csrf, "idempotency_key": secrets.token_hex(8), "product_key": product_key(n),
                    "country": "DK", "accept_terms": "yes"})
                load.statuses[response.status_code] += 1
                if response.status_code == 303:
                    load.told.add(account)
                    if load.statuses[303] >= RESTART_AFTER_OK:
                        load.ok_event.set()
                    if load.restarted_at is not None and load.ok_after_restart_s is None:
                        load.ok_after_restart_s = time.monotonic() - load.restarted_at
                elif response.status_code == 503:
                    load.unavailable_s.append(time.monotonic() - started)
                    if response.headers.get("retry-after") != "5" or "Traceback" in response.text:
                        load.bad.append(f"503 without Retry-After or with a traceback: {response.text[:200]}")
                else:
                    load.bad.append(f"{response.status_code}: {response.text[:200]}")

        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))


async def restart_during(cluster: Cluster, load: Load) -> None:
    await load.ok_event.wait()
    await asyncio.to_thread(cluster.stop, "fast")
    await asyncio.sleep(OUTAGE_S)
    await asyncio.to_thread(cluster.start)
    load.restarted_at = time.monotonic()


def test_a_postgresql_restart_during_a_load_costs_503s_only_and_loses_nothing(cluster: Cluster, tmp_path: Path) -> None:
    url = cluster.create_database("promo")
    conn = pg_connection.connect(url)
    prepare(conn)
    add_open_campaign(conn, keys=ACCOUNTS, codes=ACCOUNTS)
    sessions = mint_sessions(conn, [f"user{n}@example.com" for n in range(ACCOUNTS)])
    conn.close()
    instance = start_instance(instance_config(tmp_path, url, pool_size=3), tmp_path / "serve.log", "--workers", "2",
                              PROMO_SECURITY_KEY_ATTEMPTS_PER_HOUR="1000000")
    load = Load()

    async def run() -> None:
        await asyncio.gather(redeem_all(instance, sessions, load), restart_during(cluster, load))

    try:
        asyncio.run(run())
        # The instance is still the same process, serving again by itself.
        assert instance.process.poll() is None
        assert httpx.get(instance.url + "/readyz", timeout=10).status_code == 200
    finally:
        instance.stop()

    conn = pg_connection.connect(url)
    try:
        stored = {row[0] for row in conn.execute("SELECT account_email FROM redemptions")}
        books = [conn.execute(sql).fetchone()[0] for sql in BOOKS]
    finally:
        conn.close()
    median = statistics.median(load.unavailable_s) if load.unavailable_s else 0.0
    print(f"\nPostgreSQL restart under load: {load.statuses[303]} redeemed (303), {load.statuses[503]} x 503 "
          f"(median {median:.2f} s, longest {max(load.unavailable_s, default=0):.2f} s), first 303 "
          f"{load.ok_after_restart_s or float('nan'):.2f} s after the server was back; stored {len(stored)}, told {len(load.told)}, "
          f"stored but answered 503: {len(stored - load.told)}")
    assert not load.bad, load.bad[:5]
    assert set(load.statuses) <= {303, 503} and load.statuses[503] >= 1, load.statuses
    assert load.ok_after_restart_s is not None  # redemptions were served again after the restart
    assert load.told <= stored  # nothing a client was told is lost
    assert sum(load.statuses.values()) == ACCOUNTS
    assert books == [len(stored)] * len(BOOKS)  # each redemption whole: one code, its email, its audit event
