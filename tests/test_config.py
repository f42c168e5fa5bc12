from __future__ import annotations

from pathlib import Path

import pytest

from promo.config import SCHEMA, load_settings
from promo.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent


def test_shipped_config_documents_every_setting_with_its_default() -> None:
    text = (ROOT / "config.toml").read_text(encoding="utf-8")
    settings = load_settings(ROOT / "config.toml", environ={})
    for name in SCHEMA:
        key = name.split(".")[-1]
        assert f"{key} = " in text, f"{name} is not documented in config.toml"
    assert settings.database_path == ROOT / "var" / "promo.sqlite3"
    assert settings.server_port == 8000 and settings.database_synchronous == "FULL"


def test_environment_overrides_file(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[server]\nport = 9000\n', encoding="utf-8")
    settings = load_settings(cfg, environ={"PROMO_SERVER_PORT": "9100", "PROMO_LOGGING_FORMAT": "json"})
    assert settings.server_port == 9100
    assert settings.logging_format == "json"


@pytest.mark.parametrize(
    ("content", "environ", "names"),
    [
        ('[server]\nport = "eighty"\n', {}, "server.port"),
        ("[server]\nport = 70000\n", {}, "server.port"),
        ("", {"PROMO_SERVER_PORT": "x"}, "PROMO_SERVER_PORT"),
        ('[logging]\nformat = "xml"\n', {}, "logging.format"),
        ('[database]\npath = ""\n', {}, "database.path"),
        ("[database]\npaht = 'x'\n", {}, "database.paht"),
        ("[server\n", {}, "not valid TOML"),
        ('[security]\nsecret_key = "hunter2hunter2"\n', {}, "security.secret_key"),
    ],
)
def test_malformed_setting_names_the_setting(tmp_path: Path, content: str, environ: dict[str, str], names: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=names.replace(".", r"\.")):
        load_settings(cfg, environ=environ)


def test_secret_from_named_file_or_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[security]\nsecret_key_file = "secret"\n', encoding="utf-8")
    assert load_settings(cfg, environ={}).secret_key is None
    with pytest.raises(ConfigError, match="security.secret_key"):
        load_settings(cfg, environ={}).require_secret_key()
    (tmp_path / "secret").write_text("s" * 40 + "\n", encoding="utf-8")
    assert load_settings(cfg, environ={}).secret_key == "s" * 40
    assert load_settings(cfg, environ={"PROMO_SECURITY_SECRET_KEY": "e" * 40}).secret_key == "e" * 40
    (tmp_path / "secret").write_text("short", encoding="utf-8")
    with pytest.raises(ConfigError, match="fewer than 32"):
        load_settings(cfg, environ={})


def test_missing_named_config_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})
