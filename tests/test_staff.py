"""promo/staff.py on a real SQLite file: staff accounts, the sign-in's state and outcome
(the per-IP limit, the lock after LOCK_AFTER failures, an account changed between the
password check and the write), staff sessions' limits, and the admins' changes to accounts
(never their own, never the last admin, disabling ends sessions), each audited."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from promo.db import transaction
from promo.errors import InputError, NotFound
from promo.staff import (
    IP_FAILURES_PER_WINDOW,
    IP_WINDOW,
    LOCK_AFTER,
    LOCK_FOR,
    MIN_PASSWORD,
    StaffMember,
    add_staff,
    check_new_password,
    end_staff_session,
    load_staff_session,
    record_signin,
    signin_state,
    update_staff,
)
from tests.support.console import audit_changes

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
IDLE, ABSOLUTE = timedelta(minutes=30), timedelta(hours=12)


def add(conn: sqlite3.Connection, email: str, role: str = "marketer", password_hash: str = "hash-1") -> StaffMember:
    with transaction(conn):
        return add_staff(conn, email=email, role=role, password_hash=password_hash, now=T0, actor="cli")


def sign_in(conn: sqlite3.Connection, email: str, *, right: bool, now: datetime = T0, ip: str | None = "192.0.2.9") -> object:
    """A sign-in as the server does it: read the state, check the password (here: known to be
    right or wrong), write the outcome."""
    state = signin_state(conn, address=email, ip=ip, now=now)
    outcome = state.refusal or ("ok" if right and state.password_hash else "invalid")
    with transaction(conn):
        return record_signin(conn, address=email, ip=ip, now=now, checked=state, outcome=outcome)


def test_a_staff_account_has_a_normalised_address_a_known_role_and_is_audited(conn: sqlite3.Connection) -> None:
    member = add(conn, "Mia@Example.COM", "auditor")
    assert (member.email, member.role) == ("mia@example.com", "auditor")
    assert audit_changes(conn, "staff:account:created") == [{"role": "auditor"}]
    with pytest.raises(InputError) as duplicate:
        add(conn, "mia@example.com")
    assert duplicate.value.errors[0].field == "email" and "already has a staff account" in duplicate.value.errors[0].message
    with pytest.raises(InputError) as role:
        add(conn, "other@example.com", "owner")
    assert role.value.errors[0].field == "role" and "admin, marketer, auditor, support" in role.value.errors[0].message


def test_a_new_password_must_be_long_enough() -> None:
    assert check_new_password("x" * MIN_PASSWORD) == "x" * MIN_PASSWORD
    with pytest.raises(InputError) as short:
        check_new_password("x" * (MIN_PASSWORD - 1))
    assert short.value.errors[0].field == "password"


def test_a_right_password_opens_a_session_that_ends_when_idle_too_long_or_too_old(conn: sqlite3.Connection) -> None:
    member = add(conn, "m@example.com")
    result = sign_in(conn, "m@example.com", right=True)
    assert isinstance(result, tuple)
    raw, session = result
    assert session.staff == member
    assert load_staff_session(conn, raw, now=T0 + IDLE - timedelta(seconds=1), idle=IDLE, absolute=ABSOLUTE) is not None
    assert load_staff_session(conn, raw, now=T0 + IDLE, idle=IDLE, absolute=ABSOLUTE) is None
    assert load_staff_session(conn, raw, now=T0, idle=ABSOLUTE * 2, absolute=timedelta(0)) is None
    with transaction(conn):
        end_staff_session(conn, session.id_hash, now=T0)
    assert load_staff_session(conn, raw, now=T0, idle=IDLE, absolute=ABSOLUTE) is None
    assert audit_changes(conn, "staff:signin:succeeded") == [{"outcome": "ok"}]


def test_the_account_locks_after_repeated_failures_and_opens_again_after_the_lock(conn: sqlite3.Connection) -> None:
    add(conn, "m@example.com")
    assert [sign_in(conn, "m@example.com", right=False, ip=None) for _ in range(LOCK_AFTER)] == ["invalid"] * LOCK_AFTER
    assert sign_in(conn, "m@example.com", right=True, ip=None) == "locked"  # the right password changes nothing now
    assert audit_changes(conn, "staff:account:locked")[-1]["after_failures"] == LOCK_AFTER
    assert isinstance(sign_in(conn, "m@example.com", right=True, now=T0 + LOCK_FOR, ip=None), tuple)


def test_an_address_with_too_many_failures_is_refused_before_any_password_check(conn: sqlite3.Connection) -> None:
    for n in range(IP_FAILURES_PER_WINDOW):
        assert sign_in(conn, f"nobody{n}@example.com", right=False) == "invalid"  # unknown accounts count too
    add(conn, "m@example.com")
    assert signin_state(conn, address="m@example.com", ip="192.0.2.9", now=T0).refusal == "too_many"
    assert signin_state(conn, address="m@example.com", ip="192.0.2.10", now=T0).refusal is None
    assert signin_state(conn, address="m@example.com", ip="192.0.2.9", now=T0 + IP_WINDOW + timedelta(seconds=1)).refusal is None


def test_a_password_changed_between_the_check_and_the_write_does_not_sign_in(conn: sqlite3.Connection) -> None:
    add(conn, "m@example.com")
    state = signin_state(conn, address="m@example.com", ip=None, now=T0)
    with transaction(conn):
        conn.execute("UPDATE staff SET password_hash = 'hash-2' WHERE email = 'm@example.com'")
        assert record_signin(conn, address="m@example.com", ip=None, now=T0, checked=state, outcome="ok") == "invalid"


def test_an_admin_changes_others_but_not_themselves_nor_the_last_admin(conn: sqlite3.Connection) -> None:
    admin = add(conn, "admin@example.com", "admin")
    other = add(conn, "m@example.com")
    with pytest.raises(InputError) as own, transaction(conn):
        update_staff(conn, admin.id, role="marketer", disabled=None, actor=admin, now=T0, ip=None)
    assert own.value.errors[0].field == "account"
    with transaction(conn):
        assert update_staff(conn, other.id, role="admin", disabled=None, actor=admin, now=T0, ip=None) == {"role": ["marketer", "admin"]}
    with transaction(conn):  # two admins now: the first may be made a marketer by the second
        update_staff(conn, admin.id, role="marketer", disabled=None, actor=other, now=T0, ip=None)
    with pytest.raises(InputError) as last, transaction(conn):
        update_staff(conn, other.id, role=None, disabled=True, actor=admin, now=T0, ip=None)
    assert last.value.errors[0].field == "role" and "last active admin" in last.value.errors[0].message
    with pytest.raises(NotFound), transaction(conn):
        update_staff(conn, other.id + 100, role=None, disabled=True, actor=admin, now=T0, ip=None)
    assert [c["changes"] for c in audit_changes(conn, "staff:account:changed")] == [
        {"role": ["marketer", "admin"]}, {"role": ["admin", "marketer"]}]


def test_disabling_an_account_ends_its_sessions(conn: sqlite3.Connection) -> None:
    admin = add(conn, "admin@example.com", "admin")
    add(conn, "m@example.com")
    result = sign_in(conn, "m@example.com", right=True)
    assert isinstance(result, tuple)
    member = result[1].staff
    with transaction(conn):
        assert update_staff(conn, member.id, role=None, disabled=True, actor=admin, now=T0, ip=None) == {"disabled": [False, True]}
    assert load_staff_session(conn, result[0], now=T0, idle=IDLE, absolute=ABSOLUTE) is None
    assert conn.execute("SELECT ended_at FROM staff_sessions").fetchone()[0] is not None
    assert signin_state(conn, address="m@example.com", ip=None, now=T0).password_hash is None  # no active account
