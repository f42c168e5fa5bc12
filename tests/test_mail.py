"""The outbox relay against a real local SMTP server that misbehaves on purpose."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage

import aiosmtplib
import psycopg
import pytest
from aiosmtplib.email import flatten_message

from promo.backends import dialect_of
from promo.config import Settings
from promo.db import Database
from promo.errors import InputError
from promo.mail import MailRelay, PermanentFailure, RawEmail, _modern_email, _raw_mime, build_email
from promo.mailsink import start_sink
from promo.outbox import OutboxMessage, enqueue
from promo.templating import Templates
from tests.support.database import DURING, reward_code
from tests.support.invariants import assert_chain_verifies
from tests.support.mailserver import MailServer, free_port
from tests.support.prepared import store_of
from tests.support.redemption import add_activations, add_codes, redeem


class Clock:
    def __init__(self, now: datetime):
        self.now = now

    def __call__(self) -> datetime:
        return self.now



@pytest.fixture
def redeemed(conn: sqlite3.Connection, stored: object) -> sqlite3.Connection:
    add_activations(conn, [(1, "O365-HOME-ESD", "DK", "ann@example.com")])
    add_codes(conn, stored, 3)  # type: ignore[arg-type]
    assert redeem(conn, key=1, account="ann@example.com").redeemed
    return conn


@pytest.fixture
async def db(settings: Settings, redeemed: sqlite3.Connection) -> AsyncIterator[Database]:
    async with store_of(settings) as database:
        yield database


def relay_for(db: Database, settings: Settings, port: int, clock: Clock, **mail: object) -> MailRelay:
    # One lane by default: fault tests then see messages in a fixed order.
    options = replace(settings.mail, **{"host": "127.0.0.1", "port": port, "timeout_seconds": 2, "retry_base_seconds": 5,
                                        "connections": 1, **mail})
    return MailRelay(db, options, Templates(), "http://promo.test", clock=clock)


def outbox(conn: sqlite3.Connection) -> sqlite3.Row:
    return conn.execute("SELECT * FROM outbox ORDER BY id DESC LIMIT 1").fetchone()


async def test_the_reward_email_says_everything_the_rules_require(db: Database, settings: Settings, smtp: MailServer,
                                                                  redeemed: sqlite3.Connection) -> None:
    relay = relay_for(db, settings, smtp.port, Clock(DURING))
    assert await relay.deliver_once() == 1
    assert await relay.deliver_once() == 0  # nothing left: sent once
    # The lease and the outcome were grouped writes on the event loop: the relay never sends
    # the redemptions' groups to the writer thread (promo/db.py).
    if isinstance(db, Database):  # SQLite's group commit (PostgreSQL commits side by side)
        assert db.group_commits >= 2 and db.group_commits_on_thread == 0
    [email] = smtp.received
    row = outbox(redeemed)
    assert row["status"] == "sent" and row["attempts"] == 1 and row["sent_at"]
    assert email["Message-ID"] == row["message_id"] and email["To"] == "ann@example.com"
    assert email.get_content_type() == "multipart/alternative"
    text = email.get_body(("plain",)).get_content()
    html = email.get_body(("html",)).get_content()
    for body in (text, html):
        assert reward_code(0) in body  # the code, to its owner
        assert "October 31, 2014" in body  # R-X9
        assert "will not be replaced if it is lost" in body  # R-X10
        assert "https://www.xbox.com/live/termsofuse" in body
        assert "Microsoft Luxembourg S.à.r.l." in body and "Luxembourg" in body  # R-X13, Denmark is in Europe
        assert "https://support.microsoft.com/da-dk/contactus" in body  # R-X16, Denmark's contact
        assert "under 13" in body  # R-X14


async def test_smtp_down_then_up_delivers_with_backoff(db: Database, settings: Settings, redeemed: sqlite3.Connection) -> None:
    port, clock = free_port(), Clock(DURING)
    relay = relay_for(db, settings, port, clock)
    assert await relay.deliver_once() == 1
    row = outbox(redeemed)
    assert (row["status"], row["attempts"]) == ("queued", 1) and row["last_error"].startswith("connect:")
    assert await relay.deliver_once() == 0  # not due before the backoff (5 s) has passed
    server = MailServer(port).start()
    try:
        clock.now += timedelta(seconds=5)
        assert await relay.deliver_once() == 1
        assert outbox(redeemed)["status"] == "sent" and len(server.received) == 1
    finally:
        server.stop()


async def test_a_message_queued_before_a_restart_goes_out_after_it(settings: Settings, redeemed: sqlite3.Connection,
                                                                  smtp: MailServer) -> None:
    # A "restart": the queued row is all there is; a brand-new relay and Database send it.
    async with store_of(settings) as fresh:
        assert await relay_for(fresh, settings, smtp.port, Clock(DURING)).deliver_once() == 1
    assert len(smtp.received) == 1 and outbox(redeemed)["status"] == "sent"


async def test_temporary_4xx_then_success(db: Database, settings: Settings, smtp: MailServer, redeemed: sqlite3.Connection) -> None:
    smtp.handler.replies.extend(["451 4.3.0 try again later", "421 4.7.0 too busy"])
    clock = Clock(DURING)
    relay = relay_for(db, settings, smtp.port, clock)
    await relay.deliver_once()
    assert outbox(redeemed)["last_error"] == "451 4.3.0 try again later"
    clock.now += timedelta(seconds=5)
    await relay.deliver_once()
    assert outbox(redeemed)["attempts"] == 2 and outbox(redeemed)["status"] == "queued"
    clock.now += timedelta(seconds=9)
    assert await relay.deliver_once() == 0  # second backoff is 10 s
    clock.now += timedelta(seconds=1)
    await relay.deliver_once()
    row = outbox(redeemed)
    assert (row["status"], row["attempts"]) == ("sent", 3) and len(smtp.received) == 1


async def test_permanent_5xx_is_recorded_as_failed(
    db: Database, settings: Settings, smtp: MailServer, redeemed: sqlite3.Connection
) -> None:
    smtp.handler.replies.append("554 5.7.1 rejected")
    await relay_for(db, settings, smtp.port, Clock(DURING)).deliver_once()
    row = outbox(redeemed)
    assert (row["status"], row["last_error"]) == ("failed", "554 5.7.1 rejected") and not smtp.received


@pytest.mark.parametrize(("reply", "status"), [("550 5.1.1 no such user", "failed"), ("450 4.2.1 mailbox busy", "queued")])
async def test_a_refused_recipient(db: Database, settings: Settings, smtp: MailServer, redeemed: sqlite3.Connection,
                                   reply: str, status: str) -> None:
    smtp.handler.refuse["ann@example.com"] = reply
    await relay_for(db, settings, smtp.port, Clock(DURING)).deliver_once()
    assert outbox(redeemed)["status"] == status and reply[:3] in outbox(redeemed)["last_error"]


async def test_a_partially_refused_recipient_list_is_a_permanent_failure(db: Database, settings: Settings, smtp: MailServer,
                                                                        redeemed: sqlite3.Connection) -> None:
    from promo.db import transaction
    with transaction(redeemed):
        redeemed.execute("UPDATE outbox SET status = 'sent'")
        enqueue(redeemed, template="signin_link", recipient="ann@example.com, bob@example.com", subject_ref="signin:x",
                at=DURING, payload={"link": "http://promo.test/signin/t", "minutes": 15})
    smtp.handler.refuse["bob@example.com"] = "550 5.1.1 no such user"
    await relay_for(db, settings, smtp.port, Clock(DURING)).deliver_once()
    row = outbox(redeemed)
    assert row["status"] == "failed" and "partially refused" in row["last_error"] and "bob@example.com" in row["last_error"]


async def test_a_slow_server_times_out_and_is_retried(db: Database, settings: Settings, smtp: MailServer,
                                                      redeemed: sqlite3.Connection) -> None:
    smtp.handler.stall_seconds = 4  # longer than the relay's 2 s timeout
    await relay_for(db, settings, smtp.port, Clock(DURING)).deliver_once()
    row = outbox(redeemed)
    assert row["status"] == "queued" and "Timeout" in row["last_error"]


async def test_temporary_failures_stop_after_max_attempts(db: Database, settings: Settings, redeemed: sqlite3.Connection) -> None:
    clock = Clock(DURING)
    relay = relay_for(db, settings, free_port(), clock, max_attempts=3)
    for _ in range(3):
        await relay.deliver_once()
        clock.now += timedelta(hours=1)
    row = outbox(redeemed)
    assert (row["status"], row["attempts"]) == ("failed", 3) and row["last_error"].startswith("gave up after 3 attempts")


async def test_the_sign_in_link_is_cleared_from_the_outbox_once_sent(db: Database, settings: Settings, smtp: MailServer,
                                                                     redeemed: sqlite3.Connection) -> None:
    from promo.db import transaction
    with transaction(redeemed):
        redeemed.execute("UPDATE outbox SET status = 'sent'")
        enqueue(redeemed, template="signin_link", recipient="ann@example.com", subject_ref="signin:abc", at=DURING, locale="da",
                payload={"link": "http://promo.test/signin/SECRET", "minutes": 15})
    await relay_for(db, settings, smtp.port, Clock(DURING)).deliver_once()
    row = outbox(redeemed)
    assert row["status"] == "sent" and row["payload"] is None
    assert "http://promo.test/signin/SECRET" in smtp.received[0].get_body(("plain",)).get_content()
    assert smtp.received[0]["Content-Language"] == "da"


async def test_the_development_sink_keeps_what_it_receives() -> None:
    port = free_port()
    server, sink = await start_sink("127.0.0.1", port)
    try:
        await aiosmtplib.send("From: a@example.com\r\nTo: b@example.com\r\nSubject: Hi\r\n\r\nHello\r\n",
                              sender="a@example.com", recipients=["b@example.com"], hostname="127.0.0.1", port=port)
    finally:
        server.close()
        await server.wait_closed()
    [message] = sink.messages
    assert (message.subject, message.recipients, message.text.strip()) == ("Hi", ("b@example.com",), "Hello")



async def test_the_relay_logs_in_when_configured(db: Database, settings: Settings, redeemed: sqlite3.Connection) -> None:
    server = MailServer(login=("promo", "s3cret")).start()
    try:
        clock = Clock(DURING)
        await relay_for(db, settings, server.port, clock, username="promo", password="wrong").deliver_once()
        row = outbox(redeemed)
        assert row["status"] == "queued" and "535" in row["last_error"] and not server.received  # kept for a retry
        clock.now += timedelta(minutes=1)
        await relay_for(db, settings, server.port, clock, username="promo", password="s3cret").deliver_once()
        assert outbox(redeemed)["status"] == "sent" and len(server.received) == 1
        assert await relay_for(db, settings, server.port, clock).deliver_once() == 0  # sent once: nothing left
    finally:
        server.stop()


async def test_a_server_going_down_mid_batch_loses_nothing(db: Database, settings: Settings, redeemed: sqlite3.Connection,
                                                           stored: object) -> None:
    add_activations(redeemed, [(n, "O365-HOME-ESD", "DK", f"user{n}@example.com") for n in range(10, 14)])
    add_codes(redeemed, stored, 4, start=100)  # type: ignore[arg-type]
    for n in range(10, 14):
        assert redeem(redeemed, key=n, account=f"user{n}@example.com").redeemed
    smtp = MailServer().start()
    clock = Clock(DURING)
    relay = relay_for(db, settings, smtp.port, clock)
    smtp.handler.replies.extend(["250 OK", "250 OK"])
    original = smtp.handler.handle_DATA

    async def die_on_third(server: object, session: object, envelope: object) -> str:
        if len(smtp.received) == 2:
            server.transport.close()  # type: ignore[attr-defined]  # the server goes away mid-batch
            return "421 closing"
        return await original(server, session, envelope)

    smtp.handler.handle_DATA = die_on_third  # type: ignore[method-assign]
    assert await relay.deliver_once() == 5
    rows = redeemed.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall()
    assert dict((r[0], r[1]) for r in rows) == {"sent": 2, "queued": 3}
    smtp.stop()
    restarted = MailServer(smtp.port).start()
    try:
        clock.now += timedelta(minutes=5)
        assert await relay.deliver_once() == 3
        assert redeemed.execute("SELECT COUNT(*) FROM outbox WHERE status = 'sent'").fetchone()[0] == 5
        assert len(restarted.received) == 3  # nothing sent twice
    finally:
        restarted.stop()


async def test_a_failed_email_is_visible_to_auditors(db: Database, settings: Settings, smtp: MailServer,
                                                     redeemed: sqlite3.Connection) -> None:
    smtp.handler.replies.append("550 5.1.1 mailbox unavailable")
    await relay_for(db, settings, smtp.port, Clock(DURING)).deliver_once()
    event = redeemed.execute("SELECT tag, subject, data FROM audit_events ORDER BY seq DESC LIMIT 1").fetchone()
    assert event["tag"] == "mail:message:failed" and event["subject"].startswith("redemption:")
    assert "550 5.1.1 mailbox unavailable" in event["data"] and reward_code(0) not in event["data"]
    assert_chain_verifies(redeemed)


async def test_parallel_lanes_send_every_message_once(db: Database, settings: Settings, smtp: MailServer,
                                                      redeemed: sqlite3.Connection, stored: object) -> None:
    add_activations(redeemed, [(n, "O365-HOME-ESD", "DK", f"user{n}@example.com") for n in range(20, 30)])
    add_codes(redeemed, stored, 10, start=200)  # type: ignore[arg-type]
    for n in range(20, 30):
        assert redeem(redeemed, key=n, account=f"user{n}@example.com").redeemed
    relay = relay_for(db, settings, smtp.port, Clock(DURING), connections=4)
    assert await relay.deliver_once(keep_open=True) == 11
    assert sum(1 for lane in relay._lanes if lane is not None) == 4  # four connections were used
    await relay.close()
    assert redeemed.execute("SELECT COUNT(*) FROM outbox WHERE status = 'sent'").fetchone()[0] == 11
    ids = [m["Message-ID"] for m in smtp.received]
    assert len(ids) == len(set(ids)) == 11


def _built(settings: Settings, recipient: str, locale: str) -> EmailMessage:
    """build_email's message as a mail client reads it (flattened, then parsed)."""
    message = OutboxMessage(id=1, message_id="<signin-x.1@promo.test>", template="signin_link", recipient=recipient,
                            subject_ref="signin:x", attempts=0, locale=locale,
                            payload={"link": "http://promo.test/signin/T", "minutes": 15})
    built = build_email(message, dict(message.payload or {}), Templates(auto_reload=False), settings.mail,
                        "http://promo.test", DURING)
    data = built.data if isinstance(built, RawEmail) else flatten_message(built)
    parsed = message_from_bytes(data, policy=email_policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


@pytest.mark.parametrize("recipient", ["ann@example.com", "ærø@example.dk"])
def test_built_emails_carry_every_header_and_both_parts_in_the_readers_language(settings: Settings, recipient: str) -> None:
    """ASCII addresses take the direct wire-form builder, UTF-8 addresses EmailMessage; a
    reader cannot tell them apart."""
    email = _built(settings, recipient, "da")
    assert email["To"] == recipient and email["From"] == settings.mail.from_address
    assert email["Subject"] == "Dit link til at logge på" and email["Content-Language"] == "da"
    assert email["Message-ID"] == "<signin-x.1@promo.test>" and email["Auto-Submitted"] == "auto-generated"
    assert email["Date"] == "Sun, 01 Sep 2013 12:00:00 +0000"
    assert email.get_content_type() == "multipart/alternative"
    assert "http://promo.test/signin/T" in email.get_body(("plain",)).get_content()
    assert 'href="http://promo.test/signin/T"' in email.get_body(("html",)).get_content()
    assert "15 minutter" in email.get_body(("plain",)).get_content()


@pytest.mark.parametrize("subject", [
    "Din Xbox Live Gold-kode: 12 måneder, gratis",  # not ASCII: an encoded word
    "Your free 12-month Xbox Live Gold code for buying and activating Office 365 " * 3,  # ASCII, long: folded
    "Ærø " * 40,  # long and not ASCII: several encoded words
])
def test_the_wire_form_folds_and_encodes_headers_as_a_reader_expects(subject: str) -> None:
    headers = {"From": "Promo <no-reply@promo.invalid>", "To": "ann@example.com", "Subject": subject,
               "Message-ID": "<x.1@promo.test>", "Date": "Sun, 01 Sep 2013 12:00:00 +0000", "Content-Language": "da"}
    data = _raw_mime(headers, "Kære Ann\n\nkoden: ABCDE\n" * 20, "<p>Kære Ann</p>" * 20)
    assert data.isascii() and all(len(line) <= 78 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")  # CRLF line ends only
    parsed = message_from_bytes(data, policy=email_policy.default)
    assert isinstance(parsed, EmailMessage) and not parsed.defects
    assert {name: parsed[name] for name in headers} == headers
    assert parsed.get_body(("plain",)).get_content() == "Kære Ann\n\nkoden: ABCDE\n" * 20
    assert parsed.get_body(("html",)).get_content() == "<p>Kære Ann</p>" * 20


@pytest.mark.parametrize("value", ["ann@example.com\r\nBcc: eve@example.com", "x\ny", "ærø@example.dk\nBcc: eve@x.y"])
def test_a_header_value_with_a_line_break_is_never_sent(value: str) -> None:
    with pytest.raises(PermanentFailure, match="line break"):
        _raw_mime({"From": "a@b.c", "To": value}, "text", "<p>html</p>")
    with pytest.raises(PermanentFailure, match="line break"):  # the builder for UTF-8 addresses too
        _modern_email({"From": "a@b.c", "To": value, "Content-Language": "da"}, "text", "<p>html</p>")


async def test_an_email_that_cannot_be_built_is_failed_and_the_batch_goes_on(
        db: Database, settings: Settings, smtp: MailServer, redeemed: sqlite3.Connection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from promo.db import transaction
    with transaction(redeemed):
        redeemed.execute("UPDATE outbox SET status = 'sent'")
        for recipient in ("ann@example.com", "bob@example.com"):
            enqueue(redeemed, template="signin_link", recipient=recipient, subject_ref=f"signin:{recipient}", at=DURING,
                    payload={"link": "http://promo.test/signin/T", "minutes": 15})
    real = _raw_mime
    monkeypatch.setattr("promo.mail._raw_mime", lambda headers, text, html: real(
        headers | ({"To": "bob@example.com\r\nBcc: eve@example.com"} if headers["To"] == "bob@example.com" else {}),
        text, html))
    assert await relay_for(db, settings, smtp.port, Clock(DURING)).deliver_once() == 2
    assert [m["To"] for m in smtp.received] == ["ann@example.com"]
    rows = redeemed.execute("SELECT recipient, status, last_error FROM outbox WHERE subject_ref LIKE 'signin:%' ORDER BY id")
    assert [tuple(r) for r in rows] == [("ann@example.com", "sent", None),
                                        ("bob@example.com", "failed", "the To header holds a line break")]


# ---- a poison row fails alone (issue 14, section 2): whatever one message makes raise
# while it is leased, read, built or sent, the relay records that message's failure with
# an audit event, and sends the next one. Rows are written here as any writer could.

def insert_row(conn: sqlite3.Connection, **columns: object) -> int:
    """An outbox row due a minute before the redemption's email (so it is taken first)."""
    import json

    from promo.db import transaction
    from promo.timeutil import db_time
    values: dict[str, object] = {
        "message_id": "<poison.1@promo.test>", "template": "signin_link", "recipient": "bob@example.com",
        "subject_ref": "signin:poison", "status": "queued", "attempts": 0, "next_attempt_at": db_time(DURING - timedelta(minutes=1)),
        "created_at": db_time(DURING), "locale": "en",
        "payload": json.dumps({"link": "http://promo.test/signin/SECRET", "minutes": 15}), **columns}
    names = ", ".join(values)
    expressions = ", ".join(f"CAST(:{n} AS TEXT)" if isinstance(values[n], bytes) else f":{n}" for n in values)
    with transaction(conn):
        cursor = conn.execute(f"INSERT INTO outbox ({names}) VALUES ({expressions})", values)  # noqa: S608 - column names are ours
    assert cursor.lastrowid is not None
    return cursor.lastrowid


def anns_email(conn: sqlite3.Connection) -> str:
    """The status of the redemption's email (the row written before any poison)."""
    return str(conn.execute("SELECT status FROM outbox WHERE recipient = 'ann@example.com'").fetchone()[0])


def outbox_row(conn: sqlite3.Connection, row_id: int) -> tuple[object, ...]:
    # SQLite: as bytes, whatever the row holds; PostgreSQL's text is always UTF-8.
    error = "CAST(last_error AS BLOB)" if dialect_of(conn).name == "sqlite" else "convert_to(last_error, 'UTF8')"
    row = conn.execute(f"SELECT status, attempts, {error} FROM outbox WHERE id = ?", (row_id,)).fetchone()  # noqa: S608
    return row[0], row[1], bytes(row[2] or b"").decode("utf-8", "replace")


POISON = {  # what a row holds -> the error recorded for it
    "a NUL in an ASCII address": ({"recipient": "x\x00y@example.com"}, "could not be sent: ValueError"),
    "a NUL in a UTF-8 address": ({"recipient": "ærø\x00@example.dk"}, "could not be sent: ValueError"),
    "a line break in an address": ({"recipient": "bob@example.com\r\nBcc: eve@example.com"}, "the To header holds a line break"),
    "a line break in the language": ({"locale": "da\r\nBcc: eve@example.com"}, "the Content-Language header holds a line break"),
    "a payload that is not JSON": ({"payload": "{not json"}, "unreadable outbox row: JSONDecodeError"),
    "a payload that is not an object": ({"payload": "[1, 2]"}, "TypeError"),
    "a reference that is not a number": ({"template": "reward_code", "subject_ref": "redemption:x1"}, "ValueError"),
    "a template that does not exist": ({"template": "no_such_email"}, "TemplatesNotFound"),
    "attempts that are not a number": ({"attempts": "many"}, "unreadable outbox row: ValueError"),
    "an address that is not UTF-8": ({"recipient": b"\xff\xfe@example.com"},
                                     "unreadable outbox row: Could not decode to UTF-8 column 'recipient'"),
    "a payload that is not UTF-8": ({"payload": b'{"link": "http://promo.test/signin/SECRET\xff"}'},
                                    "unreadable outbox row: Could not decode to UTF-8 column 'payload'"),
}


# What PostgreSQL's typed columns do with the poisons SQLite stores: each is refused as it is
# written, with its own clear error (never a 500), so no relay ever meets it. A value that is
# not UTF-8 reaches the driver as Python holds such bytes in a str (surrogate escapes).
REFUSED_BY_POSTGRESQL: dict[str, type[BaseException]] = {
    "a NUL in an ASCII address": InputError,  # the adapter: "holds a NUL character" (a 4xx)
    "a NUL in a UTF-8 address": InputError,
    "a payload that is not JSON": psycopg.errors.InvalidTextRepresentation,  # jsonb
    "attempts that are not a number": psycopg.errors.InvalidTextRepresentation,  # integer
    "an address that is not UTF-8": UnicodeEncodeError,  # text is UTF-8: the driver cannot send it
    "a payload that is not UTF-8": UnicodeEncodeError,
}


@pytest.mark.parametrize("poison", list(POISON), ids=list(POISON))
async def test_a_poison_row_fails_alone_and_the_next_email_goes_out(db: Database, settings: Settings, smtp: MailServer,
                                                                     redeemed: sqlite3.Connection, poison: str) -> None:
    columns, error = POISON[poison]
    if dialect_of(redeemed).name == "postgresql" and poison in REFUSED_BY_POSTGRESQL:
        as_str = {k: v.decode("utf-8", "surrogateescape") if isinstance(v, bytes) else v for k, v in columns.items()}
        with pytest.raises(REFUSED_BY_POSTGRESQL[poison]):
            insert_row(redeemed, **as_str)
        assert redeemed.execute("SELECT count(*) FROM outbox WHERE subject_ref = 'signin:poison'").fetchone()[0] == 0
        await relay_for(db, settings, smtp.port, Clock(DURING)).deliver_once()
        assert [m["To"] for m in smtp.received] == ["ann@example.com"] and anns_email(redeemed) == "sent"
        return
    row_id = insert_row(redeemed, **columns)
    relay = relay_for(db, settings, smtp.port, Clock(DURING))
    await relay.deliver_once()
    status, attempts, last_error = outbox_row(redeemed, row_id)
    assert (status, attempts) == ("failed", 1) and error in last_error, last_error
    assert "SECRET" not in last_error  # a sign-in link is a secret, also in an error
    assert [m["To"] for m in smtp.received] == ["ann@example.com"]  # the redemption's email, taken after it
    assert anns_email(redeemed) == "sent"
    event = redeemed.execute("SELECT subject, data FROM audit_events WHERE tag = 'mail:message:failed'").fetchone()
    assert event["subject"] in ("signin:poison", "redemption:x1", f"outbox:{row_id}") and "SECRET" not in event["data"]
    assert_chain_verifies(redeemed)
    assert await relay.deliver_once() == 0  # nothing left leased for later: failed once and for all


async def test_a_poison_row_does_not_stop_the_running_relay(db: Database, settings: Settings, smtp: MailServer,
                                                            redeemed: sqlite3.Connection) -> None:
    """run() itself, as `promo serve` runs it: before the fix the ValueError ended it."""
    import asyncio
    poison = {"recipient": "x\x00y@example.com"} if dialect_of(redeemed).name == "sqlite" else {"template": "no_such_email"}
    poisoned = insert_row(redeemed, **poison)  # (PostgreSQL refuses a NUL at INSERT)
    relay = relay_for(db, settings, smtp.port, Clock(DURING), connections=4)
    task = asyncio.create_task(relay.run())
    try:
        for _ in range(200):
            if smtp.received:
                break
            await asyncio.sleep(0.02)
        assert [m["To"] for m in smtp.received] == ["ann@example.com"] and not task.done()
        insert_row(redeemed, message_id="<later.1@promo.test>", recipient="carol@example.com", subject_ref="signin:later")
        relay.wake()
        for _ in range(200):
            if len(smtp.received) == 2:
                break
            await asyncio.sleep(0.02)
        assert smtp.received[1]["To"] == "carol@example.com" and not task.done()
    finally:
        relay.stop()
        await asyncio.wait_for(task, 5)
    assert outbox_row(redeemed, poisoned)[0] == "failed"


async def test_an_error_in_the_middle_of_an_envelope_leaves_no_broken_connection(
        db: Database, settings: Settings, smtp: MailServer, redeemed: sqlite3.Connection,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The SMTP client raised after MAIL FROM (the state the server is in is unknown): the
    lane's connection is closed, so the next message does not meet "503 nested MAIL"."""
    poisoned = insert_row(redeemed)
    real = aiosmtplib.SMTP._send_recipients
    calls = 0

    async def fails_once(self: aiosmtplib.SMTP, *args: object, **kwargs: object) -> object:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("the client broke after MAIL FROM")
        return await real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(aiosmtplib.SMTP, "_send_recipients", fails_once)
    relay = relay_for(db, settings, smtp.port, Clock(DURING))  # one lane: both messages on it, in order
    assert await relay.deliver_once(keep_open=True) == 2
    await relay.close()
    assert outbox_row(redeemed, poisoned)[:2] == ("failed", 1)
    assert "RuntimeError: the client broke after MAIL FROM" in outbox_row(redeemed, poisoned)[2]
    assert anns_email(redeemed) == "sent" and [m["To"] for m in smtp.received] == ["ann@example.com"]


async def test_a_line_break_in_a_subject_stays_inside_the_subject(db: Database, settings: Settings, smtp: MailServer,
                                                                  redeemed: sqlite3.Connection) -> None:
    """A campaign's name in the low-stock alert's subject: line breaks and control characters
    never start a header of their own (nor reach the wire); the email still goes out."""
    import json
    nul = "\x00" if dialect_of(redeemed).name == "sqlite" else ""  # jsonb refuses \u0000
    row_id = insert_row(redeemed, template="low_stock", subject_ref="stock-alert:1", payload=json.dumps(
        {"slug": "x", "name": "Offer\r\nBcc: eve@example.com" + nul + "\x1b", "available": 1, "threshold": 5}))
    await relay_for(db, settings, smtp.port, Clock(DURING)).deliver_once()
    assert outbox_row(redeemed, row_id)[0] == "sent"
    alert = next(m for m in smtp.received if m["To"] == "bob@example.com")
    assert alert["Subject"] == "Low stock: 1 codes left for Offer Bcc: eve@example.com" and alert["Bcc"] is None
    assert "eve@example.com" not in str(smtp.received[0]["To"])
