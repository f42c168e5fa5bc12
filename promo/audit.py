"""Append-only, hash-chained audit events.

Each event's hash covers the previous event's hash and a canonical JSON encoding of the
event (including its sequence number), so any alteration, deletion or reordering breaks
the chain from that event on. Events are written in the same transaction as the change
they record. Tags read 'source:subject:action' (Warehouse's habit).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from promo.backends import dialect_of
from promo.timeutil import db_time

GENESIS_HASH = "0" * 64


def canonical(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(prev_hash: str, payload: dict[str, Any]) -> str:
    return hashlib.sha256(f"{prev_hash}\n{canonical(payload)}".encode()).hexdigest()


def append_event(
    conn: sqlite3.Connection,
    *,
    tag: str,
    actor: str,
    subject: str,
    data: dict[str, Any],
    at: datetime,
    ip: str | None = None,
) -> int:
    """Record one event (call inside the transaction that makes the change)."""
    chain_lock = dialect_of(conn).chain_lock
    if chain_lock:  # PostgreSQL: concurrent writers queue here for the one head (issue 18 removes the queue)
        conn.execute(chain_lock)
    head = conn.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev_hash = (head[0] + 1, head[1]) if head else (1, GENESIS_HASH)
    payload = {
        "seq": seq,
        "tag": tag,
        "actor": actor,
        "subject": subject,
        "ip": ip,
        "data": data,
        "created_at": db_time(at),
    }
    conn.execute(
        "INSERT INTO audit_events (seq, tag, actor, subject, ip, data, created_at, prev_hash, hash)"
        " VALUES (:seq, :tag, :actor, :subject, :ip, :data, :created_at, :prev_hash, :hash)",
        {**payload, "data": canonical(data), "prev_hash": prev_hash, "hash": event_hash(prev_hash, payload)},
    )
    return seq


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
    """A head kept elsewhere ("seq:hash"), so a verify can tell a truncated log."""

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
    row = conn.execute("SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    return Checkpoint(row[0], row[1]) if row else Checkpoint(0, GENESIS_HASH)


def verify_chain(conn: sqlite3.Connection, checkpoint: Checkpoint | None = None) -> ChainState:
    """Recompute every hash in order; name the first event that does not fit. With a
    checkpoint, the log must still reach it with the same hash (else: truncated or rewritten)."""
    state = _verify_links(conn)
    if not state.ok or checkpoint is None or checkpoint.seq == 0:
        return state
    if state.head_seq < checkpoint.seq:
        return ChainState(False, state.events, state.head_seq, state.head_hash, state.head_seq + 1,
                          f"the log ends at event {state.head_seq} but the checkpoint names event {checkpoint.seq} (truncated)")
    at = conn.execute("SELECT hash FROM audit_events WHERE seq = :s", {"s": checkpoint.seq}).fetchone()
    if at is None or at[0] != checkpoint.hash:
        return ChainState(False, state.events, state.head_seq, state.head_hash, checkpoint.seq,
                          "the event at the checkpoint has another hash (the log was rewritten)")
    return state


def _verify_links(conn: sqlite3.Connection) -> ChainState:
    prev_hash, expected_seq, count = GENESIS_HASH, 1, 0
    rows = conn.execute(
        "SELECT seq, tag, actor, subject, ip, data, created_at, prev_hash, hash FROM audit_events ORDER BY seq"
    )
    for row in rows:
        payload = {
            "seq": row["seq"], "tag": row["tag"], "actor": row["actor"], "subject": row["subject"],
            "ip": row["ip"], "data": json.loads(row["data"]), "created_at": row["created_at"],
        }
        problem = None
        if row["seq"] != expected_seq:
            problem = f"expected event {expected_seq}, found {row['seq']} (deleted or reordered)"
        elif row["prev_hash"] != prev_hash:
            problem = "its link to the previous event does not match"
        elif event_hash(prev_hash, payload) != row["hash"]:
            problem = "its content does not match its hash (altered)"
        if problem:
            return ChainState(False, count, expected_seq - 1, prev_hash, row["seq"], problem)
        prev_hash, expected_seq, count = row["hash"], expected_seq + 1, count + 1
    return ChainState(True, count, expected_seq - 1, prev_hash)
