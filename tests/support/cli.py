"""The `promo` command run as a real process against a real SQLite file under tmp_path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from promo.migrate import available_migrations

PROMO = str(Path(sys.executable).parent / "promo")


class Cli:
    def __init__(self, tmp_path: Path):
        self.dir = tmp_path
        (tmp_path / "config.toml").write_text('[database]\npath = "cli.sqlite3"\n', encoding="utf-8")
        self.env = {**os.environ, "PROMO_CONFIG": str(tmp_path / "config.toml")}

    def __call__(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([PROMO, *args], env=self.env, cwd=self.dir, capture_output=True, text=True, timeout=60)

    def write(self, name: str, text: str) -> str:
        (self.dir / name).write_text(text, encoding="utf-8")
        return str(self.dir / name)


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    run = Cli(tmp_path)
    names = ", ".join(name for _, name, _ in available_migrations())
    assert run("migrate").stdout.strip() == f"applied {names}"
    assert run("migrate").stdout.strip() == "database is up to date"
    return run
