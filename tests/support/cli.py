"""`promo` as a process on this run's store (a pytest plugin, see conftest.py): the fixtures
`bare_cli` (an empty store) and `cli` (migrated through the command)."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from promo.backends import pg_connection, pg_schema
from promo.db import connect
from promo.migrate import available_migrations
from tests.support.database import open_campaign_text, product_key, reward_code

PROMO = str(Path(sys.executable).parent / "promo")


class Cli:
    """`promo` as a process, on this run's store (tests/stores.py): cli.sqlite3, or the test's
    own PostgreSQL database when `url` names one."""

    def __init__(self, tmp_path: Path, url: str | None = None):
        self.dir = tmp_path
        self.url = url
        database = f'url = "{url}"\n' if url else ""
        (tmp_path / "config.toml").write_text(f'[database]\npath = "cli.sqlite3"\n{database}', encoding="utf-8")
        self.env = {**os.environ, "PROMO_CONFIG": str(tmp_path / "config.toml")}

    def connect(self) -> sqlite3.Connection:
        """A connection of the test's own to the store the commands use."""
        return pg_connection.connect(self.url) if self.url else connect(self.dir / "cli.sqlite3")  # type: ignore[return-value]

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PROMO, *args], env=self.env, cwd=self.dir, capture_output=True, text=True, timeout=60)

    def write(self, name: str, text: str) -> str:
        (self.dir / name).write_text(text, encoding="utf-8")
        return str(self.dir / name)

    def open_offer_with_one_code(self, account_email: str = "", *, allow_unbound_keys: bool = True) -> None:
        """Through the commands: the open-today offer (database.open_campaign_text), the activation
        of product_key(1) (bound to `account_email`, or to no one) and one code, reward_code(0)."""
        assert self("campaigns", "import", self.write("open.toml", open_campaign_text(
            allow_unbound_keys=allow_unbound_keys))).returncode == 0
        day = (datetime.now(UTC).date() - timedelta(days=2)).isoformat()
        activations = self("import-activations", self.write(
            "act.csv", "product_key,sku,country,purchased_at,activated_at,account_email\n"
                       f"{product_key(1)},O365-HOME-ESD,DK,{day},{day},{account_email}\n"))
        assert activations.returncode == 0, activations.stderr
        codes = self("import-codes", "--campaign", "open-today", self.write("codes.csv", f"code\n{reward_code(0)}\n"))
        assert codes.returncode == 0, codes.stderr


@pytest.fixture
def bare_cli(tmp_path: Path, store_url: str | None) -> Cli:
    """`promo` on an empty store of its own (never migrated)."""
    return Cli(tmp_path, store_url)


@pytest.fixture
def cli(bare_cli: Cli) -> Cli:
    run = bare_cli
    migrations = pg_schema.available_migrations() if run.url else available_migrations()
    names = ", ".join(name for _, name, _ in migrations)
    assert run("migrate").stdout.strip() == f"applied {names}"
    assert run("migrate").stdout.strip() == "database is up to date"
    return run
