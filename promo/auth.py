"""Consumer sign-in by email link, server-side sessions, CSRF tokens.

The account is a verified email address (R-X5). A sign-in link is an itsdangerous token
with its own salt and a short lifetime, and works once (its `jti` row is marked used in
the same transaction that starts the session). Sessions: a random id in an HttpOnly
cookie, only its SHA-256 stored; a new id at every sign-in (no fixation); ended on the
server at sign-out; idle and absolute timeouts.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from promo.audit import append_event
from promo.identifiers import mailbox_params
from promo.outbox import enqueue
from promo.timeutil import db_time, from_db_time

SIGNIN_SALT = "promo.consumer.signin-link"
SIGNIN_REQUESTS_PER_WINDOW = 5  # per address per link lifetime: no mail bombing
TOUCH_AFTER = timedelta(seconds=60)  # refresh last_seen at most once a minute


class TokenInvalid(Exception):
    pass


class TokenExpired(TokenInvalid):
    pass


class SigninLinks:
    """The token service for sign-in links (one serializer, one purpose), and the links'
    address: built once from the settings (promo/app.py)."""

    def __init__(self, secret_key: str, lifetime: timedelta, *, public_url: str):
        self._serializer = URLSafeTimedSerializer(secret_key, salt=SIGNIN_SALT)
        self.lifetime = lifetime
        self.public_url = public_url  # server.public_url: where the emailed link points

    def create(self, email: str, jti: str) -> str:
        return self._serializer.dumps({"e": email, "j": jti})

    def link(self, email: str, jti: str) -> str:
        return f"{self.public_url}/signin/{self.create(email, jti)}"

    def read(self, token: str) -> tuple[str, str]:
        try:
            data = self._serializer.loads(token, max_age=int(self.lifetime.total_seconds()))
        except SignatureExpired:
            raise TokenExpired("the sign-in link has expired") from None
        except BadData:
            raise TokenInvalid("the sign-in link is not valid") from None
        if not isinstance(data, dict) or not isinstance(data.get("e"), str) or not isinstance(data.get("j"), str):
            raise TokenInvalid("the sign-in link is not valid")
        return data["e"], data["j"]


@dataclass(frozen=True)
class Session:
    id_hash: str
    account_email: str
    csrf_token: str
    created_at: datetime
    last_seen_at: datetime


def session_hash(raw: str) -> str:
    """What is stored for a session id (consumer or staff): never the id itself."""
    return hashlib.sha256(raw.encode()).hexdigest()


def request_signin(conn: sqlite3.Connection, *, email: str, links: SigninLinks, locale: str,
                   now: datetime, ip: str | None) -> bool:
    """Queue a sign-in email (inside a transaction). False when rate-limited; the caller
    shows the same page either way, so nobody learns anything about the address. The limit
    is per mailbox: sub-addresses (ann+1@, ann+2@ …) share their address's allowance."""
    if signin_requests_since(conn, email, since=now - links.lifetime, limit=SIGNIN_REQUESTS_PER_WINDOW) >= SIGNIN_REQUESTS_PER_WINDOW:
        return False
    jti = secrets.token_urlsafe(16)
    conn.execute("INSERT INTO signin_tokens (jti, account_email, created_at) VALUES (:j, :e, :t)",
                 {"j": jti, "e": email, "t": db_time(now)})
    link = links.link(email, jti)
    enqueue(conn, template="signin_link", recipient=email, subject_ref=f"signin:{jti}", at=now, locale=locale,
            payload={"link": link, "minutes": int(links.lifetime.total_seconds() // 60)})
    append_event(conn, tag="account:signin:requested", actor=f"account:{email}", subject=f"account:{email}",
                 data={}, at=now, ip=ip)
    return True


def signin_requests_since(conn: sqlite3.Connection, email: str, *, since: datetime, limit: int) -> int:
    """Sign-in links sent to `email`'s mailbox (the address and its sub-addresses, ann+1@ …)
    since `since`, counted no further than `limit` (index signin_tokens_account, two ranges):
    the cap costs the same however often the address was tried."""
    return int(conn.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM signin_tokens WHERE created_at >= :since AND (account_email = :base"
        " OR (account_email >= :lo AND account_email < :hi AND substr(account_email, length(account_email) - :n + 1) = :at_domain))"
        " LIMIT :limit) AS recent",  # a tail and an alias both stores read alike (PostgreSQL: no negative substr start)
        {"since": db_time(since), "limit": limit, **mailbox_params(email)},
    ).fetchone()[0])


def consume_signin(conn: sqlite3.Connection, *, email: str, jti: str, now: datetime, ip: str | None) -> tuple[str, Session] | None:
    """Use a sign-in link once and start a new session (inside a transaction).
    Returns (raw session id for the cookie, session), or None if the link was used."""
    used = conn.execute(
        "UPDATE signin_tokens SET used_at = :now WHERE jti = :j AND account_email = :e AND used_at IS NULL",
        {"now": db_time(now), "j": jti, "e": email},
    ).rowcount
    if used != 1:
        return None
    raw = secrets.token_urlsafe(32)
    session = Session(session_hash(raw), email, secrets.token_urlsafe(32), now, now)
    conn.execute(
        "INSERT INTO sessions (id_hash, account_email, csrf_token, created_at, last_seen_at)"
        " VALUES (:h, :e, :csrf, :now, :now)",
        {"h": session.id_hash, "e": email, "csrf": session.csrf_token, "now": db_time(now)},
    )
    append_event(conn, tag="account:session:started", actor=f"account:{email}", subject=f"account:{email}",
                 data={}, at=now, ip=ip)
    return raw, session


def load_session(conn: sqlite3.Connection, raw: str, *, now: datetime, idle: timedelta, absolute: timedelta) -> Session | None:
    row = conn.execute(
        "SELECT id_hash, account_email, csrf_token, created_at, last_seen_at FROM sessions"
        " WHERE id_hash = :h AND ended_at IS NULL",
        {"h": session_hash(raw)},
    ).fetchone()
    if row is None:
        return None
    session = Session(row[0], row[1], row[2], from_db_time(row[3]), from_db_time(row[4]))
    if now - session.created_at >= absolute or now - session.last_seen_at >= idle:
        return None
    return session


def needs_touch(session: Session, now: datetime) -> bool:
    return now - session.last_seen_at >= TOUCH_AFTER


def touch_session(conn: sqlite3.Connection, id_hash: str, now: datetime) -> None:
    conn.execute("UPDATE sessions SET last_seen_at = :now WHERE id_hash = :h AND ended_at IS NULL",
                 {"now": db_time(now), "h": id_hash})


def end_session(conn: sqlite3.Connection, id_hash: str, *, now: datetime, ip: str | None) -> None:
    row = conn.execute("SELECT account_email FROM sessions WHERE id_hash = :h AND ended_at IS NULL", {"h": id_hash}).fetchone()
    if row is None:
        return
    conn.execute("UPDATE sessions SET ended_at = :now WHERE id_hash = :h", {"now": db_time(now), "h": id_hash})
    append_event(conn, tag="account:session:ended", actor=f"account:{row[0]}", subject=f"account:{row[0]}",
                 data={}, at=now, ip=ip)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The token of a request's `Authorization: Bearer …` header, if there is one."""
    scheme, _, raw = headers.get("authorization", "").partition(" ")
    return (raw.strip() or None) if scheme.lower() == "bearer" else None


def same_token(expected: str | None, given: str | None) -> bool:
    """CSRF tokens compared in constant time, as bytes: compare_digest refuses a str with any
    non-ASCII character (TypeError, a 500), and a forged token may hold anything."""
    if not expected or not given:
        return False
    return hmac.compare_digest(str(expected).encode("utf-8", "surrogatepass"), str(given).encode("utf-8", "surrogatepass"))
