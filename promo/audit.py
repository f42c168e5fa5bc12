"""Append-only, hash-chained audit events.

Each event's hash covers the previous event's hash and a canonical JSON encoding of the
event (including its place in the chain), so any alteration, deletion or reordering breaks
the chain from that event on. Events are written in the same transaction as the change
they record. Tags read 'source:subject:action' (Warehouse's habit).

An event's place in the chain (`chain_seq`) is not its row id (`seq`) (issue 18):
- SQLite has one writer, so an event is sealed as it is appended: it reads the head and
  chains itself, as it always did.
- PostgreSQL runs writers at once, and a chain head read and written by every writer would
  queue them all behind one row until COMMIT. So an event is inserted unsealed (chain_seq,
  prev_hash and hash NULL) and `seal` chains committed events a moment later, one sealer at
  a time (promo/audit_seal.py every 200 ms, and `promo audit verify`/`checkpoint` first).
  A round seals what has committed by then, in id order; an event whose transaction commits
  after a higher id was sealed (ids are drawn before COMMIT) is simply sealed by a later
  round, at a later place: the chain is in sealing order (commit order, to a round), never
  keyed on "ids above the last sealed one", which would skip it for good. Hence no safety
  margin is needed, and none delays sealing.
Until it is sealed an event is only a row (SECURITY.md, "The audit chain").
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from promo.backends import dialect_of
from promo.db import transaction
from promo.timeutil import db_time

GENESIS_HASH = "0" * 64
SEAL_BATCH = 2000  # events sealed per transaction: a round's locks and memory stay small
OVERDUE = timedelta(seconds=5)  # an event unsealed longer than this is reported by verify
OVERDUE_LISTED = 100  # the row ids of overdue events a verify names, at most


def canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(prev_hash: str, payload: dict[str, Any]) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical(payload)}".encode()).hexdigest()


def chained_payload(row: Mapping[str, Any] | sqlite3.Row, chain_seq: int) -> dict[str, Any]:
    """What the hash of a stored event at `chain_seq` covers. Its row id is covered too when
    it differs from its place (PostgreSQL, or a copy from it), so a swap of two rows' ids is
    caught; events chained before issue 18 had id = place, so their hashes still verify."""
    return _payload(row["seq"], chain_seq, row["tag"], row["actor"], row["subject"], row["ip"], json.loads(row["data"]),
                    row["created_at"])


def _payload(seq: int, chain_seq: int, tag: str, actor: str, subject: str, ip: str | None, data: Any,
             created_at: str) -> dict[str, Any]:
    payload = {"seq": chain_seq, "tag": tag, "actor": actor, "subject": subject, "ip": ip, "data": data,
               "created_at": created_at}
    if seq != chain_seq:
        payload["id"] = seq
    return payload


def append_event(
    conn: sqlite3.Connection,
    *,
    tag: str,
    actor: str,
    subject: str,
    data: dict[str, Any],
    at: datetime,
    ip: str | None = None,
) -> None:
    """Record one event (call inside the transaction that makes the change). Its id is not
    returned: on PostgreSQL, reading it would cost the round trip a pipelined write saves."""
    created_at = db_time(at)
    values = {"tag": tag, "actor": actor, "subject": subject, "ip": ip, "data": canonical(data), "created_at": created_at}
    if dialect_of(conn).seal_lock:  # PostgreSQL: unsealed, no lock, no head read (sealed by `seal`)
        conn.execute("INSERT INTO audit_events (tag, actor, subject, ip, data, created_at)"
                     " VALUES (:tag, :actor, :subject, :ip, :data, :created_at)", values)
        return
    # SQLite: the write lock is held, so the head and the next id are ours until COMMIT.
    row = conn.execute("SELECT chain_seq, hash, (SELECT max(seq) FROM audit_events) FROM audit_events"
                       " WHERE chain_seq IS NOT NULL ORDER BY chain_seq DESC LIMIT 1").fetchone()
    if row is None:  # the first event in the chain (rows outside it, if any, keep their ids)
        row = (0, GENESIS_HASH, conn.execute("SELECT COALESCE(max(seq), 0) FROM audit_events").fetchone()[0])
    chain_seq, prev_hash, seq = row[0] + 1, row[1], row[2] + 1
    digest = event_hash(prev_hash, _payload(seq, chain_seq, tag, actor, subject, ip, data, created_at))
    conn.execute(
        "INSERT INTO audit_events (seq, chain_seq, tag, actor, subject, ip, data, created_at, prev_hash, hash)"
        " VALUES (:seq, :chain_seq, :tag, :actor, :subject, :ip, :data, :created_at, :prev_hash, :hash)",
        {**values, "seq": seq, "chain_seq": chain_seq, "prev_hash": prev_hash, "hash": digest},
    )


class SealingRaced(RuntimeError):
    """Rows read for a round changed before it wrote: raised so its transaction rolls back and
    leaves no gap in the chain; the next round seals what is there then."""


def seal(conn: sqlite3.Connection, *, limit: int = SEAL_BATCH, wait: bool = False) -> int:
    """Inside a READ COMMITTED transaction: chain up to `limit` committed unsealed events after
    the head, in id order; how many. Only one sealer works at a time: without `wait`, a
    sealer that finds another at work returns 0 at once. SQLite seals at append: always 0."""
    dialect = dialect_of(conn)
    if not dialect.seal_lock:
        return 0
    if wait:
        conn.execute(dialect.seal_lock)
    elif not conn.execute(dialect.seal_try_lock).fetchone()[0]:
        return 0
    # Read after the lock: under READ COMMITTED this statement sees the last sealer's COMMIT.
    rows = conn.execute("SELECT seq, chain_seq, tag, actor, subject, ip, data, created_at FROM audit_events"
                        " WHERE chain_seq IS NULL ORDER BY seq LIMIT :n", {"n": limit}).fetchall()
    if not rows:
        return 0
    top = head(conn)
    chain_seq, prev_hash = top.seq, top.hash
    ids, hashes = [], [top.hash]
    for row in rows:
        chain_seq += 1
        prev_hash = event_hash(prev_hash, chained_payload(row, chain_seq))
        ids.append(str(row["seq"]))
        hashes.append(prev_hash)
    # PostgreSQL only (SQLite returned above): one statement for the whole round, each row
    # found by its primary key (a nested loop: a hash join would scan the table when its
    # statistics are stale). The n-th row takes place head + n. Lists go as one
    # space-separated text each: psycopg's array dumper took a sixth of a round.
    conn.execute("SELECT set_config('enable_hashjoin', 'off', true), set_config('enable_mergejoin', 'off', true)")
    updated = conn.execute(
        "UPDATE audit_events SET chain_seq = :head + v.n, prev_hash = v.p, hash = v.h"
        " FROM unnest(string_to_array(:ids, ' ')::bigint[], string_to_array(:prevs, ' '), string_to_array(:hashes, ' '))"
        " WITH ORDINALITY AS v(i, p, h, n)"
        " WHERE audit_events.seq = v.i AND audit_events.chain_seq IS NULL",
        {"head": top.seq, "ids": " ".join(ids), "prevs": " ".join(hashes[:-1]), "hashes": " ".join(hashes[1:])})
    if updated.rowcount != len(rows):  # an unsealed row vanished mid-round (deleted past the service)
        raise SealingRaced(f"{len(rows)} events read to seal, {updated.rowcount} still there: the round is undone")
    return len(rows)


def seal_pending(conn: sqlite3.Connection, *, wait: bool = True) -> int:
    """Seal every event committed so far, a transaction per SEAL_BATCH (the CLI, before it
    verifies or prints a checkpoint; a copy, before it reads). With `wait`, a sealer already
    at work is waited for, then what is left is sealed. How many this call sealed."""
    if not dialect_of(conn).seal_lock:
        return 0  # SQLite: sealed at append (and no write lock taken on a file only read)
    total = 0
    while True:
        with transaction(conn):
            sealed = seal(conn, wait=wait)
        total += sealed
        if sealed < SEAL_BATCH:
            return total


@dataclass(frozen=True)
class Unsealed:
    count: int  # committed events not yet in the chain
    overdue: list[int]  # the row ids of those appended longer ago than the grace (the first OVERDUE_LISTED)


def unsealed(conn: sqlite3.Connection, now: datetime, grace: timedelta = OVERDUE) -> Unsealed:
    """Events outside the chain. On PostgreSQL a fresh one waits for the sealer; one older than
    `grace` means no sealer runs. On SQLite every event is sealed at append, so any is overdue
    (a row written past the service)."""
    count = int(conn.execute("SELECT COUNT(*) FROM audit_events WHERE chain_seq IS NULL").fetchone()[0])
    if not count:
        return Unsealed(0, [])
    overdue = [int(r[0]) for r in conn.execute(
        "SELECT seq FROM audit_events WHERE chain_seq IS NULL AND (appended_at IS NULL OR appended_at < :cutoff)"
        " ORDER BY seq LIMIT :n", {"cutoff": db_time(now - grace), "n": OVERDUE_LISTED})]
    return Unsealed(count, overdue)


@dataclass(frozen=True)
class ChainState:
    ok: bool
    events: int
    head_seq: int
    head_hash: str
    first_broken: int | None = None
    problem: str | None = None


@dataclass(frozen=True)
class Checkpoint:
    """A head kept elsewhere ("seq:hash", seq the place in the chain), so a verify can tell a truncated log."""

    seq: int
    hash: str

    def __str__(self) -> str:
        return f"{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, text: str) -> Checkpoint:
        seq, sep, digest = text.strip().partition(":")
        if not sep or not (seq.isascii() and seq.isdigit()) or len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise ValueError("a checkpoint looks like 1234:<64 hex digits>, as printed by `promo audit checkpoint`")
        return cls(int(seq), digest)


def head(conn: sqlite3.Connection) -> Checkpoint:
    """The last sealed event (unsealed ones are not in the chain yet)."""
    row = conn.execute("SELECT chain_seq, hash FROM audit_events WHERE chain_seq IS NOT NULL"
                       " ORDER BY chain_seq DESC LIMIT 1").fetchone()
    return Checkpoint(row[0], row[1]) if row else Checkpoint(0, GENESIS_HASH)


def verify_chain(conn: sqlite3.Connection, checkpoint: Checkpoint | None = None) -> ChainState:
    """Recompute every sealed event's hash in chain order; name the first event that does not
    fit. With a checkpoint, the log must still reach it with the same hash (else: truncated or
    rewritten). Unsealed events are not in the chain: see `unsealed`."""
    state = _verify_links(conn)
    if not state.ok or checkpoint is None or checkpoint.seq == 0:
        return state
    if state.head_seq < checkpoint.seq:
        return ChainState(False, state.events, state.head_seq, state.head_hash, state.head_seq + 1,
                          f"the log ends at event {state.head_seq} but the checkpoint names event {checkpoint.seq} (truncated)")
    at = conn.execute("SELECT hash FROM audit_events WHERE chain_seq = :s", {"s": checkpoint.seq}).fetchone()
    if at is None or at[0] != checkpoint.hash:
        return ChainState(False, state.events, state.head_seq, state.head_hash, checkpoint.seq,
                          "the event at the checkpoint has another hash (the log was rewritten)")
    return state


def _verify_links(conn: sqlite3.Connection) -> ChainState:
    prev_hash, expected_seq, count = GENESIS_HASH, 1, 0
    rows = conn.execute("SELECT seq, chain_seq, tag, actor, subject, ip, data, created_at, prev_hash, hash FROM audit_events"
                        " WHERE chain_seq IS NOT NULL ORDER BY chain_seq")
    for row in rows:
        place = row["chain_seq"]
        problem = None
        if place != expected_seq:
            problem = f"expected event {expected_seq}, found {place} (deleted or reordered)"
        elif row["prev_hash"] != prev_hash:
            problem = "its link to the previous event does not match"
        elif event_hash(prev_hash, chained_payload(row, place)) != row["hash"]:
            problem = "its content does not match its hash (altered)"
        if problem:
            if row["seq"] != place:
                problem += f" [row id {row['seq']}]"
            return ChainState(False, count, expected_seq - 1, prev_hash, place, problem)
        prev_hash, expected_seq, count = row["hash"], expected_seq + 1, count + 1
    return ChainState(True, count, expected_seq - 1, prev_hash)
