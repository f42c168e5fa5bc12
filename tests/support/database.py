"""Shared test data: the shipped campaign's slug and an instant inside its windows, a
migrated database with the shipped catalog and campaign, CSV uploads, product keys and reward
codes that pass the formats, and an offer whose windows are around today."""

from __future__ import annotations

import csv
import io
import sqlite3
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import tomli_w

from promo.backends.store import migrate  # either store's migrations
from promo.campaign_store import save_campaign
from promo.campaigns import parse_campaign_file, shipped_campaign_text
from promo.catalog import load_catalog, shipped_catalog, upsert_skus
from promo.db import connect, transaction

SLUG = "office365-xbox-gold-2013"
# An instant inside both windows of the shipped campaign.
DURING = datetime(2013, 9, 1, 12, 0, tzinfo=UTC)


def prepare(conn: Any) -> Any:
    """Migrate a connection's store (either) and load the shipped catalog and campaign."""
    migrate(conn)
    with transaction(conn):
        upsert_skus(conn, shipped_catalog())
        campaign = parse_campaign_file(shipped_campaign_text(SLUG), load_catalog(conn))
        save_campaign(conn, campaign, actor="test", now=datetime(2013, 7, 1, tzinfo=UTC))
    return conn


def prepare_database(path: Path) -> sqlite3.Connection:
    return prepare(connect(path))  # type: ignore[no-any-return]


def csv_bytes(header: list[str], rows: list[list[Any]]) -> io.BytesIO:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    writer.writerows(rows)
    return io.BytesIO(text.getvalue().encode("utf-8"))


def product_key(n: int) -> str:
    """A valid, distinct 25-character product key, formatted as printed on a card."""
    raw = f"PK{n:023d}"
    return "-".join(raw[i : i + 5] for i in range(0, 25, 5))


def reward_code(n: int) -> str:
    raw = f"XB{n:023d}"
    return "-".join(raw[i : i + 5] for i in range(0, 25, 5))


def open_campaign_text(slug: str = "open-today", *, allow_unbound_keys: bool = True) -> str:
    """The shipped offer with windows around today (UTC), for tests that use the real clock.
    Its test keys name no account, so by default it allows that (R-X5); tests of R-X5's
    default (review) pass allow_unbound_keys=False."""
    data = tomllib.loads(shipped_campaign_text(SLUG))
    today = datetime.now(UTC).date()
    data.update(slug=slug, timezone="UTC")
    data["eligibility_window"] = {"first_day": today - timedelta(days=30), "last_day": today + timedelta(days=1)}
    data["redemption_window"] = {"first_day": today - timedelta(days=30), "last_day": today + timedelta(days=1)}
    data["reward"]["code_expires_on"] = today + timedelta(days=365)
    if allow_unbound_keys:
        data["allow_unbound_keys"] = True
    return tomli_w.dumps(data)
