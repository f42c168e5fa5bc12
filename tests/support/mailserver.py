"""A real SMTP server for tests (aiosmtpd in its own thread) that can be made to misbehave."""

from __future__ import annotations

import asyncio
import socket
import warnings
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
        self.rcpt_to: list[str] = []  # every envelope recipient accepted, as the client sent it

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        self.rcpt_to.append(address)
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


class _PlainAuthController(Controller):
    """AUTH without TLS is deliberate on this loopback test server: aiosmtpd warns about it
    each time it builds a connection's SMTP object, so exactly that warning is muted there."""

    def factory(self) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Requiring AUTH while not requiring TLS", UserWarning)
            return super().factory()


class MailServer:
    def __init__(self, port: int | None = None, login: tuple[str, str] | None = None):
        self.port = port or free_port()
        self.handler = ScriptedHandler()
        self.login = login
        self._controller: Controller | None = None

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> Any:
        from aiosmtpd.smtp import AuthResult, LoginPassword

        ok = isinstance(auth_data, LoginPassword) and (auth_data.login.decode(), auth_data.password.decode()) == self.login
        # handled=False: let aiosmtpd answer (235 or 535); True would mean "I replied myself".
        return AuthResult(success=ok, handled=False)

    def start(self) -> MailServer:
        if self.login:  # a server that insists on AUTH (plain text allowed: loopback only)
            self._controller = _PlainAuthController(self.handler, hostname="127.0.0.1", port=self.port, auth_required=True,
                                                    auth_require_tls=False, authenticator=self._authenticate)
            self._controller.start()
            return self
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
