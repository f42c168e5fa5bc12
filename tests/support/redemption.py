"""Activation records, reward codes and redemptions of the shipped campaign, through the real import and
redemption transaction."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from datetime import datetime

import pytest

from promo.activations import import_activations
from promo.campaign_store import StoredCampaign, get_campaign, save_campaign
from promo.catalog import load_catalog
from promo.codes import import_codes
from promo.db import transaction
from promo.redemption import RedeemRequest, RedemptionResult, redeem_sync
from tests.support.database import DURING, SLUG, csv_bytes, product_key, reward_code

ANN = "ann@example.com"


def allow_unbound_keys(conn: sqlite3.Connection) -> None:
    """The shipped offer, allowing keys whose record names no account, for tests of other rules
    that redeem such keys with any account. R-X5's default (manual review) is tested below."""
    stored = get_campaign(conn, SLUG)
    with transaction(conn):
        save_campaign(conn, replace(stored.campaign, allow_unbound_keys=True), actor="test", now=DURING)


def add_activations(conn: sqlite3.Connection, rows: list[tuple[int, str, str, str | None]]) -> None:
    """rows: (key number, sku, country, bound account email or None)."""
    import_activations(
        conn,
        source=csv_bytes(["product_key", "sku", "country", "purchased_at", "activated_at", "account_email"],
                         [[product_key(n), sku, country, "2013-08-01", "2013-08-02", email or ""]
                          for n, sku, country, email in rows]),
        catalog=load_catalog(conn), now=DURING)


def add_codes(conn: sqlite3.Connection, stored: StoredCampaign, n: int, start: int = 0) -> None:
    import_codes(conn, campaign_id=stored.id, campaign=stored.campaign,
                 source=csv_bytes(["code"], [[reward_code(i)] for i in range(start, start + n)]),
                 source_name="t.csv", now=DURING)


def redeem(conn: sqlite3.Connection, key: int = 1, account: str = ANN, *, now: datetime = DURING,
           terms: bool = True, **extra: object) -> RedemptionResult:
    request = RedeemRequest(campaign="office365-xbox-gold-2013", account_email=account,
                            product_key=product_key(key), terms_accepted=terms, **extra)  # type: ignore[arg-type]
    return redeem_sync(conn, request.normalized(), now)


@pytest.fixture
def ready(conn: sqlite3.Connection, stored: StoredCampaign) -> sqlite3.Connection:
    allow_unbound_keys(conn)
    add_activations(conn, [(1, "O365-HOME-ESD", "DK", None), (2, "O365-UNI-FPP", "NO", None),
                           (3, "O365-HOME-TRIAL", "DK", None), (4, "O365-HOME-ESD", "US", None),
                           (5, "O365-HOME-ESD", "DK", "bob@example.com")])
    add_codes(conn, stored, 10)
    return conn
