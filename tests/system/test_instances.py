"""Two `promo serve` instances on one PostgreSQL database (issue 18, item 3): a campaign paused,
resumed, restocked or edited through instance A is seen by instance B at once.

Why at once: no process keeps campaign state between requests. The redemption transaction
reads the campaign's row (state, definition hash) every time; the only in-process cache
(promo/campaign_store.py) holds parsed definitions keyed by that hash, so an edit is a new
key; stock is counted in the database. So B's very next request after A's answer must see
the change, which is stronger than "within one second", and is what is asserted.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from promo.api_tokens import create_token
from promo.backends import pg_connection
from promo.db import transaction
from promo.staff import StaffMember
from tests.support.database import prepare, product_key, reward_code
from tests.support.instances import Instance, instance_config, instances
from tests.support.served import mint_sessions
from tests.support.staff import staff
from tests.support.web import add_open_campaign

SLUG = "open-today"


@pytest.fixture
def shop(pg_url: str) -> Iterator[Any]:
    conn = pg_connection.connect(pg_url)
    prepare(conn)
    add_open_campaign(conn, keys=10, codes=2)
    yield conn
    conn.close()


@pytest.fixture
def pair(shop: Any, pg_url: str, tmp_path: Path) -> Iterator[list[Instance]]:
    with instances(instance_config(tmp_path, pg_url, pool_size=2), tmp_path, 2) as started:
        yield started


def api_token(conn: Any) -> dict[str, str]:
    staff(conn, "marketer@example.com", "marketer")
    member = conn.execute("SELECT id, email, role FROM staff WHERE email = 'marketer@example.com'").fetchone()
    with transaction(conn):
        raw, _ = create_token(conn, StaffMember(*member), "instances test", now=datetime.now(UTC), ip=None)
    return {"Authorization": f"Bearer {raw}"}


def test_a_change_through_one_instance_is_seen_by_the_other_at_once(pair: list[Instance], shop: Any) -> None:
    a, b = pair
    headers = api_token(shop)
    sessions = mint_sessions(shop, ["ann@example.com", "bob@example.com", "cy@example.com"])

    def redeem_on_b(account: str, key: int) -> tuple[int, str]:
        """B's answer, and the rules its decision failed (from the decision log), '' when redeemed."""
        cookie, csrf = sessions[account]
        idempotency = secrets.token_hex(8)
        response = httpx.post(f"{b.url}/offers/{SLUG}/redeem", headers={"Cookie": f"promo_session={cookie}"}, timeout=10,
                              data={"csrf": csrf, "idempotency_key": idempotency, "product_key": product_key(key),
                                    "country": "DK", "accept_terms": "yes"})
        row = shop.execute("SELECT outcome, failed_rules FROM redemption_attempts WHERE idempotency_key = :k",
                           {"k": idempotency}).fetchone()
        return response.status_code, "" if row["outcome"] == "redeemed" else row["failed_rules"].strip()

    def on_a(method: str, path: str, **kwargs: Any) -> httpx.Response:
        response = httpx.request(method, f"{a.url}/api/v1/campaigns/{SLUG}{path}", headers={**headers,
                                 **kwargs.pop("headers", {})}, timeout=30, **kwargs)
        assert response.status_code in (200, 201), response.text
        return response

    assert redeem_on_b("ann@example.com", 0) == (303, "")  # one of the two codes

    on_a("POST", "/state", json={"action": "pause"})
    assert redeem_on_b("bob@example.com", 1) == (422, "CAMPAIGN")
    on_a("POST", "/state", json={"action": "resume"})
    assert redeem_on_b("bob@example.com", 1) == (303, "")  # the last code

    assert redeem_on_b("cy@example.com", 2) == (422, "STOCK")
    codes = "code\n" + "".join(f"{reward_code(n)}\n" for n in range(100, 103))
    on_a("POST", "/codes", content=codes, headers={"Content-Type": "text/csv"})
    assert redeem_on_b("cy@example.com", 2) == (303, "")

    assert redeem_on_b("ann@example.com", 3) == (422, "R-X6")  # one per account
    definition = on_a("GET", "").json()["definition"]
    assert on_a("PUT", "", json={**definition, "limit_per_account": 2}).json()["changes"] == {"limit_per_account": [1, 2]}
    assert redeem_on_b("ann@example.com", 4) == (303, "")
    assert b.process.poll() is None and a.process.poll() is None
