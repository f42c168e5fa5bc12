"""What an outbox email's template renders from, looked up by template. Most emails carry
their data in the outbox row (its payload); a few read it when they are sent, because it
is a secret the outbox must not keep (a reward code, licence keys) or because it is read
fresh. Each domain registers a builder for those templates when it is imported; the relay
(promo/mail.py) asks `context_for` and imports no domain. Where a relay starts
(promo/app.py, `promo relay`), promo/email_domains.py imports every domain that registers."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from promo.outbox import OutboxMessage

# A builder returns the template's data, or None when the message is not one it reads
# (its payload is used then).
ContextBuilder = Callable[[sqlite3.Connection, OutboxMessage], dict[str, Any] | None]

_BUILDERS: dict[str, ContextBuilder] = {}


class PermanentFailure(Exception):
    """The message cannot be delivered or built; do not retry."""


def register(template: str, builder: ContextBuilder) -> None:
    """Read `template`'s data with `builder` when sending (call at import, once per template)."""
    if _BUILDERS.get(template, builder) is not builder:
        raise ValueError(f"the email template {template!r} already has a context builder")
    _BUILDERS[template] = builder


def registered() -> frozenset[str]:
    """The templates whose data is read when sending."""
    return frozenset(_BUILDERS)


def context_for(conn: sqlite3.Connection, message: OutboxMessage) -> dict[str, Any]:
    """What the template of an outbox row renders from (runs on the database thread)."""
    builder = _BUILDERS.get(message.template)
    if builder is not None and (context := builder(conn, message)) is not None:
        return context
    if message.payload is not None:
        return dict(message.payload)
    raise PermanentFailure(f"no data for template {message.template!r} ({message.subject_ref})")
