"""The audit chain without a hot row (issue 18): on PostgreSQL events are appended unsealed
and chained after COMMIT by one sealer at a time; SQLite seals at append. Either way every
committed event ends up in one chain that verifies, in commit order."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from promo.app import create_app
from promo.audit import (
    GENESIS_HASH,
    Checkpoint,
    SealingRaced,
    append_event,
    canonical,
    event_hash,
    head,
    seal,
    seal_pending,
    unsealed,
    verify_chain,
)
from promo.audit_seal import AuditSealer
from promo.backends.copy import copy_database
from promo.config import Settings
from promo.db import connect, transaction
from promo.supervisor import Supervised
from promo.timeutil import utcnow
from tests.support.cli import Cli
from tests.support.polling import await_until, wait_until
from tests.support.prepared import connect_to, store_of

AT = datetime(2013, 8, 1, tzinfo=UTC)
TWO_WRITERS = "two write transactions open at once: only PostgreSQL has them (SQLite's writers take turns)"


def add(conn: Any, n: int, tag: str = "test:event:made") -> int:
    """An event about thing n; its id (the newest of thing n's: append_event returns none)."""
    append_event(conn, tag=tag, actor="system", subject=f"thing:{n}", data={"n": n}, at=AT)
    return int(conn.execute("SELECT max(seq) FROM audit_events WHERE subject = ?", (f"thing:{n}",)).fetchone()[0])


def chain_subjects(conn: Any) -> list[str]:
    return [r[0] for r in conn.execute("SELECT subject FROM audit_events WHERE chain_seq IS NOT NULL ORDER BY chain_seq")]


def test_appends_from_several_connections_at_once_all_join_one_chain(settings: Settings, conn: Any) -> None:
    before = conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        own = connect_to(settings)
        try:
            start.wait()
            for t in range(25):  # two events per transaction, as a redemption and its outbox write
                with transaction(own):
                    add(own, 1000 * w + 2 * t)
                    add(own, 1000 * w + 2 * t + 1)
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    seal_pending(conn)
    state = verify_chain(conn)
    assert state.ok and state.events == before + 200 == state.head_seq
    assert unsealed(conn, utcnow()).count == 0
    subjects = chain_subjects(conn)[before:]
    for w in range(4):  # each writer's events keep their order in the chain
        own = [s for s in subjects if int(s.split(":")[1]) // 1000 == w]
        assert own == [f"thing:{1000 * w + i}" for i in range(50)]


@pytest.mark.postgresql_only(TWO_WRITERS)
def test_an_open_transaction_holding_an_event_does_not_hold_up_another_writer(settings: Settings, conn: Any) -> None:
    """The hot row is gone: before issue 18 the second writer waited on the chain's lock until
    the first committed (here it would fail on its lock timeout instead)."""
    first, second = connect_to(settings), connect_to(settings)
    try:
        first.execute("BEGIN")
        add(first, 1)
        second.execute("BEGIN")
        second.execute("SET LOCAL lock_timeout = '1s'")
        add(second, 2)
        second.execute("COMMIT")
        first.execute("COMMIT")
    finally:
        first.close()
        second.close()
    seal_pending(conn)
    assert verify_chain(conn).ok and chain_subjects(conn)[-2:] == ["thing:1", "thing:2"]


@pytest.mark.postgresql_only(TWO_WRITERS)
def test_a_lower_id_that_commits_late_is_sealed_in_a_later_round_after_the_higher_one(settings: Settings, conn: Any) -> None:
    seal_pending(conn)
    late, early = connect_to(settings), connect_to(settings)
    try:
        late.execute("BEGIN")
        late_id = add(late, 1, "test:late:made")  # its id is drawn now, its COMMIT comes last
        with transaction(early):
            early_id = add(early, 2, "test:early:made")
        assert late_id < early_id
        assert seal_pending(conn) == 1  # only what has committed: the higher id
        sealed_first = head(conn)
        assert verify_chain(conn).ok
        late.execute("COMMIT")
    finally:
        late.close()
        early.close()
    assert unsealed(conn, utcnow()).count == 1  # not skipped for being below the sealed one
    assert seal_pending(conn) == 1
    rows = conn.execute("SELECT seq, chain_seq FROM audit_events WHERE seq IN (:a, :b) ORDER BY chain_seq",
                        {"a": late_id, "b": early_id}).fetchall()
    assert [(r[0], r[1]) for r in rows] == [(early_id, sealed_first.seq), (late_id, sealed_first.seq + 1)]  # commit order
    state = verify_chain(conn, sealed_first)  # the earlier head is still a prefix of the chain
    assert state.ok and state.head_seq == sealed_first.seq + 1


@pytest.mark.sqlite_only("SQLite seals at append; PostgreSQL's sealing is the rest of this file")
def test_sqlite_seals_each_event_as_it_is_appended(conn: sqlite3.Connection) -> None:
    with transaction(conn):
        seq = add(conn, 1)
        row = conn.execute("SELECT chain_seq, prev_hash, hash FROM audit_events WHERE seq = ?", (seq,)).fetchone()
        assert row[0] is not None and len(row[2]) == 64
    assert seal_pending(conn) == 0 and verify_chain(conn).ok


@pytest.mark.postgresql_only("one sealer at a time: SQLite has no sealer")
def test_one_sealer_at_a_time_and_a_round_rolled_back_leaves_its_events_to_the_next(settings: Settings, conn: Any) -> None:
    for n in range(5):
        with transaction(conn):
            add(conn, n)
    first, second = connect_to(settings), connect_to(settings)
    try:
        first.execute("BEGIN")
        assert seal(first) >= 5
        second.execute("BEGIN")
        assert seal(second) == 0  # the other sealer holds the chain: skip this round, do not queue
        second.execute("ROLLBACK")
        first.execute("ROLLBACK")  # a sealer that dies mid-round: nothing half-sealed stays behind
    finally:
        first.close()
        second.close()
    assert unsealed(conn, utcnow()).count >= 5
    assert seal_pending(conn) >= 5 and verify_chain(conn).ok and unsealed(conn, utcnow()).count == 0


class FailsFirst:
    """A store whose first write fails as a bug would: the supervisor must restart the sealer."""

    def __init__(self, db: Any):
        self.db, self.failed = db, False

    async def write(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if not self.failed:
            self.failed = True
            raise RuntimeError("a bug in a round")
        return await self.db.write(fn, *args, **kwargs)


@pytest.mark.postgresql_only("the sealer worker runs on PostgreSQL only")
async def test_the_sealer_worker_seals_new_events_and_is_restarted_after_a_failure(settings: Settings, conn: Any) -> None:
    async with store_of(settings) as db:
        sealer = AuditSealer(FailsFirst(db))  # type: ignore[arg-type]
        supervised = Supervised("audit_sealer", sealer.run, stop=sealer.stop, first_delay=0.05)
        supervised.start()
        try:
            for n in range(3):
                with transaction(conn):
                    add(conn, n)
            await await_until(lambda: unsealed(conn, utcnow()).count == 0, 10, "the restarted sealer seals")
            assert supervised.restarts == 1 and supervised.last_error == "RuntimeError" and supervised.state == "up"
        finally:
            await supervised.stop()
        assert supervised.state == "stopped"
        with transaction(conn):  # appended while no sealer runs: waits, unsealed
            add(conn, 99)
        assert unsealed(conn, utcnow()).count == 1
        again = AuditSealer(db)  # a new sealer (a restarted process) picks them up
        task = asyncio.create_task(again.run())
        await await_until(lambda: unsealed(conn, utcnow()).count == 0, 10, "a new sealer seals what waited")
        again.stop()
        await task
    assert verify_chain(conn).ok and chain_subjects(conn)[-1] == "thing:99"


def test_the_service_lists_its_sealer_in_readyz_and_seals_what_commits(settings: Settings, conn: Any) -> None:
    with TestClient(create_app(settings)) as client:
        body = client.get("/readyz").json()
        with transaction(conn):
            add(conn, 1)
        wait_until(lambda: unsealed(conn, utcnow()).count == 0, 10, "the service's sealer seals the event")
    if settings.database_url:
        assert body["audit_sealer"] == "up"
    else:
        assert "audit_sealer" not in body  # SQLite seals at append: no worker to watch
    assert verify_chain(conn).ok and chain_subjects(conn)[-1] == "thing:1"


def test_verify_no_seal_names_the_events_left_out_of_the_chain(cli: Cli) -> None:
    conn = cli.connect()
    try:
        with transaction(conn):
            for n in range(3):
                add(conn, n)
        sealed_now = cli("audit", "verify", "--no-seal")
        if cli.url:  # PostgreSQL: three fresh events wait for a sealer; none runs here
            assert sealed_now.returncode == 0 and "3 appended in the last 5 s not sealed yet" in sealed_now.stdout
            conn.execute("UPDATE audit_events SET appended_at = appended_at - interval '6 seconds'"
                         " WHERE seq IN (SELECT seq FROM audit_events ORDER BY seq LIMIT 2)")
            ids = [r[0] for r in conn.execute("SELECT seq FROM audit_events ORDER BY seq LIMIT 2")]
        else:  # SQLite: sealed at append; a row written past the service is outside the chain
            assert sealed_now.returncode == 0 and sealed_now.stdout.startswith("ok: 3 events")
            conn.execute("INSERT INTO audit_events (tag, actor, subject, data, created_at, prev_hash, hash)"
                         " VALUES ('test:forged:made', 'mallory', 'x', '{}', '2013-08-01T00:00:00.000000Z', :h, :h)",
                         {"h": "f" * 64})
            ids = [conn.execute("SELECT max(seq) FROM audit_events").fetchone()[0]]
        refused = cli("audit", "verify", "--no-seal")
        assert refused.returncode == 1
        assert f"were appended more than 5 s ago (is a sealer running?): row ids {', '.join(map(str, ids))}" in refused.stderr
        if cli.url:
            healed = cli("audit", "verify")  # seals first
            assert healed.returncode == 0 and healed.stdout.startswith("ok: 3 events, head 3:")
            assert cli("audit", "verify", "--no-seal").returncode == 0
        else:  # nothing seals it on SQLite: it stays named
            assert cli("audit", "verify").returncode == 1
    finally:
        conn.close()


@pytest.mark.postgresql_only("a copy from PostgreSQL, whose events may still be unsealed")
def test_a_copy_from_postgresql_seals_its_source_first_so_the_head_covers_every_event(settings: Settings, conn: Any,
                                                                                       tmp_path: Path) -> None:
    with transaction(conn):
        for n in range(3):
            add(conn, n)
    total = conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
    assert settings.database_url is not None
    report = copy_database(settings.database_url, f"sqlite:///{tmp_path / 'back.sqlite3'}", base=tmp_path)
    assert report.head.seq == total and unsealed(conn, utcnow()).count == 0
    back = connect(tmp_path / "back.sqlite3")
    try:
        state = verify_chain(back)
        assert state.ok and (state.head_seq, state.head_hash) == (report.head.seq, report.head.hash)
        with transaction(back):  # SQLite goes on from there, sealing at append
            add(back, 99)
        assert verify_chain(back).head_seq == total + 1
    finally:
        back.close()


class DeletesBeforeTheUpdate:
    """A connection on which, between a round's read and its write, another connection deletes
    one of the unsealed events the round read (a row removed past the service)."""

    def __init__(self, conn: Any, other: Any, victim: int):
        self.conn, self.other, self.victim = conn, other, victim
        self.dialect = conn.dialect

    def execute(self, sql: str, params: Any = ()) -> Any:
        if sql.startswith("UPDATE audit_events SET chain_seq"):
            self.other.execute("DELETE FROM audit_events WHERE seq = :s", {"s": self.victim})
        return self.conn.execute(sql, params)


@pytest.mark.postgresql_only("a round that races a deletion: SQLite has no sealer")
def test_a_round_whose_events_vanish_midway_is_undone_and_leaves_no_gap(settings: Settings, conn: Any) -> None:
    seal_pending(conn)
    with transaction(conn):
        ids = [add(conn, n) for n in range(3)]
    other = connect_to(settings)
    try:
        conn.execute("BEGIN")
        with pytest.raises(SealingRaced):
            seal(DeletesBeforeTheUpdate(conn, other, ids[1]))  # type: ignore[arg-type]
        conn.execute("ROLLBACK")
    finally:
        other.close()
    assert seal_pending(conn) == 2 and verify_chain(conn).ok  # the two left, without a hole for the third


def test_events_chained_before_migration_0024_still_verify_and_the_chain_goes_on(settings: Settings,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """0024 puts every existing event at its id (chain_seq = seq): their hashes, computed as
    up to 0023 (the id as "seq"), still verify, and new events chain on from the old head."""
    import promo.backends.pg_schema
    import promo.migrate
    from promo.backends.store import migrate

    module = promo.backends.pg_schema if settings.database_url else promo.migrate
    every = module.available_migrations()
    monkeypatch.setattr(module, "available_migrations", lambda: [m for m in every if m[0] <= 23])
    conn = connect_to(settings)
    try:
        migrate(conn)
        prev = GENESIS_HASH
        with transaction(conn):  # the chain as promo/audit.py wrote it up to 0023
            for seq in range(1, 6):
                payload = {"seq": seq, "tag": "test:old:made", "actor": "system", "subject": f"old:{seq}", "ip": None,
                           "data": {"n": seq}, "created_at": "2013-08-01T00:00:00.000000Z"}
                digest = event_hash(prev, payload)
                conn.execute("INSERT INTO audit_events (seq, tag, actor, subject, ip, data, created_at, prev_hash, hash)"
                             " VALUES (:seq, :tag, :actor, :subject, :ip, :data, :created_at, :prev, :hash)",
                             {**payload, "data": canonical(payload["data"]), "prev": prev, "hash": digest})
                prev = digest
        if settings.database_url:  # the ids were given: the identity goes on after them, as the copy sets it
            conn.execute("SELECT setval(pg_get_serial_sequence('audit_events', 'seq'), 5)")
        monkeypatch.setattr(module, "available_migrations", lambda: every)
        assert "0024_audit_sealing.sql" in migrate(conn)
        assert verify_chain(conn).ok
        assert head(conn).seq == 5 and head(conn).hash == prev
        with transaction(conn):
            add(conn, 6)
        seal_pending(conn)
        state = verify_chain(conn, Checkpoint(5, prev))
        assert state.ok and state.events == 6
    finally:
        conn.close()
