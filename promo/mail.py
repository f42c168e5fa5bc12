"""The outbox relay: sends queued emails over SMTP (aiosmtplib) after their transaction
committed. Temporary failures (4xx, connection errors, timeouts) are retried with
exponential backoff up to mail.max_attempts; permanent ones (5xx, any refused recipient)
are marked failed. A message is never lost: it stays queued until sent or failed, across
restarts, and keeps its Message-ID, so an unavoidable duplicate is recognisable."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Callable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

import aiosmtplib

from promo.campaign_store import get_campaign
from promo.config import MailSettings
from promo.db import Database
from promo.logs import get_logger
from promo.outbox import OutboxMessage, claim_due, mark_deferred, mark_failed, mark_sent
from promo.rewards import get_reward
from promo.templating import Templates
from promo.timeutil import utcnow

log = get_logger("promo.mail")

SECRET_PAYLOAD_TEMPLATES = {"signin_link"}  # their payload is cleared once sent
MAX_BACKOFF = timedelta(hours=1)
_TEMPORARY = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPConnectError, aiosmtplib.SMTPTimeoutError,
              aiosmtplib.SMTPConnectTimeoutError, OSError, asyncio.TimeoutError)


class PermanentFailure(Exception):
    """The message cannot be delivered or built; do not retry."""


def email_context(conn: sqlite3.Connection, message: OutboxMessage) -> dict[str, Any]:
    """What the template of an outbox row renders from (runs on the database thread)."""
    kind, _, ref = message.subject_ref.partition(":")
    if message.template == "reward_code" and kind == "redemption":
        reward = get_reward(conn, int(ref))
        if reward is None:
            raise PermanentFailure(f"redemption {ref} not found")
        campaign = get_campaign(conn, reward.campaign_slug).campaign
        country = reward.country or ""
        return {"reward": reward, "campaign": campaign, "country": country,
                "sponsor": campaign.sponsor_for(country),
                "support": campaign.support.for_country(country) if campaign.support else None}
    if message.payload is not None:
        return dict(message.payload)
    raise PermanentFailure(f"no data for template {message.template!r} ({message.subject_ref})")


def build_email(message: OutboxMessage, context: dict[str, Any], templates: Templates, settings: MailSettings,
                public_url: str, now: datetime) -> EmailMessage:
    base = f"email/{message.template}"
    ctx = {**context, "public_url": public_url, "recipient": message.recipient}
    email = EmailMessage()
    email["From"] = settings.from_address
    email["To"] = message.recipient
    email["Subject"] = templates.render(f"{base}/subject.txt", message.locale, **ctx).strip()
    email["Message-ID"] = message.message_id
    email["Date"] = format_datetime(now)
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(templates.render(f"{base}/body.txt", message.locale, **ctx))
    email.add_alternative(templates.render(f"{base}/body.html", message.locale, **ctx), subtype="html")
    email["Content-Language"] = message.locale  # after set_content, which drops Content-* headers
    return email


class MailRelay:
    def __init__(self, db: Database, settings: MailSettings, templates: Templates, public_url: str, *,
                 clock: Callable[[], datetime] = utcnow, batch_size: int = 50, poll_seconds: float = 1.0):
        self.db, self.settings, self.templates, self.public_url = db, settings, templates, public_url
        self.clock, self.batch_size, self.poll_seconds = clock, batch_size, poll_seconds
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Something was queued: send now instead of at the next poll."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def run(self) -> None:
        while not self._stopping:
            try:
                handled = await self.deliver_once()
            except (sqlite3.Error, OSError) as exc:  # the database is away: try again later
                log.warning("mail.relay_error", error=type(exc).__name__)
                handled = 0
            if handled == 0 and not self._stopping:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that arrives as the event fires, and shutdown would then wait forever.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_seconds):
                        await self._wake.wait()
                self._wake.clear()

    def backoff(self, attempts: int) -> timedelta:
        return min(timedelta(seconds=self.settings.retry_base_seconds * 2 ** attempts), MAX_BACKOFF)

    async def deliver_once(self) -> int:
        """Send what is due; returns how many messages were handled (sent, deferred or failed).
        The batch is leased first, so a second relay never sends it at the same time; if this
        process dies mid-batch, the rest goes out when the lease ends (3 x timeout + 30 s)."""
        lease = timedelta(seconds=self.settings.timeout_seconds * 3 + 30)
        batch = await self.db.write(claim_due, now=self.clock(), lease=lease, limit=self.batch_size)
        if not batch:
            return 0
        try:
            smtp = await self._connect()
        except _TEMPORARY + (aiosmtplib.SMTPException,) as exc:
            for message in batch:
                await self._temporary(message, f"connect: {_describe(exc)}")
            return len(batch)
        try:
            for index, message in enumerate(batch):
                if not await self._send_one(smtp, message):  # the connection broke: the rest wait
                    for rest in batch[index + 1:]:
                        await self._temporary(rest, "connection lost earlier in the batch")
                    break
        finally:
            with contextlib.suppress(Exception):
                await smtp.quit()
            smtp.close()  # whatever quit managed, never leave the socket open
        return len(batch)

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        smtp = aiosmtplib.SMTP(hostname=s.host, port=s.port, timeout=s.timeout_seconds, start_tls=s.starttls)
        await smtp.connect()
        if s.username:
            await smtp.login(s.username, s.password or "")
        return smtp

    async def _send_one(self, smtp: aiosmtplib.SMTP, message: OutboxMessage) -> bool:
        """Returns False when the connection is no longer usable."""
        try:
            context = await self.db.read(email_context, message)
            email = build_email(message, context, self.templates, self.settings, self.public_url, self.clock())
        except PermanentFailure as exc:
            await self._failed(message, str(exc))
            return True
        try:
            refused, _reply = await smtp.send_message(email)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            if all(400 <= c < 500 for c in codes):
                await self._temporary(message, f"recipient deferred: {codes}")
            else:
                await self._failed(message, f"recipient refused: {codes}")
            return True
        except aiosmtplib.SMTPResponseException as exc:
            if 400 <= exc.code < 500:
                await self._temporary(message, _describe(exc))
                return exc.code != 421  # 421: the server is closing the connection
            await self._failed(message, _describe(exc))
            return True
        except _TEMPORARY as exc:
            await self._temporary(message, _describe(exc))
            return False
        if refused:  # some recipients took it, some did not: a permanent, partial failure
            await self._failed(message, f"partially refused: {sorted(refused)}")
            return True
        await self.db.write(mark_sent, message.id, now=self.clock(),
                            clear_payload=message.template in SECRET_PAYLOAD_TEMPLATES)
        log.info("mail.sent", outbox_id=message.id, template=message.template, attempts=message.attempts + 1)
        return True

    async def _temporary(self, message: OutboxMessage, error: str) -> None:
        if message.attempts + 1 >= self.settings.max_attempts:
            await self._failed(message, f"gave up after {message.attempts + 1} attempts: {error}")
            return
        retry_at = self.clock() + self.backoff(message.attempts)
        await self.db.write(mark_deferred, message.id, error=error, retry_at=retry_at)
        log.warning("mail.deferred", outbox_id=message.id, error=error, attempts=message.attempts + 1)

    async def _failed(self, message: OutboxMessage, error: str) -> None:
        await self.db.write(mark_failed, message.id, error=error, now=self.clock())
        log.error("mail.failed", outbox_id=message.id, error=error)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return f"{exc.code} {exc.message}"
    return f"{type(exc).__name__}: {exc}"
