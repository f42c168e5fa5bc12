"""How many rewards a campaign has given out (campaign_totals, migrations 0025, 0026): counted in
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

A total cap is one number, but it is not kept on one row: that row would serialise every
redemption of a capped campaign for as long as each transaction lasts (55–96/s on PostgreSQL,
bench/hot_rows.py --cap). The cap is shared out among the rows instead, as escrow: each row
has an allotment, the allotments add up to the cap (or to what was already given, if more),
and a redemption counts on the first row no other transaction holds that is below its
allotment (`FOR UPDATE SKIP LOCKED`). A row is held from its count to COMMIT, so its count
never passes its allotment, and so the total never passes the cap. The allotments are made for
one cap (cap_basis): the first capped redemption after the cap is set or changed, or after an
uncapped count (which clears cap_basis), shares out what is left, holding every row of the
campaign for that one transaction (others that would do it at once wait for it at the
campaign's own row, then find it done, holding nothing). When the only rows with room left are
held by others, a redemption waits for one of them rather than refuse: a transaction that
rolls back gives its room back. It refuses only when no row has room (migration 0026).
"""

from __future__ import annotations

import random
import sqlite3
from typing import Any

from promo.backends import ask, dialect_of

SHARDS = 64  # above the connections that write at once (PostgreSQL's max_connections is often 100)

# The first row of the campaign that no other transaction holds (PostgreSQL); SQLite: the first.
# An uncapped count clears cap_basis: it may pass the row's allotment, so a cap set again later
# must share out the allotments anew.
_TAKE_FREE = ("UPDATE campaign_totals SET redeemed = redeemed + 1, cap_basis = NULL WHERE campaign_id = :c AND shard ="
              " (SELECT shard FROM campaign_totals WHERE campaign_id = :c ORDER BY shard LIMIT 1{skip_locked}) RETURNING shard")
# Capped: the first row with room left under this cap that no other transaction holds (the
# outer WHERE repeats the room check on the row as locked), only while no row is stale: an
# uncapped count on one row since the cap was shared out (cap_basis cleared) may have passed its
# allotment, and the others' room would then add up to more than the cap.
_HAS_ROOM = "cap_basis = :cap AND redeemed < allotment"
_ROOM = "campaign_id = :c AND " + _HAS_ROOM
# A row whose allotment was not made for this cap (or none was).
_STALE_ROW = "(cap_basis IS NULL OR cap_basis <> :cap)"
_STALE = "SELECT 1 FROM campaign_totals WHERE campaign_id = :c AND " + _STALE_ROW
_ANY_STALE = _STALE + " LIMIT 1"
_TAKE_ROOM = ("UPDATE campaign_totals SET redeemed = redeemed + 1 WHERE " + _ROOM + " AND shard ="
              " (SELECT shard FROM campaign_totals WHERE " + _ROOM + " ORDER BY shard LIMIT 1{skip_locked})"
              " AND NOT EXISTS (" + _STALE + ") RETURNING shard")
# When no free row has room: the rows that are stale, the room left under this cap in all, and
# how many rows there are.
_ROOM_LEFT = ("SELECT COALESCE(SUM(CASE WHEN " + _STALE_ROW + " THEN 1 ELSE 0 END), 0),"
              " COALESCE(SUM(CASE WHEN " + _HAS_ROOM + " THEN allotment - redeemed ELSE 0 END), 0),"
              " COUNT(*) FROM campaign_totals WHERE campaign_id = :c")
# Every row with room under this cap is held by another transaction: wait for one (PostgreSQL).
_WAIT_FOR_ROOM = "SELECT shard FROM campaign_totals WHERE " + _ROOM + " ORDER BY shard LIMIT 1{row_lock}"
# The campaign's own row, held (PostgreSQL) by whoever shares the cap out: transactions that
# would do it at once queue here, and find it done. Not a counter row, so a redemption counting
# never holds it, and the same for every cap. NO KEY UPDATE: inserts that refer to the campaign
# (their foreign key checks) do not wait for it.
_GATE = "SELECT id FROM campaigns WHERE id = :c{step_lock}"
# Every row of the campaign, held until COMMIT (PostgreSQL), to share the cap out.
_ALL_ROWS = "SELECT shard, redeemed FROM campaign_totals WHERE campaign_id = :c ORDER BY shard{row_lock}"
# The rows not made yet (SQLite: one), ours until COMMIT: made when the campaign is saved.
_MAKE_ROWS = ("WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < :n)"
              " INSERT INTO campaign_totals (campaign_id, shard, redeemed) SELECT :c, n, 0 FROM s"
              " WHERE n NOT IN (SELECT shard FROM campaign_totals WHERE campaign_id = :c)"
              " ON CONFLICT (campaign_id, shard) DO NOTHING RETURNING shard")
_TAKE = ("INSERT INTO campaign_totals (campaign_id, shard, redeemed) VALUES (:c, :shard, 1)"
         " ON CONFLICT (campaign_id, shard) DO UPDATE SET redeemed = campaign_totals.redeemed + 1, cap_basis = NULL")


def take(conn: sqlite3.Connection, campaign_id: int, *, cap: int | None) -> int | None:
    """Count one redemption (inside its transaction). Returns the shard it was counted on,
    or None when the cap is reached (nothing counted: the redemption is refused)."""
    if cap is None:
        return taken(conn, ask_take(conn, campaign_id), campaign_id)
    take_room = _TAKE_ROOM.format(skip_locked=dialect_of(conn).skip_locked)
    params = {"c": campaign_id, "cap": cap}
    # Each pass counts, refuses, shares the cap out (at most once for this cap), or waits for
    # another transaction that holds a row with room to end: it ends once no transaction
    # holds room (a rerun by in_transaction ends a deadlock with another that waits here too).
    while True:
        row = conn.execute(take_room, params).fetchone()
        if row is not None:
            return int(row[0])
        stale, room, rows = conn.execute(_ROOM_LEFT, params).fetchone()
        if stale or not rows:
            share_out(conn, campaign_id, cap)
        elif room:  # every row with room is held by another transaction: wait for one to end
            _wait_for_room(conn, params)
        else:
            return None


def share_out(conn: sqlite3.Connection, campaign_id: int, cap: int) -> None:
    """Make the allotments for `cap` (inside the caller's transaction, holding every row of the
    campaign until it ends): each row keeps what it counted, and the room left under the cap is
    spread evenly over the rows. If another transaction did this first, nothing changes and
    nothing stays held (the wait at the gate is undone to a savepoint): only the one that shares
    out holds every row, once."""
    make_rows(conn, campaign_id)
    dialect = dialect_of(conn)
    conn.execute("SAVEPOINT totals_gate")
    conn.execute(_GATE.format(step_lock=dialect.step_lock), {"c": campaign_id}).fetchall()
    if conn.execute(_ANY_STALE, {"c": campaign_id, "cap": cap}).fetchone() is None:  # the latest: the gate is held
        conn.execute("ROLLBACK TO totals_gate")  # shared out while this one waited: hold nothing for it
        conn.execute("RELEASE totals_gate")
        return
    conn.execute("RELEASE totals_gate")  # the gate is held to COMMIT, with every row
    rows = conn.execute(_ALL_ROWS.format(row_lock=dialect.row_lock), {"c": campaign_id}).fetchall()
    left = max(cap - sum(int(redeemed) for _, redeemed in rows), 0)
    each, extra = divmod(left, len(rows))
    conn.executemany("UPDATE campaign_totals SET allotment = :a, cap_basis = :cap WHERE campaign_id = :c AND shard = :s",
                     [{"a": int(redeemed) + each + (i < extra), "cap": cap, "c": campaign_id, "s": shard}
                      for i, (shard, redeemed) in enumerate(rows)])


def _wait_for_room(conn: sqlite3.Connection, params: dict[str, Any]) -> None:
    """Wait for a row with room under this cap, then let it go: PostgreSQL keeps a row lock it waited for
    even when the row then no longer matches, so a waiter would hold a row it never counts on
    until COMMIT (more waits, and a deadlock with one sharing a cap out). A lock taken in a
    savepoint goes with the savepoint."""
    conn.execute("SAVEPOINT totals_wait")
    conn.execute(_WAIT_FOR_ROOM.format(row_lock=dialect_of(conn).row_lock), params).fetchall()
    conn.execute("ROLLBACK TO totals_wait")
    conn.execute("RELEASE totals_wait")


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
