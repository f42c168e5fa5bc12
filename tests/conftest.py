"""Shared fixtures: every test gets its own database on each store (tests/stores.py: its own
SQLite file under tmp_path, its own PostgreSQL database), migrated, with the shipped catalog
and the shipped Office 365 -> Xbox Live Gold campaign loaded."""

from __future__ import annotations

import csv
import io
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from promo.campaign_store import StoredCampaign, get_campaign
from promo.campaigns import shipped_campaign_text
from promo.config import Settings, load_settings
from tests.prepared import SLUG, prepare_database, prepared_store  # noqa: F401  (tests import these from here)

pytest_plugins = ["tests.pg", "tests.stores", "tests.web", "tests.cli_runner"]  # each store; web fixtures; bare_cli, cli

# An instant inside both windows of the shipped campaign.
DURING = datetime(2013, 9, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path, store_url: str | None) -> Settings:
    """On the store of this run (tests/stores.py): the URL goes in config.toml, so a `promo`
    process started with this config uses the same database."""
    config = tmp_path / "config.toml"
    url = f'url = "{store_url}"\n' if store_url else ""
    # No development sink in tests unless a test starts one on a free port.
    config.write_text(f'[database]\npath = "promo.sqlite3"\n{url}[mail]\nsink = false\n', encoding="utf-8")
    return load_settings(config, environ={"PROMO_SECURITY_SECRET_KEY": "x" * 40})


@pytest.fixture
def conn(settings: Settings) -> Iterator[sqlite3.Connection]:
    """A prepared connection to this run's store (on PostgreSQL the adapter, PgConnection)."""
    connection = prepared_store(settings)
    yield connection
    connection.close()


@pytest.fixture
def stored(conn: sqlite3.Connection) -> StoredCampaign:
    return get_campaign(conn, SLUG)


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
    import tomllib

    import tomli_w

    data = tomllib.loads(shipped_campaign_text(SLUG))
    today = datetime.now(UTC).date()
    from datetime import timedelta
    data.update(slug=slug, timezone="UTC")
    data["eligibility_window"] = {"first_day": today - timedelta(days=30), "last_day": today + timedelta(days=1)}
    data["redemption_window"] = {"first_day": today - timedelta(days=30), "last_day": today + timedelta(days=1)}
    data["reward"]["code_expires_on"] = today + timedelta(days=365)
    if allow_unbound_keys:
        data["allow_unbound_keys"] = True
    return tomli_w.dumps(data)


@pytest.fixture
def smtp() -> Iterator[Any]:
    """A real SMTP server on a free port (aiosmtpd), scriptable to misbehave."""
    from tests.mailserver import MailServer

    server = MailServer().start()
    yield server
    server.stop()


@pytest.fixture
def default_server(tmp_path: Path) -> Iterator[Any]:
    """`promo serve` as a process with the shipped config.toml (sink on, demo offer)."""
    from tests.served import start_default_server

    process, served = start_default_server(tmp_path)
    yield served
    process.terminate()
    process.wait(timeout=15)
