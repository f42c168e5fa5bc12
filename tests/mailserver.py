"""A real SMTP server for tests (aiosmtpd in its own thread) that can be made to misbehave."""

from __future__ import annotations

import asyncio
import socket
from collections import deque
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ScriptedHandler:
    """Answers DATA with the next scripted reply ("250" when the script is empty);
    refuses RCPT for addresses in `refuse` with their reply; can stall DATA."""

    def __init__(self) -> None:
        self.replies: deque[str] = deque()
        self.refuse: dict[str, str] = {}
        self.stall_seconds = 0.0
        self.received: list[EmailMessage] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.stall_seconds:
            await asyncio.sleep(self.stall_seconds)
        reply = self.replies.popleft() if self.replies else "250 OK"
        if reply.startswith("250"):
            parsed = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
            assert isinstance(parsed, EmailMessage)
            self.received.append(parsed)
        return reply


class MailServer:
    def __init__(self, port: int | None = None):
        self.port = port or free_port()
        self.handler = ScriptedHandler()
        self._controller: Controller | None = None

    def start(self) -> MailServer:
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller:
            self._controller.stop()
            self._controller = None

    @property
    def received(self) -> list[EmailMessage]:
        return self.handler.received
