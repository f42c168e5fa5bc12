"""promo/api_tokens.py on a real SQLite file: a token is shown once and stored as a hash,
acts with its owner's current role, stops when revoked or when its owner is disabled, and
only its owner (or an admin) can see or revoke it; each change is audited."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from promo.api_tokens import PREFIX, create_token, needs_touch, revoke_token, staff_for_token, token_of, tokens_of
from promo.auth import TOUCH_AFTER
from promo.db import transaction
from promo.errors import InputError, NotFound
from promo.staff import StaffMember
from promo.timeutil import db_time
from tests.support.console import audit_changes
from tests.support.staff import staff

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def member(conn: sqlite3.Connection, email: str, role: str) -> StaffMember:
    staff(conn, email, role)
    row = conn.execute("SELECT id, email, role FROM staff WHERE email = ?", (email,)).fetchone()
    return StaffMember(*row)


def create(conn: sqlite3.Connection, owner: StaffMember, name: str = "nightly upload") -> tuple[str, int]:
    with transaction(conn):
        return create_token(conn, owner, name, now=T0, ip="192.0.2.1")


def test_a_token_is_shown_once_stored_as_a_hash_and_acts_as_its_owner(conn: sqlite3.Connection) -> None:
    owner = member(conn, "m@example.com", "marketer")
    raw, token_id = create(conn, owner, "  nightly upload  ")
    assert raw.startswith(PREFIX) and len(raw) > len(PREFIX) + 40
    stored = conn.execute("SELECT name, token_hash FROM api_tokens WHERE id = ?", (token_id,)).fetchone()
    assert stored["name"] == "nightly upload" and raw not in stored["token_hash"]
    assert staff_for_token(conn, raw) == (token_id, owner, None)
    assert audit_changes(conn, "staff:token:created") == [{"name": "nightly upload", "role": "marketer"}]


@pytest.mark.parametrize("raw", ["", "promo_", "promo_not-a-token", "Bearer promo_x", "nothing"])
def test_anything_but_a_live_token_finds_nobody(conn: sqlite3.Connection, raw: str) -> None:
    create(conn, member(conn, "m@example.com", "marketer"))
    assert staff_for_token(conn, raw) is None


@pytest.mark.parametrize("name", ["", "   ", "x" * 81])
def test_a_token_needs_a_name_that_says_what_uses_it(conn: sqlite3.Connection, name: str) -> None:
    owner = member(conn, "m@example.com", "marketer")
    with pytest.raises(InputError) as refused:
        create(conn, owner, name)
    assert refused.value.errors[0].field == "name" and "up to 80 characters" in refused.value.errors[0].message
    assert tokens_of(conn, owner) == []


def test_a_token_acts_with_its_owners_current_role_and_stops_when_the_owner_is_disabled(conn: sqlite3.Connection) -> None:
    owner = member(conn, "m@example.com", "marketer")
    raw, _ = create(conn, owner)
    with transaction(conn):
        conn.execute("UPDATE staff SET role = 'auditor' WHERE id = ?", (owner.id,))
    found = staff_for_token(conn, raw)
    assert found is not None and found[1].role == "auditor"
    with transaction(conn):
        conn.execute("UPDATE staff SET disabled_at = ? WHERE id = ?", (db_time(T0), owner.id))
    assert staff_for_token(conn, raw) is None


def test_the_owner_or_an_admin_revokes_once_and_others_do_not_see_the_token(conn: sqlite3.Connection) -> None:
    owner, other, admin = (member(conn, f"{r}@example.com", r) for r in ("marketer", "support", "admin"))
    raw, token_id = create(conn, owner)
    assert token_of(conn, other, token_id) is None and token_of(conn, admin, token_id) is not None
    with pytest.raises(NotFound), transaction(conn):
        revoke_token(conn, other, token_id, now=T0, ip=None)
    assert staff_for_token(conn, raw) is not None
    with transaction(conn):
        revoke_token(conn, admin, token_id, now=T0, ip=None)
        revoke_token(conn, owner, token_id, now=T0 + timedelta(minutes=1), ip=None)  # already revoked: nothing more
    assert staff_for_token(conn, raw) is None
    [listed] = tokens_of(conn, owner)
    assert listed.revoked_at == db_time(T0)
    assert audit_changes(conn, "staff:token:revoked") == [{"name": "nightly upload", "owner": "marketer@example.com"}]


def test_tokens_are_listed_newest_first_per_owner(conn: sqlite3.Connection) -> None:
    owner, other = member(conn, "a@example.com", "marketer"), member(conn, "b@example.com", "marketer")
    create(conn, owner, "first")
    create(conn, other, "theirs")
    create(conn, owner, "second")
    assert [t.name for t in tokens_of(conn, owner)] == ["second", "first"]


def test_last_use_is_written_only_after_a_while() -> None:
    assert needs_touch(None, T0)
    assert not needs_touch(db_time(T0), T0 + TOUCH_AFTER - timedelta(seconds=1))
    assert needs_touch(db_time(T0), T0 + TOUCH_AFTER)
