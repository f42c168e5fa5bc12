"""How many rewards a campaign has given out (campaign_totals, migration 0025): counted in
the redemption's transaction, read by the stock counts and the low-stock alert.

Two redemptions by different accounts must not wait for the same row (issue 18). An
uncapped campaign counts each redemption on the first of its SHARDS rows that no other
transaction holds (`FOR UPDATE SKIP LOCKED`, as codes are claimed), so concurrent
transactions on PostgreSQL do not wait for each other's counter unless more than SHARDS
hold one at once. The rows are made when the campaign is saved (SQLite's one writer needs
only one), or by the first redemption that finds none, for a campaign saved before that.
Readers sum the shards. (A shard chosen at random for every redemption was measured first:
at 8 connections a quarter of the lock waits were still on this table, since each
transaction holds its row until COMMIT.)

A total cap is one number, so a capped campaign counts on one row (CAP_SHARD) and checks
the cap in the statement that counts: the upsert's DO UPDATE ... WHERE is evaluated on the
row it has locked, at its latest committed value, so under READ COMMITTED no two
transactions both see cap-1 (a plain SELECT followed by a later increment let them). Capped
campaigns therefore serialise their redemptions on that row; uncapped ones do not.
The other shards still hold what was counted before a cap was set: they no longer change
(every redemption of a capped campaign counts on CAP_SHARD), so reading them in the same
statement's snapshot is exact. Only redemptions already in flight when the cap is set can
pass it, as they could with any edit made during a redemption.
"""

from __future__ import annotations

import random
import sqlite3
from typing import Any

from promo.backends import ask, dialect_of

SHARDS = 64  # above the connections that write at once (PostgreSQL's max_connections is often 100)
CAP_SHARD = 0

_OTHERS = "(SELECT COALESCE(SUM(redeemed), 0) FROM campaign_totals WHERE campaign_id = :c AND shard <> :cap_shard)"
# One statement: insert the cap row at 1 if the others leave room, else add 1 if they still do.
_TAKE_CAPPED = (
    "INSERT INTO campaign_totals (campaign_id, shard, redeemed) SELECT :c, :cap_shard, 1 WHERE " + _OTHERS + " < :cap"
    " ON CONFLICT (campaign_id, shard) DO UPDATE SET redeemed = campaign_totals.redeemed + 1"
    " WHERE campaign_totals.redeemed + " + _OTHERS + " < :cap RETURNING redeemed"
)
# The first row of the campaign that no other transaction holds (PostgreSQL); SQLite: the first.
_TAKE_FREE = ("UPDATE campaign_totals SET redeemed = redeemed + 1 WHERE campaign_id = :c AND shard ="
              " (SELECT shard FROM campaign_totals WHERE campaign_id = :c ORDER BY shard LIMIT 1{skip_locked}) RETURNING shard")
# The rows not made yet (SQLite: one), ours until COMMIT: made when the campaign is saved.
_MAKE_ROWS = ("WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < :n)"
              " INSERT INTO campaign_totals (campaign_id, shard, redeemed) SELECT :c, n, 0 FROM s"
              " WHERE n NOT IN (SELECT shard FROM campaign_totals WHERE campaign_id = :c)"
              " ON CONFLICT (campaign_id, shard) DO NOTHING RETURNING shard")
_TAKE = ("INSERT INTO campaign_totals (campaign_id, shard, redeemed) VALUES (:c, :shard, 1)"
         " ON CONFLICT (campaign_id, shard) DO UPDATE SET redeemed = campaign_totals.redeemed + 1")


def take(conn: sqlite3.Connection, campaign_id: int, *, cap: int | None) -> int | None:
    """Count one redemption (inside its transaction). Returns the shard it was counted on,
    or None when the cap is reached (nothing counted: the redemption is refused)."""
    if cap is None:
        return taken(conn, ask_take(conn, campaign_id), campaign_id)
    row = conn.execute(_TAKE_CAPPED, {"c": campaign_id, "cap_shard": CAP_SHARD, "cap": cap}).fetchone()
    return None if row is None else CAP_SHARD


def ask_take(conn: sqlite3.Connection, campaign_id: int) -> Any:
    """An uncapped campaign's count, asked now and read later (taken): a count that cannot
    refuse, so what comes after it (the code's claim) can be asked beside it."""
    return ask(conn, lambda: conn.execute(_TAKE_FREE.format(skip_locked=dialect_of(conn).skip_locked), {"c": campaign_id}))


def taken(conn: sqlite3.Connection, asked: Any, campaign_id: int) -> int:
    """The shard ask_take counted on; if every row was held (or none made yet), counted now."""
    free = asked.fetchone()
    if free is not None:
        return int(free[0])
    made = make_rows(conn, campaign_id)  # a campaign saved before its rows were made at save time
    # Every row made and held at once: wait for one, chosen at random to spread the waiters.
    shard = made[0] if made else random.randrange(SHARDS)  # noqa: S311 - not a secret
    conn.execute(_TAKE, {"c": campaign_id, "shard": shard})
    return shard


def make_rows(conn: sqlite3.Connection, campaign_id: int) -> list[int]:
    """The campaign's counter rows not made yet (SQLite: one), inside the caller's transaction;
    the shards made. Called when a campaign is saved, so its first redemptions do not wait for
    each other: rows another transaction is still inserting would make them wait for its COMMIT."""
    rows = conn.execute(_MAKE_ROWS, {"c": campaign_id, "n": SHARDS if dialect_of(conn).skip_locked else 1}).fetchall()
    return [int(r[0]) for r in rows]


def give_back(conn: sqlite3.Connection, campaign_id: int, shard: int) -> None:
    """Undo take() in the same transaction (no code left to give): the row is ours until COMMIT."""
    conn.execute("UPDATE campaign_totals SET redeemed = redeemed - 1 WHERE campaign_id = :c AND shard = :s",
                 {"c": campaign_id, "s": shard})


def redeemed(conn: sqlite3.Connection, campaign_id: int) -> int:
    """Rewards given out in all (the committed count, plus this transaction's own)."""
    row = conn.execute("SELECT COALESCE(SUM(redeemed), 0) FROM campaign_totals WHERE campaign_id = :c",
                       {"c": campaign_id}).fetchone()
    return int(row[0])
