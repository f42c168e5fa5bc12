"""The nonprofit program installed as staff would install it, approved organisations, validation codes and
donation requests through the real transactions, and the consumer's side of it over HTTP."""

from __future__ import annotations

import dataclasses
import re
import sqlite3
from datetime import UTC, datetime
from typing import Any

from starlette.testclient import TestClient

from promo.campaign_store import get_campaign, save_campaign
from promo.campaigns import parse_campaign_file, shipped_campaign_text
from promo.campaigns.donation_program import Registration
from promo.catalog import load_catalog
from promo.codes import import_codes
from promo.db import transaction
from promo.nonprofit.donations import request_donation
from promo.nonprofit.organisations import register_organisation, review_organisation
from promo.nonprofit.validation_codes import issue_code
from tests.support.database import csv_bytes
from tests.support.mailserver import MailServer
from tests.support.web import follow_link, hidden, sign_in

T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


HOLDER, REP = "holder@ngo.example", "rep@ngo.example"


def registration(**changes: Any) -> Registration:
    values = dict(name="Harbour Food Bank", short_name="HarbourFood", country="DK", registration_number="DK-12345",
                  mission="relieving_poverty", org_type="charity", health_kind=None, non_discrimination=True)
    return Registration(**{**values, **changes})  # type: ignore[arg-type]


def lk(sku: str, i: int) -> str:
    raw = re.sub(r"[^A-Z0-9]", "", f"K{sku}{i:06d}".upper())[-25:].rjust(25, "0")
    return "-".join(raw[j: j + 5] for j in range(0, 25, 5))


def install_program(conn: sqlite3.Connection, *, keys_per_product: int, now: datetime) -> sqlite3.Connection:
    """The shipped program, with licence keys for each product imported as staff would."""
    with transaction(conn):
        save_campaign(conn, parse_campaign_file(shipped_campaign_text("nonprofit-donations"), load_catalog(conn)),
                      actor="test", now=now)
    stored = get_campaign(conn, "nonprofit-donations")
    rows = [[lk(sku, i), sku] for sku in stored.campaign.products for i in range(keys_per_product)]
    import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source=csv_bytes(["code", "sku"], rows),
                 source_name="keys.csv", now=now)
    return conn


def grant_by_staff(conn: sqlite3.Connection) -> None:
    """The program, changed so that every request waits for staff (R-N4)."""
    stored = get_campaign(conn, "nonprofit-donations")
    with transaction(conn):
        save_campaign(conn, dataclasses.replace(stored.campaign, grant="by_staff"), actor="test", now=T0)


def approved_org(conn: sqlite3.Connection, **changes: Any) -> int:
    with transaction(conn):
        org_id = register_organisation(conn, holder_email=HOLDER, registration=registration(**changes), now=T0, ip=None)
        review_organisation(conn, org_id, decision="approve", reviewer="staff@example.com", reason="", now=T0, ip=None)
    return org_id


def new_code(conn: sqlite3.Connection, org_id: int, at: datetime = T0, email: str = REP) -> str:
    with transaction(conn):
        return issue_code(conn, org_id, holder_email=HOLDER, first_name="Rita", last_name="Rep", email=email, now=at, ip=None)


def ask(conn: sqlite3.Connection, code: str, at: datetime, **quantities: int) -> Any:
    with transaction(conn):
        return request_donation(conn, account_email=REP, code=code, now=at, terms_accepted=True,
                                quantities={k.replace("_", "-"): v for k, v in quantities.items()})


def as_consumer(client: TestClient, smtp: MailServer, email: str, next_path: str = "/nonprofit/") -> None:
    client.cookies.clear()
    follow_link(client, sign_in(client, smtp, email, next_path))


def register(client: TestClient, **changes: str):  # type: ignore[no-untyped-def]
    page = client.get("/nonprofit/register")
    assert page.status_code == 200
    data = {"csrf": hidden(page.text, "csrf"), "name": "Harbour Food Bank", "short_name": "HarbourFood", "country": "DK",
            "registration_number": "DK-12345", "mission": "relieving_poverty", "org_type": "charity",
            "non_discrimination": "yes", **changes}
    return client.post("/nonprofit/register", data=data)
