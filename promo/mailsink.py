"""A local SMTP sink for development: aiosmtpd on 127.0.0.1 inside `promo serve`, keeping
the last messages in memory for the /dev/mail page. Never enabled in production config."""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.smtp import SMTP

from promo.timeutil import utcnow


@dataclass(frozen=True)
class SunkMessage:
    number: int
    received_at: datetime
    mail_from: str
    recipients: tuple[str, ...]
    subject: str
    text: str
    html: str | None
    message_id: str


class SinkHandler:
    def __init__(self, keep: int = 200):
        self.messages: deque[SunkMessage] = deque(maxlen=keep)
        self._count = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        text = parsed.get_body(("plain",))
        html = parsed.get_body(("html",))
        self._count += 1
        self.messages.appendleft(SunkMessage(
            number=self._count, received_at=utcnow(), mail_from=envelope.mail_from,
            recipients=tuple(envelope.rcpt_tos), subject=str(parsed.get("Subject", "")),
            text=text.get_content() if text else "", html=html.get_content() if html else None,
            message_id=str(parsed.get("Message-ID", "")),
        ))
        return "250 Message accepted for delivery"

    def get(self, number: int) -> SunkMessage | None:
        return next((m for m in self.messages if m.number == number), None)


async def start_sink(host: str, port: int) -> tuple[asyncio.Server, SinkHandler]:
    handler = SinkHandler()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="promo-sink"), host, port)
    return server, handler
