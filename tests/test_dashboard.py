"""A campaign's dashboard and the overview, checked against the database on a campaign with a
known history (tests/support/dashboard_history.py): per campaign-local day and hour (both sides of
midnight, the spring clock change, a +05:30 zone), refusals by reason, stock and its
run-out, email delivery, review claims. Then that every query behind them reads an index
range and never scans codes, redemptions, decisions or the outbox (EXPLAIN QUERY PLAN), and
that the counters a migration fills from an older database equal those kept live."""

from __future__ import annotations

import json
import sqlite3
from collections import Counter
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from promo.activity import local_hour_start
from promo.campaign_store import StoredCampaign, get_campaign
from promo.codes import stock, void_batch
from promo.dashboard import REASONS, campaign_dashboard, overview
from promo.db import transaction
from promo.migrate import _statements
from promo.stock import pool_counts, stock_report
from promo.timeutil import from_db_time
from tests.support.dashboard_history import CODES, CPH, KOLKATA, NOW, SPRING, add_campaign, add_keys, attempt, local, spring_history

MIGRATION = Path(__file__).resolve().parents[1] / "promo" / "migrations" / "0019_dashboard.sql"


@pytest.fixture
def spring(conn: sqlite3.Connection) -> StoredCampaign:
    return spring_history(conn)


# ---- what the database says, counted the slow way ---------------------------------------

def attempts_by(conn: sqlite3.Connection, campaign_id: int, key) -> Counter[tuple[object, str]]:  # type: ignore[no-untyped-def]
    rows = conn.execute("SELECT attempted_at, outcome FROM redemption_attempts WHERE campaign_id = ?", (campaign_id,))
    return Counter((key(from_db_time(at)), outcome) for at, outcome in rows)


def reasons_in_log(conn: sqlite3.Connection, campaign_id: int) -> Counter[tuple[str, str]]:
    counts: Counter[tuple[str, str]] = Counter()
    for (result,) in conn.execute("SELECT result FROM redemption_attempts WHERE campaign_id = ? AND outcome = 'refused'",
                                  (campaign_id,)):
        counts.update({(f["rule"], f["reason"]) for f in json.loads(result)["failures"]})
    return counts


# ---- the figures ---------------------------------------------------------------------------

def test_days_and_hours_match_the_decision_log_in_the_campaigns_zone(conn: sqlite3.Connection, spring: StoredCampaign) -> None:
    board = campaign_dashboard(conn, spring, NOW, date(2026, 3, 28))
    by_day = attempts_by(conn, spring.id, lambda at: at.astimezone(CPH).date())
    assert [d for d, _ in board.days] == [date(2026, 3, 20) + timedelta(days=i) for i in range(11)]  # to today
    for day, counts in board.days:
        assert counts == {"redeemed": by_day[(day, "redeemed")], "refused": by_day[(day, "refused")]}, day
    # 23:59:59 belongs to the 27th and 00:00:00 to the 28th (in UTC both are on the 27th).
    days = dict(board.days)
    assert days[date(2026, 3, 27)] == {"redeemed": 1, "refused": 0}
    assert days[date(2026, 3, 28)] == {"redeemed": 3, "refused": 3}
    assert days[date(2026, 3, 29)] == {"redeemed": 1, "refused": 0}
    assert days[date(2026, 3, 30)] == {"redeemed": 0, "refused": 1}
    assert (board.redeemed, board.refused) == (5, 5)  # one refusal came before the window opened

    by_hour = attempts_by(conn, spring.id, lambda at: at.astimezone(CPH).replace(minute=0, second=0, microsecond=0))
    assert board.hours_day == date(2026, 3, 28) and len(board.hours) == 24
    for hour, counts in board.hours:
        assert counts == {"redeemed": by_hour[(hour, "redeemed")], "refused": by_hour[(hour, "refused")]}, hour
    hours = {h.hour: c for h, c in board.hours}
    assert hours[0] == {"redeemed": 1, "refused": 0} and hours[23] == {"redeemed": 0, "refused": 0}
    assert hours[10] == {"redeemed": 2, "refused": 1} and hours[11] == {"redeemed": 0, "refused": 2}


def test_the_day_the_clocks_go_forward_has_23_hours(conn: sqlite3.Connection, spring: StoredCampaign) -> None:
    board = campaign_dashboard(conn, spring, NOW, date(2026, 3, 29))
    assert [h.hour for h, _ in board.hours] == [0, 1, *range(3, 24)]
    assert dict((h.hour, c["redeemed"]) for h, c in board.hours)[3] == 1
    yesterday = campaign_dashboard(conn, spring, NOW, date(2026, 3, 27))
    assert dict((h.hour, c["redeemed"]) for h, c in yesterday.hours)[23] == 1  # 23:59:59, not the next day's 00


def test_the_hour_shown_defaults_to_today_and_stays_inside_the_window(conn: sqlite3.Connection,
                                                                      spring: StoredCampaign) -> None:
    assert campaign_dashboard(conn, spring, NOW).hours_day == date(2026, 3, 30)
    assert campaign_dashboard(conn, spring, NOW, date(2020, 1, 1)).hours_day == date(2026, 3, 20)
    assert campaign_dashboard(conn, spring, NOW, date(2030, 1, 1)).hours_day == date(2026, 4, 10)


def test_a_half_hour_zone_splits_days_at_its_own_midnight(conn: sqlite3.Connection) -> None:
    """Asia/Kolkata is UTC+05:30: counting whole UTC hours would put 23:59:59 and 00:00:00
    local (18:29:59Z and 18:30:00Z) in the same bucket, and on the same local day."""
    stored = add_campaign(conn, "kolkata", "Asia/Kolkata", codes=3, code_start=100)
    add_keys(conn, [(31, "O365-HOME-ESD", "DK"), (32, "O365-HOME-ESD", "DK"), (33, "O365-HOME-ESD", "DK")])
    assert attempt(conn, "kolkata", 31, "k1@example.com", local(KOLKATA, 2026, 3, 27, 23, 59, 59)).redeemed
    assert attempt(conn, "kolkata", 32, "k2@example.com", local(KOLKATA, 2026, 3, 28, 0, 0, 0)).redeemed
    assert attempt(conn, "kolkata", 33, "k3@example.com", local(KOLKATA, 2026, 3, 28, 0, 29, 59)).redeemed
    now = local(KOLKATA, 2026, 3, 28, 12)
    days = dict(campaign_dashboard(conn, stored, now).days)
    assert days[date(2026, 3, 27)]["redeemed"] == 1 and days[date(2026, 3, 28)]["redeemed"] == 2
    hours = campaign_dashboard(conn, stored, now, date(2026, 3, 28)).hours
    assert [h.strftime("%H:%M") for h, _ in hours][:2] == ["00:00", "01:00"] and hours[0][1]["redeemed"] == 2
    late = campaign_dashboard(conn, stored, now, date(2026, 3, 27)).hours
    assert late[-1][0].strftime("%H:%M") == "23:00" and late[-1][1]["redeemed"] == 1


@pytest.mark.parametrize(("zone", "at", "start"), [
    ("Europe/Copenhagen", "2026-03-28T09:15:00Z", "2026-03-28T09:00:00+00:00"),
    ("Asia/Kolkata", "2026-03-27T18:29:59Z", "2026-03-27T17:30:00+00:00"),  # 23:59:59 local
    ("Asia/Kolkata", "2026-03-27T18:30:00Z", "2026-03-27T18:30:00+00:00"),  # 00:00:00 local
    ("Asia/Kathmandu", "2026-03-27T18:14:59Z", "2026-03-27T17:15:00+00:00"),  # +05:45
    ("America/St_Johns", "2026-03-27T12:00:00Z", "2026-03-27T11:30:00+00:00"),  # -02:30 (summer)
])
def test_hours_start_at_the_campaign_local_hour(zone: str, at: str, start: str) -> None:
    assert local_hour_start(datetime.fromisoformat(at), ZoneInfo(zone)) == datetime.fromisoformat(start)


def test_refusals_by_reason_match_the_decision_log(conn: sqlite3.Connection, spring: StoredCampaign) -> None:
    board = campaign_dashboard(conn, spring, NOW)
    assert {(r.rule, r.reason): r.count for r in board.refusals} == reasons_in_log(conn, spring.id)
    assert [(r.rule, r.count) for r in board.refusals] == [("R-X2", 2), ("R-X1", 1), ("R-X4", 1), ("R-X6", 1), ("R-X8", 1)]
    assert all(r.description == REASONS[r.reason] for r in board.refusals)
    assert board.refusals[0].description == "Bought or activated outside the offer's countries"


def test_stock_run_out_mail_and_claims_match_the_database(conn: sqlite3.Connection, spring: StoredCampaign) -> None:
    board = campaign_dashboard(conn, spring, NOW)
    scanned = stock(conn, campaign_id=spring.id, not_expiring_before=spring.campaign.code_expires_at, now=NOW)
    assert board.stock == scanned == {"available": CODES - 5, "issued": 5, "expired": 0, "voided": 0}
    # 5 redemptions in the last 7 days: 5/7 a day, 5 codes left last 7 days more, before 10 April.
    assert board.run_out.kind == "runs_out" and board.run_out.rate_per_day == pytest.approx(5 / 7)
    assert board.run_out.on == date(2026, 4, 6)
    statuses = dict(conn.execute("SELECT status, COUNT(*) FROM outbox WHERE campaign_id = ? GROUP BY status", (spring.id,)).fetchall())
    assert (board.mail.sent, board.mail.queued, board.mail.failed) == (statuses["sent"], statuses["queued"], statuses["failed"])
    assert (board.mail.sent, board.mail.queued, board.mail.failed) == (3, 2, 1)  # the rejection email is queued too
    pending = conn.execute("SELECT COUNT(*) FROM review_claims WHERE campaign_id = ? AND status = 'pending'", (spring.id,))
    assert board.open_claims == pending.fetchone()[0] == 2


def test_burn_down_counts_back_from_todays_stock(conn: sqlite3.Connection, spring: StoredCampaign) -> None:
    left = dict(campaign_dashboard(conn, spring, NOW).burn_down)
    assert left[date(2026, 3, 20)] == left[date(2026, 3, 26)] == CODES  # nothing redeemed before the 27th
    assert [left[date(2026, 3, d)] for d in (27, 28, 29, 30)] == [9, 6, 5, 5]


@pytest.mark.parametrize(("now", "kind", "on"), [
    (NOW, "runs_out", date(2026, 4, 6)),
    (local(CPH, 2026, 4, 5, 12), "not_at_this_rate", None),  # 1 a day from the 5th, 5 left: past the 10th
    (local(CPH, 2026, 4, 11, 0, 0), "window_closed", None),  # the first instant after the window
])
def test_run_out_is_not_at_this_rate_when_codes_outlast_the_window(conn: sqlite3.Connection, spring: StoredCampaign,
                                                                   now: datetime, kind: str, on: date | None) -> None:
    run_out = campaign_dashboard(conn, spring, now).run_out
    assert (run_out.kind, run_out.on) == (kind, on)


def test_no_redemptions_lately_is_not_at_this_rate_and_an_empty_pool_is_out_of_codes(conn: sqlite3.Connection) -> None:
    stored = add_campaign(conn, "quiet", "Europe/Copenhagen", codes=2, code_start=200)
    assert campaign_dashboard(conn, stored, NOW).run_out.kind == "not_at_this_rate"
    add_keys(conn, [(41, "O365-HOME-ESD", "DK"), (42, "O365-HOME-ESD", "DK")])
    assert attempt(conn, "quiet", 41, "q1@example.com", NOW).redeemed and attempt(conn, "quiet", 42, "q2@example.com", NOW).redeemed
    assert campaign_dashboard(conn, stored, NOW + timedelta(minutes=1)).run_out.kind == "out_of_codes"


def test_the_overview_shows_live_campaigns_with_the_same_figures(conn: sqlite3.Connection, spring: StoredCampaign) -> None:
    glances = overview(conn, NOW)
    assert [g.stored.campaign.slug for g in glances] == [SPRING]  # the shipped 2013 offer has ended
    g = glances[0]
    board = campaign_dashboard(conn, spring, NOW)
    week = attempts_by(conn, spring.id, lambda at: at >= NOW - timedelta(days=7))
    assert (g.redeemed_7d, g.refused_7d) == (week[(True, "redeemed")], week[(True, "refused")]) == (5, 4)
    day = attempts_by(conn, spring.id, lambda at: at >= NOW - timedelta(hours=24))
    assert g.redeemed_24h == day[(True, "redeemed")] == 0
    assert g.top_refusal is not None and (g.top_refusal.rule, g.top_refusal.count) == ("R-X2", 2)
    assert (g.stock, g.run_out, g.mail, g.open_claims) == (board.stock, board.run_out, board.mail, board.open_claims)
    assert [n for _, n in g.last_days] == [0] * 10 + [1, 3, 1, 0]
    assert overview(conn, local(CPH, 2026, 4, 11, 0, 0)) == []  # closed: no longer live


# ---- stock without reading the pool ---------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["import", "import_expiring", "redeem", "void"]), st.integers(0, 5)),
                max_size=12),
       st.sampled_from([NOW, local(CPH, 2026, 6, 1), local(CPH, 2027, 1, 2)]))
def test_counted_stock_equals_the_pool_after_any_history(tmp_path_factory: pytest.TempPathFactory,
                                                         steps: list[tuple[str, int]], at: datetime) -> None:
    from tests.support.database import prepare_database
    conn = prepare_database(tmp_path_factory.mktemp("pool") / "promo.sqlite3")
    stored = add_campaign(conn, "pool", "Europe/Copenhagen", codes=3, code_start=0)
    next_code, next_key = 3, 1000
    for action, n in steps:
        if action.startswith("import"):
            from promo.codes import import_codes
            from tests.support.database import csv_bytes, reward_code
            expiry = ["2026-06-30"] if action == "import_expiring" else []  # before the stated 2026-12-31: never issuable
            import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source_name="more.csv", now=NOW,
                         source=csv_bytes(["code", "expires_at"] if expiry else ["code"],
                                          [[reward_code(next_code + i), *expiry] for i in range(n + 1)]))
            next_code += n + 1
        elif action == "redeem":
            add_keys(conn, [(next_key, "O365-HOME-ESD", "DK")])
            attempt(conn, "pool", next_key, f"p{next_key}@example.com", NOW)
            next_key += 1
        else:
            batch = conn.execute("SELECT id FROM code_batches WHERE campaign_id = ? ORDER BY id LIMIT 1 OFFSET ?",
                                 (stored.id, n % 2)).fetchone()
            if batch:
                with transaction(conn):
                    void_batch(conn, campaign_id=stored.id, slug="pool", batch_id=batch[0], actor="test", now=NOW)
    assert pool_counts(conn, stored, at) == stock(conn, campaign_id=stored.id,
                                                  not_expiring_before=stored.campaign.code_expires_at, now=at)
    conn.close()


def test_the_campaign_list_stock_is_counted_not_scanned(conn: sqlite3.Connection, spring: StoredCampaign) -> None:
    report = stock_report(conn, spring, NOW)
    assert report.by_status == {"available": 5, "issued": 5, "expired": 0, "voided": 0}
    assert report.timezone == "Europe/Copenhagen" and report.per_day[-4:] == [
        (date(2026, 3, 27), 1), (date(2026, 3, 28), 3), (date(2026, 3, 29), 1), (date(2026, 3, 30), 0)]
    assert report.as_dict()["projection"] == "runs_out" and report.as_dict()["projected_run_out"] == "2026-04-06"


# ---- the query plans: index ranges only ---------------------------------------------------------

BIG_TABLES = ("reward_codes", "redemptions", "redemption_attempts", "outbox", "campaign_activity", "review_claims",
              "audit_events")


def plans_of(conn: sqlite3.Connection, run) -> dict[str, list[str]]:  # type: ignore[no-untyped-def]
    """Every SELECT `run` sends to SQLite, with its query plan."""
    sent: list[str] = []
    conn.set_trace_callback(sent.append)
    try:
        run()
    finally:
        conn.set_trace_callback(None)
    return {sql: [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
            for sql in dict.fromkeys(sent) if sql.lstrip().upper().startswith("SELECT")}


def unindexed_steps(plans: dict[str, list[str]]) -> list[tuple[str, str]]:
    """Plan steps that read one of the big tables other than by a range of an index."""
    return [(sql, step) for sql, plan in plans.items() for step in plan for table in BIG_TABLES
            if f" {table} " in f" {step} " and not (step.startswith("SEARCH") and ("INDEX" in step or "PRIMARY KEY" in step))]


@pytest.mark.sqlite_only("SQLite's query plans, read through its trace callback and EXPLAIN QUERY PLAN; "
                         "PostgreSQL's counterparts for the lookups: test_findable_records.py, test_staff_actions.py")
def test_the_dashboard_overview_and_campaign_list_read_index_ranges_only(conn: sqlite3.Connection,
                                                                          spring: StoredCampaign) -> None:
    from promo.campaign_store import list_campaigns
    plans = plans_of(conn, lambda: (campaign_dashboard(conn, spring, NOW), overview(conn, NOW),
                                    [stock_report(conn, s, NOW) for s in list_campaigns(conn)]))
    assert unindexed_steps(plans) == []
    steps = " | ".join(step for plan in plans.values() for step in plan)
    # The counters' key, the index of free codes, the partial indexes of unsent emails and pending claims:
    for index in ("SEARCH campaign_activity USING PRIMARY KEY", "SEARCH reward_codes USING INDEX reward_codes_available",
                  "SEARCH outbox USING COVERING INDEX outbox_campaign_unsent"):
        assert index in steps, index
    # Open claims: SQLite picks either index that holds pending claims only (by campaign, or by status); both are
    # searches bounded by the pending claims, never a scan of the decided ones.
    assert ("SEARCH review_claims USING INDEX review_claims_open" in steps
            or "SEARCH review_claims USING INDEX review_claims_status (status=?)" in steps), steps


@pytest.mark.sqlite_only("SQLite's query plans, read through its trace callback and EXPLAIN QUERY PLAN; "
                         "PostgreSQL's counterparts for the lookups: test_findable_records.py, test_staff_actions.py")
def test_the_old_stock_count_scanned_every_code(conn: sqlite3.Connection, spring: StoredCampaign) -> None:
    """What the campaign list did before (codes.stock, which reconciliation still uses to
    check the books): a walk over every code. The check above catches it."""
    plans = plans_of(conn, lambda: stock(conn, campaign_id=spring.id, not_expiring_before=spring.campaign.code_expires_at,
                                         now=NOW))
    assert [step for _, step in unindexed_steps(plans)] == ["SCAN reward_codes"]


# ---- the migration fills the counters from an older database ---------------------------------

@pytest.mark.sqlite_only("a SQLite migration's back-fill; PostgreSQL starts at the 0023 baseline")
def test_the_migration_counts_the_history_it_finds_as_the_live_counters_do(conn: sqlite3.Connection,
                                                                           spring: StoredCampaign) -> None:
    live = conn.execute("SELECT campaign_id, outcome, hour, reason, SUM(n) FROM campaign_activity"
                        " GROUP BY campaign_id, outcome, hour, reason ORDER BY 1, 2, 3, 4").fetchall()
    assert live  # (Copenhagen is a whole number of hours from UTC: its local hours are UTC hours)
    backfill = [s for s in _statements(MIGRATION.read_text(encoding="utf-8")) if s.startswith("INSERT INTO campaign_activity")]
    assert len(backfill) == 3
    with transaction(conn):
        conn.execute("DELETE FROM campaign_activity")
        conn.execute("UPDATE outbox SET campaign_id = NULL")
        for statement in _statements(MIGRATION.read_text(encoding="utf-8")):
            if statement.startswith(("INSERT INTO campaign_activity", "UPDATE outbox SET campaign_id")):
                conn.execute(statement)
    assert conn.execute("SELECT campaign_id, outcome, hour, reason, SUM(n) FROM campaign_activity"
                        " GROUP BY campaign_id, outcome, hour, reason ORDER BY 1, 2, 3, 4").fetchall() == live
    assert campaign_dashboard(conn, get_campaign(conn, SPRING), NOW).mail.queued == 2  # reward and review emails found again


def test_sent_emails_are_counted_once(conn: sqlite3.Connection, spring: StoredCampaign) -> None:
    from promo.outbox import mark_sent
    sent_id = conn.execute("SELECT id FROM outbox WHERE campaign_id = ? AND status = 'sent' LIMIT 1", (spring.id,)).fetchone()[0]
    with transaction(conn):
        mark_sent(conn, sent_id, now=NOW, clear_payload=False)  # a second report for the same message
    assert campaign_dashboard(conn, spring, NOW).mail.sent == 3
    sent_at = conn.execute("SELECT sent_at FROM outbox WHERE id = ?", (sent_id,)).fetchone()[0]
    assert from_db_time(sent_at) == local(CPH, 2026, 3, 28, 12)  # the first report stands
