"""The transactional outbox: an email is a row written in the same transaction as the
change it announces; a relay (mail.py) sends it after commit. The Message-ID is fixed
when the row is written, so a resend after an uncertain delivery carries the same id."""

from __future__ import annotations

import json
import secrets
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from promo.activity import count_sent
from promo.audit import append_event
from promo.backends import dialect_of
from promo.backends.notify import mark_queued
from promo.db import is_unavailable
from promo.logs import get_logger
from promo.timeutil import db_time

log = get_logger("promo.mail")

DEFAULT_MAIL_DOMAIN = "promo.invalid"
_message_id_domain = DEFAULT_MAIL_DOMAIN


def use_message_id_domain(domain: str) -> None:
    """Set the right-hand side of every Message-ID this process writes (mail.message_id_domain).
    Set once, where the settings are read (promo/app.py's lifespan, the `promo` command), like
    the logging: one deployment per process, so the services that queue an email do not carry it."""
    global _message_id_domain
    _message_id_domain = domain


def enqueue(
    conn: sqlite3.Connection,
    *,
    template: str,
    recipient: str,
    subject_ref: str,
    at: datetime,
    locale: str = "en",
    payload: dict[str, Any] | None = None,
    campaign_id: int | None = None,
) -> str:
    """Queue an email (call inside the transaction that makes the change it announces).
    `campaign_id`: the campaign it belongs to, whose dashboard counts its delivery."""
    message_id = f"<{subject_ref.replace(':', '-')}.{secrets.token_hex(8)}@{_message_id_domain}>"
    mark_queued(conn)  # PostgreSQL: the other instances' relays are told once this commits
    conn.execute(
        "INSERT INTO outbox (message_id, template, recipient, subject_ref, status, attempts, next_attempt_at,"
        " created_at, locale, payload, campaign_id)"
        " VALUES (:message_id, :template, :recipient, :subject_ref, 'queued', 0, :now, :now, :locale, :payload, :campaign)",
        {"message_id": message_id, "template": template, "recipient": recipient, "subject_ref": subject_ref,
         "now": db_time(at), "locale": locale, "payload": json.dumps(_without_nul(payload)) if payload is not None else None,
         "campaign": campaign_id},
    )
    return message_id


def _without_nul(value: Any) -> Any:
    """The payload with every NUL (in keys and strings, at any depth) as U+FFFD, on both stores:
    PostgreSQL's jsonb refuses \\u0000 (a 500 before), and a NUL has no place in an email."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    message_id: str
    template: str
    recipient: str
    subject_ref: str
    attempts: int
    locale: str
    payload: dict[str, Any] | None


def claim_due(conn: sqlite3.Connection, *, now: datetime, lease: timedelta, limit: int) -> list[OutboxMessage]:
    """Take up to `limit` due messages and lease them (push next_attempt_at forward) so no
    other relay sends them meanwhile. Call inside a transaction. A row that cannot be read
    (a payload that is not JSON, text that is not UTF-8) is failed here, audited, and the
    others are leased: otherwise it would stop every lease after it, for good."""
    params = {"now": db_time(now), "limit": limit}
    try:
        rows = conn.execute(
            "SELECT id, message_id, template, recipient, subject_ref, attempts, locale, payload FROM outbox"
            " WHERE status = 'queued' AND next_attempt_at <= :now ORDER BY next_attempt_at, id LIMIT :limit"
            + dialect_of(conn).skip_locked, params,  # another relay's lease in flight is skipped, not waited for
        ).fetchall()
    except sqlite3.OperationalError as exc:  # a column that does not decode: find the row, one by one
        if is_unavailable(exc):
            raise
        due = conn.execute("SELECT id FROM outbox WHERE status = 'queued' AND next_attempt_at <= :now"
                           " ORDER BY next_attempt_at, id LIMIT :limit", params)
        rows = _readable_rows(conn, [row_id for (row_id,) in due], now)
    messages = []
    lease_until = db_time(now + lease)
    for row in rows:
        try:
            message = OutboxMessage(row["id"], row["message_id"], row["template"], row["recipient"], row["subject_ref"],
                                    int(row["attempts"]), row["locale"], json.loads(row["payload"]) if row["payload"] else None)
        except Exception as exc:
            mark_failed(conn, row["id"], error=f"unreadable outbox row: {type(exc).__name__}: {exc}", now=now)
            log.error("mail.failed", outbox_id=row["id"], error=f"unreadable outbox row: {type(exc).__name__}")
            continue
        messages.append(message)
    # One statement for the batch (psycopg pipelines executemany: one round trip, not one per row)
    conn.executemany("UPDATE outbox SET next_attempt_at = :lease WHERE id = :id",
                     [{"lease": lease_until, "id": message.id} for message in messages])
    return messages


def release(conn: sqlite3.Connection, ids: list[int], *, leased_until: datetime, now: datetime) -> int:
    """Hand back leased messages that were not sent (a lane that stopped before its lease
    ends): due again at once for any relay, their attempts unchanged. Only rows still under
    this very lease (queued, next_attempt_at = leased_until) are touched, so a lease another
    relay has taken since is never shortened. Returns how many were released."""
    if not ids:
        return 0
    cursor = conn.executemany(
        "UPDATE outbox SET next_attempt_at = :now WHERE id = :id AND status = 'queued' AND next_attempt_at = :until",
        [{"now": db_time(now), "until": db_time(leased_until), "id": row_id} for row_id in ids])
    return int(cursor.rowcount)


def _readable_rows(conn: sqlite3.Connection, ids: list[int], now: datetime) -> list[sqlite3.Row]:
    """The rows among `ids` that read; the others are failed (and audited by their id, since
    their own columns cannot be read)."""
    rows = []
    for row_id in ids:
        try:
            rows.append(conn.execute("SELECT id, message_id, template, recipient, subject_ref, attempts, locale, payload"
                                     " FROM outbox WHERE id = :id", {"id": row_id}).fetchone())
        except sqlite3.OperationalError as exc:
            if is_unavailable(exc):
                raise
            # "Could not decode to UTF-8 column 'payload'": the text that follows may be a secret link
            mark_failed(conn, row_id, error=f"unreadable outbox row: {str(exc).partition(' with text ')[0]}", now=now)
            log.error("mail.failed", outbox_id=row_id, error="unreadable outbox row")
    return rows


def mark_sent(conn: sqlite3.Connection, message_id: int, *, now: datetime, clear_payload: bool) -> None:
    sent = conn.execute(
        "UPDATE outbox SET status = 'sent', sent_at = :now, attempts = attempts + 1, last_error = NULL"
        + (", payload = NULL" if clear_payload else "") + " WHERE id = :id AND status <> 'sent' RETURNING campaign_id",
        {"now": db_time(now), "id": message_id},
    ).fetchall()  # read to the end: the statement is then done
    if sent and sent[0][0] is not None:
        count_sent(conn, campaign_id=sent[0][0], at=now, shard_of=message_id)


def mark_deferred(conn: sqlite3.Connection, message_id: int, *, error: str, retry_at: datetime) -> None:
    conn.execute(
        "UPDATE outbox SET attempts = attempts + 1, last_error = :error, next_attempt_at = :retry WHERE id = :id",
        {"error": error[:500], "retry": db_time(retry_at), "id": message_id},
    )


def mark_failed(conn: sqlite3.Connection, message_id: int, *, error: str, now: datetime) -> None:
    """Give up on a message (inside a transaction); recorded in the audit chain for auditors."""
    conn.execute(
        "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = :error, payload = NULL,"
        " next_attempt_at = :now WHERE id = :id",
        {"error": error[:500], "now": db_time(now), "id": message_id},
    )
    try:
        row = conn.execute("SELECT message_id, template, subject_ref, attempts FROM outbox WHERE id = :id",
                           {"id": message_id}).fetchone()
        subject = row["subject_ref"]
        data = {"message_id": row["message_id"], "template": row["template"], "attempts": row["attempts"]}
    except sqlite3.OperationalError as exc:  # a row whose own columns do not read: named by its id
        if is_unavailable(exc):
            raise
        subject, data = f"outbox:{message_id}", {"outbox_id": message_id}
    append_event(conn, tag="mail:message:failed", actor="system:mail-relay", subject=subject, at=now,
                 data={**data, "error": error[:500]})


def sends_since(conn: sqlite3.Connection, *, template: str, subject_ref: str, since: datetime, limit: int) -> int:
    """Emails of `template` about `subject_ref` queued since `since`, counted no further than
    `limit` (index outbox_subject): the resend limit (R-X10) costs the same however large the
    outbox grows."""
    return int(conn.execute(
        "SELECT COUNT(*) FROM (SELECT 1 FROM outbox WHERE subject_ref = :s AND created_at >= :since AND template = :t"
        " LIMIT :limit) AS recent",  # an alias: PostgreSQL needs one
        {"t": template, "s": subject_ref, "since": db_time(since), "limit": limit},
    ).fetchone()[0])
