"""Staff accounts, roles, and their sign-in (separate from consumers).

Passwords are hashed with argon2id, never inside a transaction (promo/passwords.py;
promo/staff_signin.py runs a sign-in: read here, check the password, write here). Sign-in is
limited per IP and locks an account after repeated failures; every attempt, success or
failure, and every lockout is an audit event. Roles are checked on the server for every
staff route (see views/staffauth.py).
"""

from __future__ import annotations

import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta

from promo.audit import append_event
from promo.auth import session_hash
from promo.errors import InputError, NotFound
from promo.identifiers import normalize_email
from promo.timeutil import db_time, from_db_time

ROLES = ("admin", "marketer", "auditor", "support")
MIN_PASSWORD = 12
LOCK_AFTER = 5  # consecutive failures
LOCK_FOR = timedelta(minutes=15)
IP_FAILURES_PER_WINDOW = 20
IP_WINDOW = timedelta(minutes=15)


@dataclass(frozen=True)
class RolePolicy:
    """Which roles may do what: the one table every staff page and API call is guarded by
    (views/guards.py, views/api.py). The staff menu and links read the same roles back from
    the routes (views/access.py). The order is the one messages list them in."""

    read_campaigns: tuple[str, ...] = ("admin", "marketer", "auditor")  # the console, dashboards, the API's reads
    edit_campaigns: tuple[str, ...] = ("admin", "marketer")  # create, edit, publish, codes, activations
    read_audit: tuple[str, ...] = ("auditor", "admin")  # the decision log, staff actions, reconciliation
    look_up_redemptions: tuple[str, ...] = ("auditor", "admin", "support")  # support answers "where is my code?"
    review_claims: tuple[str, ...] = ("support", "admin")  # the manual review queue (R-X11, R-X12)
    own_api_tokens: tuple[str, ...] = ("admin", "marketer", "auditor")  # each their own tokens
    manage_staff: tuple[str, ...] = ("admin",)


POLICY = RolePolicy()


@dataclass(frozen=True)
class StaffMember:
    id: int
    email: str
    role: str


@dataclass(frozen=True)
class StaffSession:
    id_hash: str
    staff: StaffMember
    csrf_token: str
    last_seen_at: datetime | None = None


def check_new_password(password: str) -> str:
    """A new password long enough to keep (checked before it is hashed)."""
    if len(password) < MIN_PASSWORD:
        raise InputError.one("password", f"must have at least {MIN_PASSWORD} characters")
    return password


def add_staff(conn: sqlite3.Connection, *, email: str, role: str, password_hash: str, now: datetime, actor: str) -> StaffMember:
    """Create a staff account (inside a transaction) with a password hashed beforehand, outside
    it (passwords.hash_password, or hash_off_loop in the server)."""
    address = normalize_email(email, "email")
    if role not in ROLES:
        raise InputError.one("role", f"must be one of {', '.join(ROLES)}")
    if conn.execute("SELECT 1 FROM staff WHERE email = :e", {"e": address}).fetchone():
        raise InputError.one("email", f"{address} already has a staff account")
    staff_id = conn.execute(
        "INSERT INTO staff (email, role, password_hash, created_at) VALUES (:e, :r, :h, :t)",
        {"e": address, "r": role, "h": password_hash, "t": db_time(now)},
    ).lastrowid
    assert staff_id is not None
    append_event(conn, tag="staff:account:created", actor=actor, subject=f"staff:{address}", data={"role": role}, at=now)
    return StaffMember(staff_id, address, role)


@dataclass(frozen=True)
class SigninState:
    """What a sign-in knows before the password is checked (read, outside any transaction)."""

    refusal: str | None  # "too_many" or "locked": refused before any hashing
    staff_id: int | None = None
    password_hash: str | None = None  # None: no such (active) account; checked against a dummy


def failures_from_ip(conn: sqlite3.Connection, ip: str, *, since: datetime, limit: int) -> int:
    """Failed staff sign-ins from `ip` since `since`, counted no further than `limit`: the
    check costs the same however many failures an attacker has piled up (partial index
    staff_signin_attempts_ip)."""
    return int(conn.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM staff_signin_attempts WHERE succeeded = 0 AND ip = :ip"
        " AND attempted_at >= :since LIMIT :limit) AS recent",  # an alias: PostgreSQL needs one
        {"ip": ip, "since": db_time(since), "limit": limit},
    ).fetchone()[0])


def signin_state(conn: sqlite3.Connection, *, address: str, ip: str | None, now: datetime, in_flight: int = 0) -> SigninState:
    """The per-IP limit, the account and its lock, before any hashing. `in_flight`: other
    attempts from this IP whose outcome is not written yet (they count against the limit,
    so a burst cannot get more password checks than the limit allows)."""
    if ip:
        allowed = IP_FAILURES_PER_WINDOW - in_flight
        if allowed <= 0 or failures_from_ip(conn, ip, since=now - IP_WINDOW, limit=allowed) >= allowed:
            return SigninState("too_many")
    row = conn.execute("SELECT id, password_hash, locked_until FROM staff WHERE email = :e AND disabled_at IS NULL",
                       {"e": address}).fetchone()
    if row is None:
        return SigninState(None)
    if row["locked_until"] and from_db_time(row["locked_until"]) > now:
        return SigninState("locked")
    return SigninState(None, row["id"], row["password_hash"])


def record_signin(conn: sqlite3.Connection, *, address: str, ip: str | None, now: datetime, checked: SigninState,
                  outcome: str) -> tuple[str, StaffSession] | str:
    """Write a sign-in's outcome (inside a short transaction; the password was checked before,
    outside it). `outcome`: "ok" (the password matched `checked.password_hash`), "invalid",
    or a refusal ("too_many", "locked", "busy"). Returns (raw session id, session) or the
    reason it failed. The account is read again: one changed meanwhile (disabled, locked by
    another process's failures, a new password) is not signed in."""
    if outcome not in ("ok", "invalid"):
        _attempt(conn, address, ip, False, now, outcome)
        return outcome
    row = conn.execute(
        "SELECT id, email, role, password_hash, failed_attempts, locked_until FROM staff"
        " WHERE email = :e AND disabled_at IS NULL", {"e": address},
    ).fetchone()
    if row is not None and row["locked_until"] and from_db_time(row["locked_until"]) > now:
        _attempt(conn, address, ip, False, now, "locked")
        return "locked"
    if outcome == "ok" and (row is None or row["id"] != checked.staff_id or row["password_hash"] != checked.password_hash):
        outcome = "invalid"
    if outcome == "invalid":
        _attempt(conn, address, ip, False, now, "invalid")
        if row is not None:
            failures = row["failed_attempts"] + 1
            locked_until = db_time(now + LOCK_FOR) if failures >= LOCK_AFTER else None
            conn.execute("UPDATE staff SET failed_attempts = :f, locked_until = :l WHERE id = :id",
                         {"f": 0 if locked_until else failures, "l": locked_until, "id": row["id"]})
            if locked_until:
                append_event(conn, tag="staff:account:locked", actor="system", subject=f"staff:{address}", ip=ip, at=now,
                             data={"after_failures": failures, "until": locked_until})
        return "invalid"
    conn.execute("UPDATE staff SET failed_attempts = 0, locked_until = NULL WHERE id = :id", {"id": row["id"]})
    _attempt(conn, address, ip, True, now, "ok")
    raw = secrets.token_urlsafe(32)
    session = StaffSession(session_hash(raw), StaffMember(row["id"], row["email"], row["role"]), secrets.token_urlsafe(32))
    conn.execute(
        "INSERT INTO staff_sessions (id_hash, staff_id, csrf_token, created_at, last_seen_at) VALUES (:h, :s, :c, :t, :t)",
        {"h": session.id_hash, "s": row["id"], "c": session.csrf_token, "t": db_time(now)},
    )
    return raw, session


def _attempt(conn: sqlite3.Connection, email: str, ip: str | None, succeeded: bool, now: datetime, outcome: str) -> None:
    conn.execute("INSERT INTO staff_signin_attempts (email, ip, succeeded, attempted_at) VALUES (:e, :ip, :s, :t)",
                 {"e": email, "ip": ip, "s": int(succeeded), "t": db_time(now)})
    append_event(conn, tag=f"staff:signin:{'succeeded' if succeeded else 'failed'}", actor=f"staff:{email}",
                 subject=f"staff:{email}", ip=ip, at=now, data={"outcome": outcome})


def load_staff_session(conn: sqlite3.Connection, raw: str, *, now: datetime, idle: timedelta, absolute: timedelta) -> StaffSession | None:
    row = conn.execute(
        "SELECT s.id_hash, s.csrf_token, s.created_at, s.last_seen_at, f.id, f.email, f.role FROM staff_sessions s"
        " JOIN staff f ON f.id = s.staff_id WHERE s.id_hash = :h AND s.ended_at IS NULL AND f.disabled_at IS NULL",
        {"h": session_hash(raw)},
    ).fetchone()
    if row is None:
        return None
    if now - from_db_time(row["created_at"]) >= absolute or now - from_db_time(row["last_seen_at"]) >= idle:
        return None
    return StaffSession(row["id_hash"], StaffMember(row["id"], row["email"], row["role"]), row["csrf_token"],
                        from_db_time(row["last_seen_at"]))


def touch_staff_session(conn: sqlite3.Connection, id_hash: str, now: datetime) -> None:
    conn.execute("UPDATE staff_sessions SET last_seen_at = :t WHERE id_hash = :h AND ended_at IS NULL",
                 {"t": db_time(now), "h": id_hash})


def end_staff_session(conn: sqlite3.Connection, id_hash: str, *, now: datetime) -> None:
    conn.execute("UPDATE staff_sessions SET ended_at = :t WHERE id_hash = :h AND ended_at IS NULL",
                 {"t": db_time(now), "h": id_hash})


def list_staff(conn: sqlite3.Connection) -> list[dict[str, object]]:
    rows = conn.execute("SELECT id, email, role, created_at, disabled_at, locked_until FROM staff ORDER BY email").fetchall()
    return [dict(row) for row in rows]


def account_reach(conn: sqlite3.Connection, staff_id: int) -> dict[str, object] | None:
    """What disabling an account would stop: its open sessions and live API tokens."""
    row = conn.execute(
        "SELECT id, email, role, disabled_at IS NOT NULL AS disabled,"
        " (SELECT COUNT(*) FROM staff_sessions s WHERE s.staff_id = staff.id AND s.ended_at IS NULL) AS sessions,"
        " (SELECT COUNT(*) FROM api_tokens t WHERE t.staff_id = staff.id AND t.revoked_at IS NULL) AS tokens"
        " FROM staff WHERE id = :id", {"id": staff_id}).fetchone()
    return dict(row) if row else None


def update_staff(conn: sqlite3.Connection, staff_id: int, *, role: str | None, disabled: bool | None, actor: StaffMember,
                 now: datetime, ip: str | None) -> dict[str, list[object]]:
    """Change a role or disable/enable an account (admins, inside a transaction); audited
    with before and after. Disabling ends the account's sessions; its API tokens stop
    working with it. Nobody changes their own account here, so an admin cannot lock
    everyone out, and the last active admin stays an admin."""
    row = conn.execute("SELECT id, email, role, disabled_at FROM staff WHERE id = :id", {"id": staff_id}).fetchone()
    if row is None:
        raise NotFound("staff account", str(staff_id))
    if row["id"] == actor.id:
        raise InputError.one("account", "you cannot change your own role or disable yourself; ask another admin")
    if role is not None and role not in ROLES:
        raise InputError.one("role", f"must be one of {', '.join(ROLES)}")
    changes: dict[str, list[object]] = {}
    if role is not None and role != row["role"]:
        changes["role"] = [row["role"], role]
    if disabled is not None and disabled != (row["disabled_at"] is not None):
        changes["disabled"] = [row["disabled_at"] is not None, disabled]
    losing_admin = row["role"] == "admin" and row["disabled_at"] is None and ("role" in changes or disabled)
    if losing_admin:
        admins = conn.execute("SELECT COUNT(*) FROM staff WHERE role = 'admin' AND disabled_at IS NULL").fetchone()[0]
        if admins <= 1:
            raise InputError.one("role", "this is the last active admin; make another admin first")
    if not changes:
        return changes
    conn.execute(
        "UPDATE staff SET role = :role, disabled_at = :disabled WHERE id = :id",
        {"role": role or row["role"], "id": staff_id,
         "disabled": (db_time(now) if disabled else None) if disabled is not None else row["disabled_at"]},
    )
    if disabled:
        conn.execute("UPDATE staff_sessions SET ended_at = :t WHERE staff_id = :id AND ended_at IS NULL",
                     {"t": db_time(now), "id": staff_id})
    append_event(conn, tag="staff:account:changed", actor=f"staff:{actor.email}", subject=f"staff:{row['email']}",
                 ip=ip, at=now, data={"changes": changes})
    return changes
