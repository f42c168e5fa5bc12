"""Issue 14, section 5: a staff sign-in never checks a password inside a transaction, so
anonymous attempts cannot hold the single writer; over-limit attempts are refused before any
hashing; unknown addresses cost one check like known ones; concurrency gives an attacker no
more checks than the limits (per IP, per account) allow."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from argon2 import PasswordHasher
from starlette.testclient import TestClient

from promo import passwords
from promo.config import Settings
from promo.db import transaction
from promo.staff import IP_FAILURES_PER_WINDOW, LOCK_AFTER, record_signin, signin_state, update_staff
from promo.staff_signin import StaffSignins
from promo.timeutil import db_time
from tests.support.console import csrf, signed_in
from tests.support.prepared import store_of
from tests.support.staff import PASSWORD, staff, staff_sign_in

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


class Probe:
    """Wraps argon2's hash and verify: counts the calls, and at each one tries to take the
    database's write lock from a connection of its own without waiting. If a transaction is
    open on the server's writer (the old sign-in ran argon2 inside one), that fails."""

    def __init__(self, settings: Settings):
        self.database = settings.database_path
        self.url = settings.database_url
        self.calls: list[str] = []
        self.lock_was_held: list[bool] = []

    def transaction_open(self) -> bool:
        """SQLite: another connection holds the write lock. PostgreSQL: another session of
        this database is inside a transaction (writers do not lock each other out there)."""
        if self.url:
            with psycopg.connect(self.url, autocommit=True) as probe:
                row = probe.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                    " AND pid <> pg_backend_pid() AND xact_start IS NOT NULL").fetchone()
                return bool(row and row[0])
        probe = sqlite3.connect(self.database, timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError:
            return True
        finally:
            probe.close()

    def wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(hasher: PasswordHasher, *args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            self.lock_was_held.append(self.transaction_open())
            return original(hasher, *args, **kwargs)

        return wrapper


@pytest.fixture
def probe(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Iterator[Probe]:
    watched = Probe(settings)
    monkeypatch.setattr(PasswordHasher, "verify", watched.wrap("verify", PasswordHasher.verify))
    monkeypatch.setattr(PasswordHasher, "hash", watched.wrap("hash", PasswordHasher.hash))
    yield watched


def test_no_transaction_is_open_while_a_password_is_hashed_or_checked(client: TestClient, shop: sqlite3.Connection,
                                                                       probe: Probe) -> None:
    staff(shop, "auditor@example.com", "auditor")
    probe.calls.clear(), probe.lock_was_held.clear()
    assert staff_sign_in(client, "nobody@example.com", "whatever password").status_code == 401  # unknown address
    assert staff_sign_in(client, "auditor@example.com", "wrong password!").status_code == 401
    assert staff_sign_in(client, "auditor@example.com").status_code == 303
    assert probe.calls == ["verify"] * 3  # unknown addresses are checked too, against a dummy hash: same cost
    assert probe.lock_was_held == [False] * 3
    client.cookies.clear()
    signed_in(client, shop, "admin")  # an admin adds an account: its new password is hashed
    probe.calls.clear(), probe.lock_was_held.clear()
    added = client.post("/console/staff", data={"csrf": csrf(client, "/console/staff"), "email": "new@example.com",
                                                "role": "support", "password": "a long new passphrase"})
    assert added.status_code == 303, added.text
    assert probe.calls == ["hash"] and probe.lock_was_held == [False]
    client.cookies.clear()
    assert staff_sign_in(client, "new@example.com", "a long new passphrase").status_code == 303


def _attempts(conn: sqlite3.Connection, ip: str, n: int, at: datetime) -> None:
    with transaction(conn):
        conn.executemany("INSERT INTO staff_signin_attempts (email, ip, succeeded, attempted_at) VALUES (?, ?, 0, ?)",
                         [(f"x{i}@example.com", ip, db_time(at)) for i in range(n)])


def test_over_limit_attempts_are_refused_before_any_hashing(client: TestClient, shop: sqlite3.Connection, probe: Probe) -> None:
    staff(shop, "auditor@example.com", "auditor")
    _attempts(shop, "testclient", IP_FAILURES_PER_WINDOW, datetime.now(UTC))
    probe.calls.clear()
    refused = staff_sign_in(client, "auditor@example.com")
    assert refused.status_code == 429 and "from your address" in refused.text
    assert probe.calls == []  # the limit is checked first, and costs no argon2
    outcomes = [r[0] for r in shop.execute("SELECT data FROM audit_events WHERE tag = 'staff:signin:failed'")]
    assert outcomes == ['{"outcome":"too_many"}']


def test_a_locked_account_is_refused_before_any_hashing(client: TestClient, shop: sqlite3.Connection, probe: Probe) -> None:
    staff(shop, "auditor@example.com", "auditor")
    with transaction(shop):
        shop.execute("UPDATE staff SET locked_until = :t", {"t": db_time(datetime.now(UTC) + timedelta(minutes=5))})
    probe.calls.clear()
    assert staff_sign_in(client, "auditor@example.com").status_code == 429
    assert probe.calls == []


def test_too_many_checks_in_hand_answer_503_without_hashing(client: TestClient, shop: sqlite3.Connection, probe: Probe,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    staff(shop, "auditor@example.com", "auditor")
    monkeypatch.setattr(passwords, "MAX_IN_HAND", 0)
    probe.calls.clear()
    busy = staff_sign_in(client, "auditor@example.com")
    assert busy.status_code == 503 and busy.headers["retry-after"] == "5" and "try again in a few seconds" in busy.text
    assert probe.calls == []
    monkeypatch.setattr(passwords, "MAX_IN_HAND", 64)
    assert staff_sign_in(client, "auditor@example.com").status_code == 303


async def _burst(settings: Settings, attempts: list[tuple[str, str, str]]) -> list[object]:
    signins = StaffSignins()
    async with store_of(settings) as db:
        return await asyncio.gather(*(signins.sign_in(db, email=email, password=password, now=datetime.now(UTC), ip=ip)
                                      for email, password, ip in attempts))


def test_a_concurrent_burst_from_one_ip_gets_no_more_checks_than_the_limit(settings: Settings, shop: sqlite3.Connection,
                                                                          probe: Probe) -> None:
    attempts = [(f"nobody{i}@example.com", "not the password", "198.51.100.7") for i in range(50)]
    outcomes = asyncio.run(_burst(settings, attempts))
    assert outcomes.count("invalid") == IP_FAILURES_PER_WINDOW and outcomes.count("too_many") == 50 - IP_FAILURES_PER_WINDOW
    assert probe.calls == ["verify"] * IP_FAILURES_PER_WINDOW
    assert shop.execute("SELECT COUNT(*) FROM staff_signin_attempts").fetchone()[0] == 50  # every attempt recorded


def test_concurrent_guesses_on_one_account_get_only_lock_after_checks(settings: Settings, shop: sqlite3.Connection,
                                                                     probe: Probe) -> None:
    staff(shop, "auditor@example.com", "auditor")
    probe.calls.clear()
    attempts = [("auditor@example.com", f"guess number {i}", f"198.51.100.{i}") for i in range(20)]
    attempts.append(("auditor@example.com", PASSWORD, "203.0.113.1"))  # the right one, too late
    outcomes = asyncio.run(_burst(settings, attempts))
    assert outcomes[:LOCK_AFTER] == ["invalid"] * LOCK_AFTER and set(outcomes[LOCK_AFTER:]) == {"locked"}
    assert probe.calls == ["verify"] * LOCK_AFTER
    assert shop.execute("SELECT COUNT(*) FROM audit_events WHERE tag = 'staff:account:locked'").fetchone()[0] == 1


def test_an_account_changed_while_its_password_was_checked_is_not_signed_in(shop: sqlite3.Connection) -> None:
    staff(shop, "auditor@example.com", "auditor")
    staff(shop, "admin@example.com", "admin")
    checked = signin_state(shop, address="auditor@example.com", ip="198.51.100.7", now=NOW)
    assert checked.refusal is None and checked.password_hash
    admin_row = shop.execute("SELECT id, email, role FROM staff WHERE email = 'admin@example.com'").fetchone()
    from promo.staff import StaffMember
    with transaction(shop):  # disabled between the check and the write
        update_staff(shop, checked.staff_id or 0, role=None, disabled=True, actor=StaffMember(*admin_row), now=NOW, ip=None)
    with transaction(shop):
        assert record_signin(shop, address="auditor@example.com", ip="198.51.100.7", now=NOW, checked=checked,
                             outcome="ok") == "invalid"
    assert shop.execute("SELECT COUNT(*) FROM staff_sessions").fetchone()[0] == 0
