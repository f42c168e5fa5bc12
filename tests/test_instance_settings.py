"""server.workers and database.pool_size (issue 18): defaults, overrides, refusals naming the setting."""

from __future__ import annotations

from pathlib import Path

import pytest

from promo.config import load_settings
from promo.errors import ConfigError


def test_one_process_and_ten_connections_by_default_and_both_can_be_set(tmp_path: Path) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("", encoding="utf-8")
    default = load_settings(empty, environ={})
    assert (default.server_workers, default.database_pool_size) == (1, 10)
    config = tmp_path / "config.toml"
    config.write_text("[server]\nworkers = 4\n", encoding="utf-8")
    settings = load_settings(config, environ={"PROMO_DATABASE_POOL_SIZE": "3"})
    assert (settings.server_workers, settings.database_pool_size) == (4, 3)


@pytest.mark.parametrize(("name", "value", "message"), [
    ("PROMO_SERVER_WORKERS", "0", "server.workers: must be between 1 and 64 (got '0' from PROMO_SERVER_WORKERS)"),
    ("PROMO_SERVER_WORKERS", "65", "server.workers: must be between 1 and 64"),
    ("PROMO_SERVER_WORKERS", "two", "server.workers: must be a whole number"),
    ("PROMO_DATABASE_POOL_SIZE", "0", "database.pool_size: must be between 1 and 100"),
    ("PROMO_SERVER_PORT", "70000", "server.port: must be between 1 and 65535"),
])
def test_values_out_of_range_are_refused_naming_the_setting(tmp_path: Path, name: str, value: str, message: str) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_settings(empty, environ={name: value})
    assert str(refused.value).startswith(message)
