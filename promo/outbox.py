"""The transactional outbox: an email is a row written in the same transaction as the
change it announces; a relay (mail.py) sends it after commit. The Message-ID is fixed
when the row is written, so a resend after an uncertain delivery carries the same id."""

from __future__ import annotations

import secrets
import sqlite3
from datetime import datetime

from promo.timeutil import db_time


def enqueue(
    conn: sqlite3.Connection, *, template: str, recipient: str, subject_ref: str, at: datetime, domain: str = "promo.invalid"
) -> str:
    message_id = f"<{subject_ref.replace(':', '-')}.{secrets.token_hex(8)}@{domain}>"
    conn.execute(
        "INSERT INTO outbox (message_id, template, recipient, subject_ref, status, attempts, next_attempt_at, created_at)"
        " VALUES (:message_id, :template, :recipient, :subject_ref, 'queued', 0, :now, :now)",
        {"message_id": message_id, "template": template, "recipient": recipient, "subject_ref": subject_ref, "now": db_time(at)},
    )
    return message_id
