"""Activation records and redemptions for the open-today offer (tests/support/database.open_campaign_text),
through the real import and redemption transaction."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from promo.activations import import_activations
from promo.catalog import load_catalog
from promo.redemption import RedeemRequest, redeem_sync
from tests.support.database import csv_bytes, product_key


def redeem_one(conn: sqlite3.Connection) -> None:
    request = RedeemRequest(campaign="open-today", account_email="ann@example.com", product_key=product_key(1),
                            terms_accepted=True)
    assert redeem_sync(conn, request.normalized(), datetime.now(UTC)).redeemed


def add_keys(conn: sqlite3.Connection, numbers: range) -> None:
    day = (datetime.now(UTC).date() - timedelta(days=2)).isoformat()
    import_activations(conn, catalog=load_catalog(conn), now=datetime.now(UTC), source=csv_bytes(
        ["product_key", "sku", "country", "purchased_at", "activated_at"],
        [[product_key(n), "O365-HOME-ESD", "DK", day, day] for n in numbers]))


def redeem(conn: sqlite3.Connection, n: int) -> bool:
    request = RedeemRequest(campaign="open-today", account_email=f"user{n}@example.com", product_key=product_key(n),
                            terms_accepted=True)
    return redeem_sync(conn, request.normalized(), datetime.now(UTC)).redeemed
