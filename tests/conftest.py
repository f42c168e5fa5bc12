"""Shared fixtures: every test gets its own database on each store (tests/support/stores.py:
its own SQLite file under tmp_path, its own PostgreSQL database), migrated, with the shipped
catalog and the shipped Office 365 -> Xbox Live Gold campaign loaded. Helpers that are
not fixtures live in tests/support/ (test modules import them from there, never from here)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promo.campaign_store import StoredCampaign, get_campaign
from promo.config import Settings, load_settings
from tests.support.database import SLUG
from tests.support.mailserver import MailServer
from tests.support.prepared import prepared_store
from tests.support.served import start_default_server

# Fixtures shared beyond one test module: pg and stores (each store, store_url), redemption (ready),
# cli (bare_cli, cli), web (client, shop, web_settings). A plugin is imported after the plugins it
# imports, so that pytest rewrites their asserts too.
pytest_plugins = ["tests.support.pg", "tests.support.stores", "tests.support.redemption", "tests.support.cli",
                  "tests.support.web"]


@pytest.fixture
def settings(tmp_path: Path, store_url: str | None) -> Settings:
    """On the store of this run (tests/support/stores.py): the URL goes in config.toml, so a
    `promo` process started with this config uses the same database."""
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


@pytest.fixture
def smtp() -> Iterator[Any]:
    """A real SMTP server on a free port (aiosmtpd), scriptable to misbehave."""
    server = MailServer().start()
    yield server
    server.stop()


@pytest.fixture
def default_server(tmp_path: Path) -> Iterator[Any]:
    """`promo serve` as a process with the shipped config.toml (sink on, demo offer)."""
    process, served = start_default_server(tmp_path)
    yield served
    process.terminate()
    process.wait(timeout=15)
