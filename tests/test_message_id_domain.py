"""The outbox (promo/outbox.py): the Message-ID's domain is set once per process, where the
settings are read, and every email queued afterwards carries it."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from promo import outbox
from promo.config import Settings
from promo.db import transaction
from promo.outbox import DEFAULT_MAIL_DOMAIN, enqueue, use_message_id_domain
from tests.support.mailserver import MailServer
from tests.support.web import sign_in

NOW = datetime(2013, 9, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def domain() -> Iterator[None]:
    before = outbox._message_id_domain
    yield
    use_message_id_domain(before)  # other tests queue with whatever their app set


def queue(conn: sqlite3.Connection, ref: str) -> str:
    with transaction(conn):
        return enqueue(conn, template="signin_link", recipient="ann@example.com", subject_ref=ref, at=NOW)


def test_every_message_id_carries_the_domain_set_once(conn: sqlite3.Connection, domain: None) -> None:
    use_message_id_domain(DEFAULT_MAIL_DOMAIN)
    assert queue(conn, "signin:a").endswith(f"@{DEFAULT_MAIL_DOMAIN}>")
    use_message_id_domain("mail.example.org")
    first, second = queue(conn, "signin:b"), queue(conn, "signin:c")
    assert first.startswith("<signin-b.") and first.endswith("@mail.example.org>")
    assert second.endswith("@mail.example.org>") and second != first
    stored = [row[0] for row in conn.execute("SELECT message_id FROM outbox ORDER BY id")]
    assert stored[1:] == [first, second]  # the id is fixed when the row is written (a resend keeps it)


def test_the_app_sets_the_configured_domain_for_what_its_services_queue(client: TestClient, smtp: MailServer,
                                                                         web_settings: Settings) -> None:
    # web_settings: mail.message_id_domain = "mail.promo.test"; the sign-in service is given no domain
    assert web_settings.mail.message_id_domain == "mail.promo.test"
    sign_in(client, smtp)
    assert smtp.received and all(m["Message-ID"].endswith("@mail.promo.test>") for m in smtp.received)
