"""The outbox relay: sends queued emails over SMTP (aiosmtplib) after their transaction
committed. Temporary failures (4xx, connection errors, timeouts) are retried with
exponential backoff up to mail.max_attempts; permanent ones (5xx, any refused recipient)
are marked failed. A message is never lost: it stays queued until sent or failed, across
restarts, and keeps its Message-ID, so an unavoidable duplicate is recognisable.

Whatever one message makes raise while its data is read, it is built or sent (any
exception: data that does not fit its template, an address the SMTP client refuses to
write) fails that message alone, recorded and audited like a 5xx; the batch and the relay
go on. The relay's run() is supervised in `promo serve` (promo/supervisor.py) in case
anything else ever escapes it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.header import Header
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses, parseaddr
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import aiosmtplib

from promo.backends.notify import listening
from promo.config import MailSettings
from promo.db import STORE_ERRORS, is_unavailable
from promo.email_contexts import PermanentFailure, context_for
from promo.email_layout import render_email, service_name
from promo.logs import get_logger
from promo.outbox import OutboxMessage, claim_due, mark_deferred, mark_failed, mark_sent, release
from promo.templating import Templates
from promo.timeutil import utcnow

if TYPE_CHECKING:  # the Protocol both stores satisfy; imported for annotations only
    from promo.backends.store import Store

log = get_logger("promo.mail")
CRLF = "\r\n"

SECRET_PAYLOAD_TEMPLATES = {"signin_link"}  # their payload is cleared once sent
MAX_BACKOFF = timedelta(hours=1)
_TEMPORARY = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError,
              aiosmtplib.SMTPConnectTimeoutError, OSError, asyncio.TimeoutError)


def build_email(message: OutboxMessage, context: dict[str, Any], templates: Templates, settings: MailSettings,
                public_url: str, now: datetime) -> RawEmail | EmailMessage:
    """multipart/alternative (text and HTML) with the headers every email carries."""
    parts = render_email(templates, message.template, message.locale,  # the branded layout: promo/email_layout.py
                         {**context, "public_url": public_url, "recipient": message.recipient},
                         service=service_name(settings.from_address))
    subject, text, html = parts.subject, parts.text, parts.html
    headers = {"From": settings.from_address, "To": message.recipient, "Subject": subject,
               "Message-ID": message.message_id, "Date": format_datetime(now), "Auto-Submitted": "auto-generated",
               "Content-Language": message.locale}
    if not (settings.from_address + message.recipient).isascii():
        return _modern_email(headers, text, html)  # UTF-8 addresses need the modern API's SMTPUTF8 handling
    return RawEmail(sender=_address(settings.from_address), recipients=_envelope_recipients(message.recipient),
                    data=_raw_mime(headers, text, html))


@dataclass(frozen=True)
class RawEmail:
    """An email already in its wire form, for ASCII addresses (nearly all of them)."""

    sender: str  # the envelope's addresses
    recipients: list[str]
    data: bytes


@lru_cache(maxsize=16)
def _address(from_header: str) -> str:
    return parseaddr(from_header)[1] or from_header


def _envelope_recipients(to_header: str) -> list[str]:
    """The addresses in a To header, as send_message would find them (one, nearly always)."""
    if "," not in to_header and "<" not in to_header:
        return [to_header]
    return [address for _, address in getaddresses([to_header]) if address]


def _raw_mime(headers: dict[str, str], text: str, html: str) -> bytes:
    """multipart/alternative, written out directly. The email package's generator (and its
    compat32 classes) took 60 % of the relay's time to write this same fixed shape; a mail
    client reads both the same way (tests/test_mail.py). Headers are folded (and encoded
    when not ASCII) by email.header.Header; both bodies are UTF-8 in base64."""
    boundary = f"=_promo_{secrets.token_hex(12)}"  # base64 lines never hold "-": no clash
    lines = [f'Content-Type: multipart/alternative;{CRLF} boundary="{boundary}"', "MIME-Version: 1.0"]
    _single_lines(headers)
    for name, value in headers.items():
        if value.isascii() and len(name) + len(value) < 76:
            lines.append(f"{name}: {value}")
        else:
            folded = Header(value, "us-ascii" if value.isascii() else "utf-8", header_name=name).encode(linesep=CRLF)
            lines.append(f"{name}: {folded}")
    head = (CRLF.join(lines) + CRLF + CRLF).encode("ascii")
    parts = [head]
    for subtype, body in (("plain", text), ("html", html)):
        parts.append(f"--{boundary}\r\nContent-Type: text/{subtype}; charset=\"utf-8\"\r\nMIME-Version: 1.0\r\n"
                     "Content-Transfer-Encoding: base64\r\n\r\n".encode("ascii"))
        parts.append(base64.encodebytes(body.encode("utf-8")).replace(b"\n", b"\r\n"))
    parts.append(f"--{boundary}--\r\n".encode("ascii"))
    return b"".join(parts)


def _single_lines(headers: dict[str, str]) -> None:
    """Never let a value start a header of its own (or a body)."""
    for name, value in headers.items():
        if "\r" in value or "\n" in value:
            raise PermanentFailure(f"the {name} header holds a line break")


def _modern_email(headers: dict[str, str], text: str, html: str) -> EmailMessage:
    _single_lines(headers)
    email = EmailMessage()
    for name, value in headers.items():
        if name != "Content-Language":
            email[name] = value
    email.set_content(text)
    email.add_alternative(html, subtype="html")
    email["Content-Language"] = headers["Content-Language"]  # after set_content, which drops Content-* headers
    return email


def email_contexts(conn: sqlite3.Connection, messages: list[OutboxMessage]) -> list[dict[str, Any] | Exception]:
    """Every message's template data in one read (one hop for the batch). A message whose
    data cannot be read (any exception: a reference that is not a number, a row gone) gets
    its exception instead, and fails alone; a database that refuses for now fails the read."""
    out: list[dict[str, Any] | Exception] = []
    for message in messages:
        try:
            out.append(context_for(conn, message))
        except Exception as exc:
            if is_unavailable(exc):
                raise
            out.append(exc)
    return out


Outcome = tuple[OutboxMessage, str, str]  # (message, "sent" | "temporary" | "failed", error)


@dataclass(frozen=True)
class Lease:
    """A batch's lease as its lanes see it: no send starts within `margin` (one SMTP timeout)
    of its end, and none runs past half that margin before it (time left to record it)."""

    ends: datetime
    margin: timedelta

    @property
    def send_by(self) -> datetime:
        return self.ends - self.margin

    def seconds_left(self, now: datetime) -> float:
        return max(0.0, (self.ends - self.margin / 2 - now).total_seconds())


class MailRelay:
    def __init__(self, db: Store, settings: MailSettings, templates: Templates, public_url: str, *,
                 clock: Callable[[], datetime] = utcnow, batch_size: int = 50, poll_seconds: float = 1.0):
        self.db, self.settings, self.templates, self.public_url = db, settings, templates, public_url
        self.clock, self.batch_size, self.poll_seconds = clock, batch_size, poll_seconds
        self._wake = asyncio.Event()
        self.idle = asyncio.Event()  # set while run() waits for work (a wake, a NOTIFY or the poll)
        self._stopping = False
        # One kept-alive connection per lane; a batch is split across the lanes, which send
        # concurrently (SMTP round trips overlap; rendering stays on the one event loop).
        self._lanes: list[aiosmtplib.SMTP | None] = [None] * max(1, settings.connections)

    def wake(self) -> None:
        """Something was queued: send now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        """Send until stop(). A database that is away is waited out here; anything else that
        escapes ends run() with that exception, for its supervisor to restart it. On
        PostgreSQL a NOTIFY from any instance that queued email wakes it (backends/notify.py)."""
        try:
            async with listening(self.db, self.wake):
                await self._loop()
        finally:
            await self.close()

    async def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()  # what is queued from here on wakes the next wait
            try:
                handled = await self.deliver_once(keep_open=True)
            except STORE_ERRORS + (OSError,) as exc:  # the database is away: try again later
                log.warning("mail.relay_error", error=type(exc).__name__)
                handled = 0
            if handled == 0 and not self._stopping:
                await self.close()  # idle: do not hold the server's connection
                self.idle.set()
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that arrives as the event fires, and shutdown would then wait forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_seconds):
                        await self._wake.wait()
                self.idle.clear()

    def backoff(self, attempts: int) -> timedelta:
        return min(timedelta(seconds=self.settings.retry_base_seconds * 2 ** attempts), MAX_BACKOFF)

    async def deliver_once(self, *, keep_open: bool = False) -> int:
        """Send what is due; returns how many messages were handled (sent, deferred or failed).
        The batch is leased first (SKIP LOCKED: relays of other instances take other rows),
        so a second relay never sends it at the same time; if this process dies mid-batch,
        the rest goes out from any relay when the lease ends (mail.lease_seconds). A live
        relay never sends past its lease: each lane stops one timeout before the lease ends,
        hands back what it did not send (outbox.release), and no send outlasts the lease.
        One hop leases the batch and one reads every message's data; outcomes are recorded
        as they happen (see _send_lane)."""
        now = self.clock()
        lease = timedelta(seconds=self.settings.lease_seconds)
        # Grouped: a lease is short, and on the writer thread it would send the redemptions'
        # groups there too while it ran (see promo/db.py).
        batch = await self.db.write_grouped(claim_due, now=now, lease=lease, limit=self.batch_size)
        if not batch:
            return 0
        contexts = await self.db.read(email_contexts, batch)
        lanes = len(self._lanes)
        work = list(zip(batch, contexts, strict=True))
        until = Lease(now + lease, timedelta(seconds=self.settings.timeout_seconds))
        try:
            # Every lane finishes before an error of one is raised: none is left sending
            # on its own while a restarted relay opens the same lane again.
            results = await asyncio.gather(*(self._send_lane(lane, work[lane::lanes], until) for lane in range(lanes)),
                                           return_exceptions=True)
        finally:
            if not keep_open:
                await self.close()
        sent = 0
        for result in results:
            if isinstance(result, BaseException):
                raise result
            sent += len(result)
        return sent

    async def _send_lane(self, lane: int, work: list[tuple[OutboxMessage, dict[str, Any] | Exception]],
                         until: Lease) -> list[Outcome]:
        """Send one lane's share of a batch over that lane's connection, in order. Each
        outcome is recorded before the next send (group commit merges the lanes' records),
        so a crash leaves at most one sent-but-unrecorded message per lane to go out twice.
        Near the lease's end the lane stops and releases the rest (see deliver_once)."""
        outcomes: list[Outcome] = []

        async def record(*new: Outcome) -> None:
            outcomes.extend(new)
            await self.db.write_grouped(self._record, list(new))

        try:
            for index, (message, context) in enumerate(work):
                if self.clock() >= until.send_by:  # another relay may take these once the lease ends
                    await self._release([rest.id for rest, _ in work[index:]], until)
                    break
                if isinstance(context, Exception):
                    await record((message, "failed", _describe(context)))
                    continue
                try:
                    email = build_email(message, context, self.templates, self.settings, self.public_url, self.clock())
                except Exception as exc:  # any exception: this message cannot be built, the others still can
                    await record((message, "failed", _describe(exc)))
                    continue
                try:
                    async with asyncio.timeout(until.seconds_left(self.clock())):  # no send outlasts the lease
                        outcome, usable = await self._send(lane, message, email)
                except TimeoutError:
                    await self.close(lane)  # the SMTP transaction stopped at an unknown step
                    await record((message, "temporary", "the lease ended during the send"))
                    await self._release([rest.id for rest, _ in work[index + 1:]], until)  # never tried: no attempt spent
                    break
                await record(outcome)
                if not usable:  # the connection broke: the rest of this lane waits for the next round
                    await record(*((rest, "temporary", "connection lost earlier in the batch") for rest, _ in work[index + 1:]))
                    break
        except _TEMPORARY + (aiosmtplib.SMTPException,) as exc:  # could not connect at all
            done = {m.id for m, _, _ in outcomes}
            await record(*((m, "temporary", f"connect: {_describe(exc)}") for m, _ in work if m.id not in done))
        return outcomes

    async def _release(self, ids: list[int], until: Lease) -> None:
        released = await self.db.write_grouped(release, ids, leased_until=until.ends, now=self.clock())
        log.info("mail.released", messages=released)

    def _record(self, conn: sqlite3.Connection, outcomes: list[Outcome]) -> None:
        now = self.clock()
        for message, kind, error in outcomes:
            if kind == "sent":
                mark_sent(conn, message.id, now=now, clear_payload=message.template in SECRET_PAYLOAD_TEMPLATES)
            elif kind == "temporary" and message.attempts + 1 < self.settings.max_attempts:
                mark_deferred(conn, message.id, error=error, retry_at=now + self.backoff(message.attempts))
                log.warning("mail.deferred", outbox_id=message.id, error=error, attempts=message.attempts + 1)
            else:
                if kind == "temporary":
                    error = f"gave up after {message.attempts + 1} attempts: {error}"
                mark_failed(conn, message.id, error=error, now=now)
                log.error("mail.failed", outbox_id=message.id, error=error)

    async def _connection(self, lane: int) -> aiosmtplib.SMTP:
        current = self._lanes[lane]
        if current is not None and current.is_connected:
            return current
        s = self.settings
        smtp = aiosmtplib.SMTP(hostname=s.host, port=s.port, timeout=s.timeout_seconds, start_tls=s.starttls)
        try:
            await smtp.connect()
            if s.username:
                await smtp.login(s.username, s.password or "")
        except BaseException:
            smtp.close()
            raise
        self._lanes[lane] = smtp
        return smtp

    async def close(self, lane: int | None = None) -> None:
        for index in range(len(self._lanes)) if lane is None else (lane,):
            smtp = self._lanes[index]
            if smtp is not None:
                with contextlib.suppress(Exception):
                    await smtp.quit()
                smtp.close()  # whatever quit managed, never leave the socket open
                self._lanes[index] = None

    async def _send(self, lane: int, message: OutboxMessage, email: RawEmail | EmailMessage) -> tuple[Outcome, bool]:
        """Send one message; returns its outcome and whether the connection is still usable."""
        reused = self._lanes[lane] is not None
        smtp = await self._connection(lane)
        try:
            if isinstance(email, RawEmail):
                refused, _reply = await smtp.sendmail(email.sender, email.recipients, email.data)
            else:
                refused, _reply = await smtp.send_message(email)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            kind = "temporary" if all(400 <= c < 500 for c in codes) else "failed"
            return (message, kind, f"recipient {'deferred' if kind == 'temporary' else 'refused'}: {codes}"), True
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                if exc.code == 421:  # the server is closing the connection
                    await self.close(lane)
                return (message, "temporary", _describe(exc)), exc.code != 421
            return (message, "failed", _describe(exc)), True
        except _TEMPORARY as exc:
            await self.close(lane)
            if reused and isinstance(exc, aiosmtplib.SMTPServerDisconnected):
                # A kept-alive connection the server had dropped: one fresh try, now.
                return await self._send(lane, message, email)
            return (message, "temporary", _describe(exc)), False
        except Exception as exc:  # anything else this message made the client raise (a control character in an address)
            # The SMTP transaction stopped at an unknown step: the next message starts on a
            # fresh connection rather than inside this one's envelope.
            await self.close(lane)
            return (message, "failed", f"could not be sent: {_describe(exc)}"), True
        if refused:  # some recipients took it, some did not: a permanent, partial failure
            return (message, "failed", f"partially refused: {sorted(refused)}"), True
        log.info("mail.sent", outbox_id=message.id, template=message.template, attempts=message.attempts + 1)
        return (message, "sent", ""), True


def _describe(exc: BaseException) -> str:
    """An error as last_error and the audit event keep it: our own PermanentFailure in its
    words, anything else with its type; storable whatever it holds (no lone surrogates)."""
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        text = f"{exc.code} {exc.message}"
    elif isinstance(exc, PermanentFailure):
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    return text[:500].encode("utf-8", "backslashreplace").decode("utf-8")
