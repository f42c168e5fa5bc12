"""promo/outbox.py on a real SQLite file: an email is queued in the transaction that makes
its change, leased by one relay at a time, sent, deferred or failed (audited), an unreadable
row is failed without stopping the others, and the resend limit (R-X10) counts no further
than it needs."""

from __future__ import annotations

import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from promo.backends import dialect_of
from promo.db import transaction
from promo.outbox import claim_due, enqueue, mark_deferred, mark_failed, mark_sent, release, sends_since
from tests.support.console import audit_changes

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)


def queue(conn: sqlite3.Connection, recipient: str = "ann@example.com", *, at: datetime = T0, template: str = "signin",
          subject_ref: str = "account:ann@example.com", payload: dict[str, object] | None = None) -> str:
    with transaction(conn):
        return enqueue(conn, template=template, recipient=recipient, subject_ref=subject_ref, at=at,
                       payload=payload if payload is not None else {"link": "https://promo.example/s/secret"})


def claim(conn: sqlite3.Connection, now: datetime = T0, limit: int = 10) -> list[str]:
    with transaction(conn):
        return [m.recipient for m in claim_due(conn, now=now, lease=LEASE, limit=limit)]


def row(conn: sqlite3.Connection, recipient: str = "ann@example.com") -> sqlite3.Row:
    found = conn.execute("SELECT * FROM outbox WHERE recipient = ?", (recipient,)).fetchone()
    assert found is not None
    return found


def test_a_queued_email_is_leased_to_one_relay_until_the_lease_runs_out(conn: sqlite3.Connection) -> None:
    message_id = queue(conn)
    assert re.fullmatch(r"<account-ann@example\.com\.[0-9a-f]{16}@[\w.-]+>", message_id)
    with transaction(conn):
        [message] = claim_due(conn, now=T0, lease=LEASE, limit=10)
    assert (message.template, message.recipient, message.attempts, message.locale) == ("signin", "ann@example.com", 0, "en")
    assert message.payload == {"link": "https://promo.example/s/secret"} and message.message_id == message_id
    assert claim(conn, T0 + LEASE - timedelta(seconds=1)) == []  # another relay does not send it meanwhile
    assert claim(conn, T0 + LEASE) == ["ann@example.com"]  # a relay that died leaves it to the next


def test_due_emails_are_claimed_oldest_first_and_no_more_than_the_limit(conn: sqlite3.Connection) -> None:
    for n, recipient in enumerate(["c@example.com", "a@example.com", "b@example.com"]):
        queue(conn, recipient, at=T0 + timedelta(seconds=n))
    queue(conn, "later@example.com", at=T0 + timedelta(hours=1))
    assert claim(conn, T0 + timedelta(minutes=1), limit=2) == ["c@example.com", "a@example.com"]
    assert claim(conn, T0 + timedelta(minutes=1), limit=2) == ["b@example.com"]  # the later one is not due yet


def test_a_sent_email_keeps_no_secret_payload_when_asked(conn: sqlite3.Connection) -> None:
    queue(conn)
    queue(conn, "bob@example.com")
    ids = {r["recipient"]: r["id"] for r in conn.execute("SELECT id, recipient FROM outbox")}
    with transaction(conn):
        mark_sent(conn, ids["ann@example.com"], now=T0, clear_payload=True)
        mark_sent(conn, ids["bob@example.com"], now=T0, clear_payload=False)
        mark_sent(conn, ids["bob@example.com"], now=T0, clear_payload=False)  # a second report changes nothing
    ann, bob = row(conn), row(conn, "bob@example.com")
    assert (ann["status"], ann["attempts"], ann["payload"]) == ("sent", 1, None)
    assert (bob["status"], bob["attempts"]) == ("sent", 1) and json.loads(bob["payload"])["link"].endswith("/secret")
    assert claim(conn, T0 + timedelta(days=1)) == []


def test_a_deferred_email_waits_for_its_retry_and_keeps_the_error(conn: sqlite3.Connection) -> None:
    queue(conn)
    with transaction(conn):
        mark_deferred(conn, row(conn)["id"], error="451 try later " + "x" * 600, retry_at=T0 + timedelta(minutes=10))
    deferred = row(conn)
    assert deferred["status"] == "queued" and deferred["attempts"] == 1
    assert deferred["last_error"].startswith("451 try later") and len(deferred["last_error"]) == 500
    assert claim(conn, T0 + timedelta(minutes=9)) == []
    assert claim(conn, T0 + timedelta(minutes=10)) == ["ann@example.com"]


def test_a_failed_email_drops_its_payload_and_is_audited(conn: sqlite3.Connection) -> None:
    message_id = queue(conn)
    with transaction(conn):
        mark_failed(conn, row(conn)["id"], error="550 no such mailbox", now=T0)
    failed = row(conn)
    assert (failed["status"], failed["payload"], failed["attempts"]) == ("failed", None, 1)
    event = audit_changes(conn, "mail:message:failed")[-1]
    assert event == {"message_id": message_id, "template": "signin", "attempts": 1, "error": "550 no such mailbox"}
    assert claim(conn, T0 + timedelta(days=1)) == []


def test_an_unreadable_row_is_failed_and_the_others_are_still_sent(conn: sqlite3.Connection) -> None:
    queue(conn, "broken@example.com")
    queue(conn, "ann@example.com", at=T0 + timedelta(seconds=1))
    if dialect_of(conn).name == "postgresql":
        # The payload is jsonb there: the store refuses the bad JSON as it is written, so the row
        # stays readable and both go out, in order.
        with pytest.raises(psycopg.errors.InvalidTextRepresentation), transaction(conn):
            conn.execute("UPDATE outbox SET payload = '{not json' WHERE recipient = 'broken@example.com'")
        assert claim(conn, T0 + timedelta(minutes=1)) == ["broken@example.com", "ann@example.com"]
        return
    with transaction(conn):
        conn.execute("UPDATE outbox SET payload = '{not json' WHERE recipient = 'broken@example.com'")
    assert claim(conn, T0 + timedelta(minutes=1)) == ["ann@example.com"]
    broken = row(conn, "broken@example.com")
    assert broken["status"] == "failed" and broken["last_error"].startswith("unreadable outbox row: JSONDecodeError")
    assert audit_changes(conn, "mail:message:failed")[-1]["template"] == "signin"


def test_a_nul_in_a_payload_is_stored_as_a_replacement_character_on_either_store(conn: sqlite3.Connection) -> None:
    """PostgreSQL's jsonb refuses \\u0000 (it was a 500): every NUL of a payload, in its keys
    and strings at any depth, is stored as U+FFFD, on both stores alike."""
    queue(conn, payload={"reason": "spam\x00here", "nested": {"k\x00": ["\x00", 7]}})
    with transaction(conn):
        [message] = claim_due(conn, now=T0, lease=LEASE, limit=10)
    assert message.payload == {"reason": "spam\ufffdhere", "nested": {"k\ufffd": ["\ufffd", 7]}}


def test_a_release_hands_back_only_what_is_still_under_that_lease(conn: sqlite3.Connection) -> None:
    for recipient in ("a@example.com", "b@example.com", "c@example.com"):
        queue(conn, recipient)
    with transaction(conn):
        a, b, c = claim_due(conn, now=T0, lease=LEASE, limit=10)
        mark_sent(conn, a.id, now=T0, clear_payload=True)  # sent: stays sent
        mark_deferred(conn, b.id, error="451", retry_at=T0 + timedelta(hours=1))  # no longer this lease: kept
    later = T0 + timedelta(seconds=30)
    with transaction(conn):
        assert release(conn, [a.id, b.id, c.id], leased_until=T0 + LEASE, now=later) == 1
        assert release(conn, [], leased_until=T0 + LEASE, now=later) == 0
    assert claim(conn, later) == ["c@example.com"]  # due again at once, its attempts unchanged
    assert row(conn, "c@example.com")["attempts"] == 0 and row(conn, "a@example.com")["status"] == "sent"
    assert "b@example.com" not in claim(conn, T0 + timedelta(minutes=59))  # b waits for its retry


def test_the_resend_limit_counts_one_template_about_one_subject_since_a_time_up_to_the_limit(conn: sqlite3.Connection) -> None:
    for minutes in (0, 10, 20, 30):
        queue(conn, at=T0 + timedelta(minutes=minutes), template="reward", subject_ref="redemption:7")
    queue(conn, at=T0 + timedelta(minutes=40), template="reward", subject_ref="redemption:8")
    queue(conn, at=T0 + timedelta(minutes=40), template="signin", subject_ref="redemption:7")

    def count(since: int, limit: int) -> int:
        return sends_since(conn, template="reward", subject_ref="redemption:7", since=T0 + timedelta(minutes=since), limit=limit)

    assert count(0, 10) == 4 and count(15, 10) == 2 and count(31, 10) == 0
    assert count(0, 3) == 3  # no further than the limit
