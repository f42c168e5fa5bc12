"""promo/stock.py on a real SQLite file: counts by status from counters agree with the pool,
the run-out projection in each of its cases, and the low-stock alert: once per crossing (fired by the redemption that crosses it), to
the marketers (admins when there is none), re-armed by a restock."""

from __future__ import annotations

import dataclasses
import sqlite3
from datetime import UTC, date, datetime

import pytest

from promo.campaign_store import StoredCampaign, get_campaign, save_campaign
from promo.codes import stock
from promo.db import transaction
from promo.stock import alert_if_low, available_up_to, import_and_rearm, pool_counts, project_run_out, rearm_if_restocked
from tests.support.console import audit_changes
from tests.support.database import DURING, SLUG, csv_bytes, reward_code
from tests.support.redemption import add_activations, add_codes, redeem
from tests.support.staff import staff

END = datetime(2013, 10, 31, 23, 0, tzinfo=UTC)  # the shipped offer's redemption window ends then (Copenhagen)


def with_threshold(conn: sqlite3.Connection, stored: StoredCampaign, threshold: int | None) -> StoredCampaign:
    with transaction(conn):
        save_campaign(conn, dataclasses.replace(stored.campaign, low_stock_threshold=threshold), actor="test", now=DURING)
    return get_campaign(conn, SLUG)


def alert(conn: sqlite3.Connection, stored: StoredCampaign) -> bool:
    with transaction(conn):
        return alert_if_low(conn, stored, now=DURING)


def low_stock_mail(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT recipient FROM outbox WHERE template = 'low_stock' ORDER BY recipient")]


def test_counts_from_counters_agree_with_the_pool(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    add_codes(conn, stored, 5)
    add_activations(conn, [(n, "O365-HOME-ESD", "DK", f"user{n}@example.com") for n in range(1, 3)])
    assert all(redeem(conn, n, f"user{n}@example.com").redeemed for n in range(1, 3))
    from_pool = stock(conn, campaign_id=stored.id, not_expiring_before=stored.campaign.code_expires_at, now=DURING)
    assert pool_counts(conn, stored, DURING) == from_pool == {"available": 3, "issued": 2, "expired": 0, "voided": 0}
    assert available_up_to(conn, stored, 2, DURING) == 2 and available_up_to(conn, stored, 10, DURING) == 3


@pytest.mark.parametrize(("now", "available", "rate", "kind", "on"), [
    (DURING, 30, 2.0, "runs_out", date(2013, 9, 16)),
    (DURING, 30, 0.0, "not_at_this_rate", None),
    (DURING, 10_000, 2.0, "not_at_this_rate", None),  # the codes outlast the window
    (DURING, 0, 2.0, "out_of_codes", None),
    (END, 30, 2.0, "window_closed", None),
])
def test_the_run_out_projection(stored: StoredCampaign, now: datetime, available: int, rate: float, kind: str,
                                on: date | None) -> None:
    projected = project_run_out(stored, available, rate, now)
    assert (projected.kind, projected.on, projected.rate_per_day) == (kind, on, rate)


def test_the_alert_fires_once_per_crossing_to_the_marketers_and_is_rearmed_by_a_restock(
        conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    staff(conn, "m2@example.com", "marketer")
    staff(conn, "m1@example.com", "marketer")
    staff(conn, "admin@example.com", "admin")
    stored = with_threshold(conn, stored, 3)
    add_codes(conn, stored, 3)
    assert not alert(conn, stored)  # at the threshold: not below it
    add_activations(conn, [(1, "O365-HOME-ESD", "DK", "user1@example.com")])
    assert redeem(conn, 1, "user1@example.com").redeemed
    assert not alert(conn, stored)  # the redemption that crossed it fired it, in its transaction: once per crossing
    assert low_stock_mail(conn) == ["m1@example.com", "m2@example.com"]
    assert audit_changes(conn, "codes:stock:low")[-1] == {"available": 2, "threshold": 3,
                                                        "notified": ["m1@example.com", "m2@example.com"]}
    with transaction(conn):
        assert not rearm_if_restocked(conn, stored, now=DURING, actor="test")  # still below
    add_codes(conn, stored, 1, start=100)
    with transaction(conn):
        assert rearm_if_restocked(conn, stored, now=DURING, actor="staff:m1@example.com")
    assert audit_changes(conn, "codes:stock:rearmed") == [{"threshold": 3}]


def test_every_restock_through_the_import_rearms_the_alert(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    """The console's upload job, `promo import-codes` and the demo's top-up all import through
    import_and_rearm: a restock back to the threshold re-arms, a smaller one does not."""
    staff(conn, "m1@example.com", "marketer")
    stored = with_threshold(conn, stored, 3)
    add_codes(conn, stored, 1)
    assert alert(conn, stored)

    def restock(start: int, n: int) -> int:
        return import_and_rearm(conn, stored, source=csv_bytes(["code"], [[reward_code(i)] for i in range(start, start + n)]),
                                source_name="more.csv", now=DURING, actor="cli").imported

    assert restock(100, 1) == 1 and audit_changes(conn, "codes:stock:rearmed") == []  # 2 < 3: still fired
    assert restock(200, 1) == 1 and audit_changes(conn, "codes:stock:rearmed") == [{"threshold": 3}]
    assert conn.execute("SELECT COUNT(*) FROM stock_alerts WHERE rearmed_at IS NULL").fetchone()[0] == 0


def test_with_no_marketer_the_admins_are_told(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    staff(conn, "admin@example.com", "admin")
    staff(conn, "support@example.com", "support")
    stored = with_threshold(conn, stored, 5)
    add_codes(conn, stored, 1)
    assert alert(conn, stored)
    assert low_stock_mail(conn) == ["admin@example.com"]


def test_no_threshold_means_no_alert(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    staff(conn, "m@example.com", "marketer")
    stored = with_threshold(conn, stored, None)
    assert not alert(conn, stored)
    assert low_stock_mail(conn) == [] and conn.execute("SELECT COUNT(*) FROM stock_alerts").fetchone()[0] == 0
