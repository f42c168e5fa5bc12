"""Web test helpers and fixtures (a pytest plugin, see conftest.py): the app with its
lifespan against a real SMTP server, the "open-today" offer, signing in through email."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from html import unescape
from typing import Any

import pytest
from starlette.testclient import TestClient

from promo.app import create_app
from promo.campaign_store import get_campaign, save_campaign
from promo.campaigns import parse_campaign_file
from promo.catalog import load_catalog
from promo.config import Settings
from promo.db import transaction
from promo.errors import NUL_MESSAGE
from tests.support.database import csv_bytes, open_campaign_text, product_key
from tests.support.mailserver import MailServer
from tests.support.redemption import add_codes

OFFER = "/offers/open-today"
ANN = "ann@example.com"



@pytest.fixture
def web_settings(settings: Settings, smtp: MailServer) -> Settings:
    return replace(settings, public_url="http://testserver",
                   mail=replace(settings.mail, port=smtp.port, sink=False, timeout_seconds=3, retry_base_seconds=1,
                                message_id_domain="mail.promo.test"))


def add_open_campaign(conn: sqlite3.Connection, *, keys: int, codes: int) -> None:
    """The "open-today" offer with `keys` activation records (DK) and `codes` codes."""
    with transaction(conn):
        save_campaign(conn, parse_campaign_file(open_campaign_text(), load_catalog(conn)), actor="test", now=datetime.now(UTC))
    day = (datetime.now(UTC).date() - timedelta(days=2)).isoformat()
    from promo.activations import import_activations
    import_activations(conn, catalog=load_catalog(conn), now=datetime.now(UTC), source=csv_bytes(
        ["product_key", "sku", "country", "purchased_at", "activated_at", "account_email"],
        [[product_key(n), "O365-HOME-ESD", "DK", day, day, ""] for n in range(keys)]))
    add_codes(conn, get_campaign(conn, "open-today"), codes)


@pytest.fixture
def shop(conn: sqlite3.Connection) -> sqlite3.Connection:
    with transaction(conn):
        save_campaign(conn, parse_campaign_file(open_campaign_text(), load_catalog(conn)), actor="test", now=datetime.now(UTC))
    day = (datetime.now(UTC).date() - timedelta(days=2)).isoformat()
    from promo.activations import import_activations
    import_activations(conn, catalog=load_catalog(conn), now=datetime.now(UTC), source=csv_bytes(
        ["product_key", "sku", "country", "purchased_at", "activated_at", "account_email"],
        [[product_key(1), "O365-HOME-ESD", "DK", day, day, ""], [product_key(2), "O365-HOME-TRIAL", "DK", day, day, ""],
         [product_key(3), "O365-UNI-FPP", "NO", day, day, ""]]))
    add_codes(conn, get_campaign(conn, "open-today"), 5)
    return conn


@pytest.fixture
def client(web_settings: Settings, shop: sqlite3.Connection) -> Iterator[TestClient]:
    with TestClient(create_app(web_settings), follow_redirects=False) as test_client:
        yield test_client


def holding_nul(fields: dict[str, str]) -> list[str]:
    """The fields (as a refusal names them) whose name or value holds a NUL."""
    return [name.replace("\x00", "\\0") for name, value in fields.items() if "\x00" in name + value]


def refused_for_nul(response: Any, fields: dict[str, str]) -> bool:
    """Whether a form with a NUL in some field got what every form gives one: a 400 naming each
    such field (promo.errors.refuse_nul). False when no field holds a NUL."""
    holding = holding_nul(fields)
    text = unescape(response.text)
    return bool(holding) and response.status_code == 400 and all(f"{name}: {NUL_MESSAGE}" in text for name in holding)


def answered(response: Any, fields: dict[str, str], statuses: tuple[int, ...]) -> bool:
    """A form's answer to hostile input: with a NUL in some field, exactly the 400 naming it
    (refused_for_nul), whatever else the form would have said; without one, one of `statuses`."""
    return refused_for_nul(response, fields) if holding_nul(fields) else response.status_code in statuses


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name}"
    return match.group(1)


def wait_for_mail(smtp: MailServer, count: int, timeout: float = 10) -> list[EmailMessage]:
    deadline = time.time() + timeout
    while len(smtp.received) < count:
        assert time.time() < deadline, f"expected {count} email(s), got {len(smtp.received)}"
        time.sleep(0.05)
    return smtp.received


def wait_for_mail_to(smtp: MailServer, recipient: str, *, after: int, timeout: float = 10) -> EmailMessage:
    """The first email to `recipient` received after the first `after` emails."""
    deadline = time.time() + timeout
    while True:
        mine = [m for m in smtp.received[after:] if m["To"] == recipient]
        if mine:
            return mine[0]
        assert time.time() < deadline, f"no email to {recipient}"
        time.sleep(0.05)


def text_of(email: EmailMessage) -> str:
    return email.get_body(("plain",)).get_content()


def sign_in(client: TestClient, smtp: MailServer, email: str = ANN, next_path: str = "/") -> str:
    form = client.get(f"/signin?next={next_path}")
    assert form.status_code == 200 and "Email address" in form.text and "Send sign-in link" in form.text
    already = len(smtp.received)  # counted before posting: the email may arrive before we look
    sent = client.post("/signin", data={"csrf": hidden(form.text, "csrf"), "email": email, "next": next_path})
    assert sent.status_code == 303 and sent.headers["location"] == "/signin/sent"
    mail = wait_for_mail_to(smtp, email.lower(), after=already)  # lanes send in parallel: find ours
    link = re.search(r"https?://testserver(/signin/\S+)", text_of(mail))
    assert link
    return link.group(1)


def follow_link(client: TestClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 303, response.text
    return response.headers["location"]


def redeem_form(client: TestClient) -> str:
    page = client.get(f"{OFFER}/redeem")
    assert page.status_code == 200
    for label in ("Product key", "Country of purchase", "I accept the offer's terms and conditions", "Country where you live", ">Redeem<"):
        assert label in page.text
    return page.text


def submit(client: TestClient, page: str, key: str, country: str = "DK", terms: bool = True):  # type: ignore[no-untyped-def]
    data = {"csrf": hidden(page, "csrf"), "idempotency_key": hidden(page, "idempotency_key"),
            "product_key": key, "country": country}
    if terms:
        data["accept_terms"] = "yes"
    return client.post(f"{OFFER}/redeem", data=data)
