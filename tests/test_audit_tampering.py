"""Any change to sealed audit events is named by verify (issue 18): Hypothesis picks the
tampering (edit any field, edit and rehash, delete, swap places or row ids, truncate, insert a
forged event, reorder) and where; verify, given the checkpoint an auditor kept, must name the
first event that no longer fits. Each example runs in a transaction rolled back afterwards,
on a chain whose row ids differ from their places (rolled-back appends burn ids on
PostgreSQL, and one lower id commits late)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from promo.audit import Checkpoint, append_event, chained_payload, event_hash, head, seal_pending, verify_chain
from promo.config import Settings
from promo.db import transaction
from tests.support.prepared import connect_to

AT = datetime(2013, 8, 1, tzinfo=UTC)
EDITS = {  # column -> a value no event of this chain holds
    "tag": "'test:forged:made'", "actor": "'mallory'", "subject": "'forged:1'", "ip": "'203.0.113.66'",
    "data": "'{\"forged\":true}'", "created_at": "'2014-01-01T00:00:00.000000Z'",
}


@dataclass(frozen=True)
class Chain:
    conn: Any
    ids: list[int]  # row id of each place (ids[0] is place 1)
    checkpoint: Checkpoint

    @property
    def length(self) -> int:
        return len(self.ids)

    def run(self, sql: str, params: dict[str, Any] | None = None) -> None:
        self.conn.execute(sql, params or {})

    def move(self, moves: dict[int, int]) -> None:
        """Give rows new places ({old place: new place}) through negative places, as UNIQUE needs."""
        for old in moves:
            self.run("UPDATE audit_events SET chain_seq = :t WHERE chain_seq = :p", {"t": -old, "p": old})
        for old, new in moves.items():
            self.run("UPDATE audit_events SET chain_seq = :n WHERE chain_seq = :t", {"n": new, "t": -old})

    def forged_row(self, place: int, prev_hash: str, *, rehash: bool) -> None:
        row = {"seq": 10_000_000 + place, "tag": "test:forged:made", "actor": "mallory", "subject": "forged",
               "ip": None, "data": "{}", "created_at": "2013-08-01T00:00:00.000000Z"}
        digest = event_hash(prev_hash, chained_payload(row, place)) if rehash else "e" * 64
        self.run("INSERT INTO audit_events (seq, chain_seq, tag, actor, subject, ip, data, created_at, prev_hash, hash)"
                 " VALUES (:seq, :place, :tag, :actor, :subject, :ip, :data, :created_at, :prev, :hash)",
                 {**row, "place": place, "prev": prev_hash, "hash": digest})

    def hash_at(self, place: int) -> str:
        return str(self.conn.execute("SELECT hash FROM audit_events WHERE chain_seq = :p", {"p": place}).fetchone()[0])


@pytest.fixture
def chain(settings: Settings, conn: Any) -> Iterator[Chain]:
    def add(c: Any, n: int) -> None:
        append_event(c, tag=f"test:event:{'made' if n % 2 else 'seen'}", actor=f"account:u{n}@example.com",
                     subject=f"thing:{n}", data={"n": n, "list": [n, str(n)]}, at=AT + timedelta(seconds=n),
                     ip=None if n % 3 else "192.0.2.1")

    late = connect_to(settings) if settings.database_url else None
    for n in range(1, 13):
        if n == 4 and late is not None:  # a lower id that commits after higher ones (PostgreSQL)
            late.execute("BEGIN")
            add(late, n)
            continue
        with transaction(conn):
            add(conn, n)
        if n % 4 == 0:  # a rolled-back change: its event never existed
            conn.execute("BEGIN")
            add(conn, 100 + n)
            conn.execute("ROLLBACK")
        if n == 8:
            seal_pending(conn)
    if late is not None:
        late.execute("COMMIT")
        late.close()
    seal_pending(conn)
    ids = [r[0] for r in conn.execute("SELECT seq FROM audit_events WHERE chain_seq IS NOT NULL ORDER BY chain_seq")]
    state = verify_chain(conn)
    assert state.ok and state.events == len(ids)
    yield Chain(conn, ids, head(conn))


Tamper = tuple[str, Callable[[Chain], None], int]  # (what was done, do it, the place verify must name)


@st.composite
def tampering(draw: st.DrawFn, n: int) -> Tamper:
    kind = draw(st.sampled_from(["edit", "edit_rehash", "delete", "swap_places", "swap_ids", "truncate",
                                 "insert_rehash", "insert_bogus", "reorder"]))
    place = draw(st.integers(1, n))
    if kind == "edit":
        column = draw(st.sampled_from(sorted(EDITS)))
        return (f"edit {column} at {place}",
                lambda c: c.run(f"UPDATE audit_events SET {column} = {EDITS[column]} WHERE chain_seq = :p", {"p": place}),
                place)
    if kind == "edit_rehash":  # the forger recomputes that event's hash: the next link breaks (or the checkpoint)
        def edit_rehash(c: Chain) -> None:
            c.run("UPDATE audit_events SET actor = 'mallory' WHERE chain_seq = :p", {"p": place})
            row = c.conn.execute("SELECT seq, tag, actor, subject, ip, data, created_at, prev_hash FROM audit_events"
                                 " WHERE chain_seq = :p", {"p": place}).fetchone()
            c.run("UPDATE audit_events SET hash = :h WHERE chain_seq = :p",
                  {"h": event_hash(row["prev_hash"], chained_payload(row, place)), "p": place})
        return f"edit and rehash {place}", edit_rehash, min(place + 1, n)
    if kind == "delete":  # the last one deleted is a truncation: the checkpoint names it
        return f"delete {place}", lambda c: c.run("DELETE FROM audit_events WHERE chain_seq = :p", {"p": place}), \
            place + 1 if place < n else n
    if kind == "truncate":
        keep = place - 1
        return f"truncate after {keep}", lambda c: c.run("DELETE FROM audit_events WHERE chain_seq > :k", {"k": keep}), keep + 1
    if kind in ("swap_places", "swap_ids"):
        other = draw(st.integers(1, n).filter(lambda x: x != place))
        first, second = sorted((place, other))
        if kind == "swap_places":
            return f"swap places {first} and {second}", lambda c: c.move({first: second, second: first}), first

        def swap_ids(c: Chain) -> None:
            a, b = c.ids[first - 1], c.ids[second - 1]
            c.run("UPDATE audit_events SET seq = :t WHERE seq = :a", {"t": -a, "a": a})
            c.run("UPDATE audit_events SET seq = :a WHERE seq = :b", {"a": a, "b": b})
            c.run("UPDATE audit_events SET seq = :b WHERE seq = :t", {"b": b, "t": -a})
        return f"swap row ids of {first} and {second}", swap_ids, first
    if kind == "insert_rehash":  # a forged event with a correct hash in the middle: the one it displaced breaks
        def insert(c: Chain) -> None:
            c.move({p: p + 1 for p in range(place, n + 1)})
            c.forged_row(place, c.hash_at(place - 1) if place > 1 else "0" * 64, rehash=True)
        return f"insert a rehashed forgery at {place}", insert, place + 1
    if kind == "insert_bogus":
        return "append a forgery", lambda c: c.forged_row(n + 1, c.hash_at(n), rehash=False), n + 1
    # reorder: a random permutation of a window of places
    width = draw(st.integers(2, min(5, n)))
    start = draw(st.integers(1, n - width + 1))
    window = list(range(start, start + width))
    order = draw(st.permutations(window).filter(lambda p: list(p) != window))
    moves = {old: new for old, new in zip(window, order, strict=True) if old != new}
    return f"reorder {window} as {list(order)}", lambda c: c.move(moves), min(moves)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_any_tampering_with_sealed_events_is_named_by_verify(chain: Chain, data: st.DataObject) -> None:
    what, tamper, expected = data.draw(tampering(chain.length))
    chain.conn.execute("BEGIN")
    try:
        tamper(chain)
        state = verify_chain(chain.conn, chain.checkpoint)
    finally:
        chain.conn.execute("ROLLBACK")
    assert not state.ok, what
    assert state.first_broken == expected, (what, state)


def test_the_untouched_chain_verifies_against_its_checkpoint(chain: Chain, settings: Settings) -> None:
    state = verify_chain(chain.conn, chain.checkpoint)
    assert state.ok and state.head_seq == chain.length == chain.checkpoint.seq
    moved = [tuple(r) for r in chain.conn.execute("SELECT seq, chain_seq FROM audit_events WHERE seq <> chain_seq")]
    # PostgreSQL: burnt ids and a late commit put rows at places other than their ids, so the
    # hashes above cover ids too; SQLite (one writer) chains each event at its id.
    assert bool(moved) == bool(settings.database_url), moved
