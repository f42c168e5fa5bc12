"""API tokens for automation: one per script or integration, created and revoked by its
owner in the console. Only a hash is stored; a token acts with its owner's current role,
and stops working when revoked or when the owner's account is disabled."""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime

from promo.audit import append_event
from promo.auth import TOUCH_AFTER, session_hash  # last_used_at, like sessions: not written per call
from promo.errors import InputError, NotFound
from promo.staff import StaffMember
from promo.timeutil import db_time, from_db_time

PREFIX = "promo_"  # recognisable in a leaked secret scan


@dataclass(frozen=True)
class ApiToken:
    id: int
    name: str
    created_at: str
    last_used_at: str | None
    revoked_at: str | None


def create_token(conn: sqlite3.Connection, staff: StaffMember, name: str, *, now: datetime, ip: str | None) -> tuple[str, int]:
    """Returns (the raw token, shown once; its id)."""
    label = (name or "").strip()
    if not label or len(label) > 80:
        raise InputError.one("name", "is required (up to 80 characters), e.g. the script that will use the token")
    raw = PREFIX + secrets.token_urlsafe(32)
    token_id = conn.execute(
        "INSERT INTO api_tokens (staff_id, name, token_hash, created_at) VALUES (:s, :n, :h, :t)",
        {"s": staff.id, "n": label, "h": session_hash(raw), "t": db_time(now)},
    ).lastrowid
    assert token_id is not None
    append_event(conn, tag="staff:token:created", actor=f"staff:{staff.email}", subject=f"token:{token_id}", ip=ip,
                 at=now, data={"name": label, "role": staff.role})
    return raw, token_id


def revoke_token(conn: sqlite3.Connection, staff: StaffMember, token_id: int, *, now: datetime, ip: str | None) -> None:
    """Owners revoke their own tokens; admins may revoke anyone's."""
    row = conn.execute("SELECT t.name, t.revoked_at, s.email FROM api_tokens t JOIN staff s ON s.id = t.staff_id"
                       " WHERE t.id = :id AND (t.staff_id = :me OR :admin = 1)",
                       {"id": token_id, "me": staff.id, "admin": int(staff.role == "admin")}).fetchone()
    if row is None:
        raise NotFound("API token", str(token_id))
    if row["revoked_at"]:
        return
    conn.execute("UPDATE api_tokens SET revoked_at = :t WHERE id = :id", {"t": db_time(now), "id": token_id})
    append_event(conn, tag="staff:token:revoked", actor=f"staff:{staff.email}", subject=f"token:{token_id}", ip=ip,
                 at=now, data={"name": row["name"], "owner": row["email"]})


def tokens_of(conn: sqlite3.Connection, staff: StaffMember) -> list[ApiToken]:
    rows = conn.execute("SELECT id, name, created_at, last_used_at, revoked_at FROM api_tokens WHERE staff_id = :s"
                        " ORDER BY id DESC", {"s": staff.id}).fetchall()
    return [ApiToken(*row) for row in rows]


def token_of(conn: sqlite3.Connection, staff: StaffMember, token_id: int) -> ApiToken | None:
    """One token its owner (or an admin, as revoke_token allows) may act on."""
    row = conn.execute("SELECT id, name, created_at, last_used_at, revoked_at FROM api_tokens"
                       " WHERE id = :id AND (staff_id = :me OR :admin = 1)",
                       {"id": token_id, "me": staff.id, "admin": int(staff.role == "admin")}).fetchone()
    return ApiToken(*row) if row else None


def staff_for_token(conn: sqlite3.Connection, raw: str) -> tuple[int, StaffMember, str | None] | None:
    """(token id, its owner, last_used_at) for a live token, else None."""
    if not raw.startswith(PREFIX):
        return None
    row = conn.execute(
        "SELECT t.id AS token_id, t.last_used_at, s.id, s.email, s.role FROM api_tokens t JOIN staff s ON s.id = t.staff_id"
        " WHERE t.token_hash = :h AND t.revoked_at IS NULL AND s.disabled_at IS NULL",
        {"h": session_hash(raw)},
    ).fetchone()
    if row is None:
        return None
    return row["token_id"], StaffMember(row["id"], row["email"], row["role"]), row["last_used_at"]


def needs_touch(last_used_at: str | None, now: datetime) -> bool:
    return last_used_at is None or now - from_db_time(last_used_at) >= TOUCH_AFTER


def touch_token(conn: sqlite3.Connection, token_id: int, now: datetime) -> None:
    conn.execute("UPDATE api_tokens SET last_used_at = :t WHERE id = :id", {"t": db_time(now), "id": token_id})
