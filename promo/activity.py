"""Counters of a campaign's activity per hour (campaign_activity, migration 0019): attempts
by outcome, refusals by reason, emails sent. Written in the transaction that logs the
attempt or marks the email sent; read by the dashboards (promo/dashboard.py), which then
never count the decision log or the outbox row by row.

An hour is the start of the campaign-local hour, stored as a UTC instant: a day or an hour in
the campaign's zone is a sum of whole rows, also for zones at +05:30 or +05:45.

Rows are sharded so that many writers on PostgreSQL do not queue for one row (issue 18); readers
sum the shards. A transaction counts on the first row of its hour and outcome that no other
transaction holds (`FOR UPDATE SKIP LOCKED`), and its refusal reasons on rows of the same
shard; only when every row is held does it make one, at `shard_of` % SHARDS (their connection's
number, backends.connection_number, or an email's id: transactions making rows at the same
moment mostly pick different ones, and two that pick the same one only wait for a COMMIT). So an hour has as many rows as transactions
that counted in it at once (one on SQLite), not one per writer or SHARDS whatever the load.
Four shards chosen by `shard_of % 4` were measured first: with the audit chain's lock left out,
half of all lock waits at 32 connections were on this table."""

from __future__ import annotations

import sqlite3
from bisect import bisect_right
from collections.abc import Iterable
from datetime import UTC, date, datetime, time, timedelta, tzinfo

from promo.backends import dialect_of
from promo.timeutil import db_time, from_db_time

SHARDS = 64  # at most per hour and outcome: rows are made as concurrent writers need them
REFUSED_FOR = "refused_for"  # the outcome of the rows that count refusals per reason

_UPSERT = ("INSERT INTO campaign_activity (campaign_id, outcome, hour, reason, shard, n) VALUES (?, ?, ?, ?, ?, 1)"
           " ON CONFLICT (campaign_id, outcome, hour, reason, shard) DO UPDATE SET n = campaign_activity.n + 1")


def local_hour_start(at: datetime, tz: tzinfo) -> datetime:
    """The UTC instant at which the campaign-local hour holding `at` began."""
    local = at.astimezone(tz)
    return at.astimezone(UTC) - timedelta(minutes=local.minute, seconds=local.second, microseconds=local.microsecond)


# The first row of this hour and outcome no other transaction holds (SQLite: the first).
_TAKE_FREE = ("UPDATE campaign_activity SET n = n + 1 WHERE campaign_id = :c AND outcome = :o AND hour = :h AND reason = ''"
              " AND shard = (SELECT shard FROM campaign_activity WHERE campaign_id = :c AND outcome = :o AND hour = :h"
              " AND reason = '' ORDER BY shard LIMIT 1{skip_locked}) RETURNING shard")


def _count(conn: sqlite3.Connection, campaign_id: int, outcome: str, hour: str, reasons: list[str], shard_of: int) -> None:
    taken = conn.execute(_TAKE_FREE.format(skip_locked=dialect_of(conn).skip_locked),
                         {"c": campaign_id, "o": outcome, "h": hour}).fetchone()
    shard = shard_of % SHARDS if taken is None else int(taken[0])
    rows = [] if taken is not None else [(campaign_id, outcome, hour, "", shard)]
    # Reason rows share the outcome row's shard: holding that row, no other refusal writes them.
    rows += [(campaign_id, REFUSED_FOR, hour, reason, shard) for reason in reasons]
    if rows:
        conn.executemany(_UPSERT, rows)


def count_attempt(conn: sqlite3.Connection, *, campaign_id: int, outcome: str, reasons: Iterable[str], at: datetime,
                  tz: tzinfo, shard_of: int) -> None:
    """Count one logged attempt (inside its transaction): its outcome, and each distinct
    reason ('R-X4 product_excluded') a refusal failed."""
    _count(conn, campaign_id, outcome, db_time(local_hour_start(at, tz)), sorted(set(reasons)), shard_of)


def count_sent(conn: sqlite3.Connection, *, campaign_id: int, at: datetime, shard_of: int) -> None:
    """Count one email of the campaign as sent (inside the transaction that marks it sent).
    The relay does not know the campaign's zone: sent emails are counted in UTC hours, and
    only their total is shown."""
    _count(conn, campaign_id, "mail_sent", db_time(local_hour_start(at, UTC)), [], shard_of)


# ---- reading: ranges of the primary key (campaign, outcome, hour), summed over shards ----

def total(conn: sqlite3.Connection, campaign_id: int, outcome: str, *, start: datetime | None = None,
          end: datetime | None = None) -> int:
    """Attempts (or emails sent) of one outcome in [start, end) (by the hour they fell in)."""
    row = conn.execute(
        "SELECT COALESCE(SUM(n), 0) FROM campaign_activity WHERE campaign_id = :c AND outcome = :o"
        " AND hour >= :start AND hour < :end",
        {"c": campaign_id, "o": outcome, "start": _bound(start, _FIRST), "end": _bound(end, _LAST)},
    ).fetchone()
    return int(row[0])


def hourly(conn: sqlite3.Connection, campaign_id: int, outcomes: tuple[str, ...], start: datetime,
           end: datetime) -> list[tuple[str, str, int]]:
    """(hour start as stored, outcome, count) for the hours in [start, end) that had any."""
    marks = ", ".join(f":o{i}" for i in range(len(outcomes)))
    rows = conn.execute(
        f"SELECT hour, outcome, SUM(n) FROM campaign_activity WHERE campaign_id = :c AND outcome IN ({marks})"
        " AND hour >= :start AND hour < :end GROUP BY outcome, hour",
        {"c": campaign_id, "start": db_time(start), "end": db_time(end), **{f"o{i}": o for i, o in enumerate(outcomes)}},
    ).fetchall()
    return [(hour, outcome, int(n)) for hour, outcome, n in rows]


def by_local_day(conn: sqlite3.Connection, campaign_id: int, outcomes: tuple[str, ...], first: date, last: date,
                 tz: tzinfo) -> list[tuple[date, dict[str, int]]]:
    """Counts per campaign-local day from `first` to `last` inclusive, every day listed."""
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    counts = [dict.fromkeys(outcomes, 0) for _ in days]
    if days:
        # Each stored hour falls between two local midnights: compared as text, no parsing per row.
        midnights = [db_time(midnight(d, tz)) for d in days]
        for hour, outcome, n in hourly(conn, campaign_id, outcomes, midnight(first, tz), midnight(last + timedelta(days=1), tz)):
            counts[bisect_right(midnights, hour) - 1][outcome] += n
    return list(zip(days, counts, strict=True))


def by_local_hour(conn: sqlite3.Connection, campaign_id: int, outcomes: tuple[str, ...], day: date,
                  tz: tzinfo) -> list[tuple[datetime, dict[str, int]]]:
    """Counts per campaign-local hour of one local day (23 or 25 hours on a clock change)."""
    start, end = midnight(day, tz), midnight(day + timedelta(days=1), tz)
    slots = [start + timedelta(hours=i) for i in range(int((end - start) / timedelta(hours=1)))]
    counts = [dict.fromkeys(outcomes, 0) for _ in slots]
    for hour, outcome, n in hourly(conn, campaign_id, outcomes, start, end):
        counts[min(int((from_db_time(hour) - start) / timedelta(hours=1)), len(slots) - 1)][outcome] += n
    return [(slot.astimezone(tz), c) for slot, c in zip(slots, counts, strict=True)]


def reasons(conn: sqlite3.Connection, campaign_id: int, *, start: datetime | None = None,
            end: datetime | None = None) -> list[tuple[str, int]]:
    """Refusals per reason ('R-X4 product_excluded'), most frequent first."""
    rows = conn.execute(
        "SELECT reason, SUM(n) AS total FROM campaign_activity WHERE campaign_id = :c AND outcome = :o"
        " AND hour >= :start AND hour < :end GROUP BY reason ORDER BY total DESC, reason",
        {"c": campaign_id, "o": REFUSED_FOR, "start": _bound(start, _FIRST), "end": _bound(end, _LAST)},
    ).fetchall()
    return [(reason, int(n)) for reason, n in rows]


def midnight(day: date, tz: tzinfo) -> datetime:
    """The UTC instant a campaign-local day begins."""
    return datetime.combine(day, time(0), tzinfo=tz).astimezone(UTC)


# Below and above every stored hour, as instants both stores read (PostgreSQL's timestamptz
# refuses "0000"; SQLite compares the text).
_FIRST, _LAST = "0001-01-01T00:00:00.000000Z", "9999-12-31T23:59:59.999999Z"


def _bound(value: datetime | None, default: str) -> str:
    return default if value is None else db_time(value)
