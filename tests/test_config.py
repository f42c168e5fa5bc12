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


def shipped(environ: dict[str, str]):  # type: ignore[no-untyped-def]
    return load_settings(ROOT / "config.toml", environ=environ)


def test_one_port_setting_moves_the_public_url_the_sink_and_the_relay_target() -> None:
    default, second = shipped({}), shipped({"PROMO_SERVER_PORT": "8001"})
    assert (default.public_url, default.mail.sink, default.mail.sink_port, default.mail.host, default.mail.port) == (
        "http://127.0.0.1:8000", True, 8025, "127.0.0.1", 8025)
    assert (second.public_url, second.mail.sink_port, second.mail.port) == ("http://127.0.0.1:8001", 8026, 8026)


def test_settings_that_are_set_win_over_derived_ones(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[server]\nport = 9000\npublic_url = "https://promo.example.com/"\n[mail]\nsink_port = 2600\n',
                   encoding="utf-8")
    settings = load_settings(cfg, environ={})
    assert (settings.public_url, settings.mail.sink_port, settings.mail.port) == ("https://promo.example.com", 2600, 2600)
    # The environment wins over the file, and an explicit relay target wins over the sink.
    settings = load_settings(cfg, environ={"PROMO_MAIL_PORT": "2525", "PROMO_SERVER_PUBLIC_URL": "https://other.example"})
    assert (settings.mail.sink_port, settings.mail.port, settings.public_url) == (2600, 2525, "https://other.example")


def test_without_the_sink_the_relay_sends_to_port_25(tmp_path: Path) -> None:
    settings = shipped({"PROMO_MAIL_SINK": "false"})
    assert (settings.mail.sink, settings.mail.port) == (False, 25)


@pytest.mark.parametrize(("host", "url"), [("0.0.0.0", "http://127.0.0.1:8000"), ("::", "http://[::1]:8000"),
                                           ("::1", "http://[::1]:8000"), ("promo.test", "http://promo.test:8000")])
def test_derived_public_url_reaches_the_listening_address(host: str, url: str) -> None:
    assert shipped({"PROMO_SERVER_HOST": host}).public_url == url


def test_a_sink_port_past_65535_names_the_setting() -> None:
    with pytest.raises(ConfigError, match=r"mail\.sink_port"):
        shipped({"PROMO_SERVER_PORT": "65520"})
    assert shipped({"PROMO_SERVER_PORT": "65520", "PROMO_MAIL_SINK": "false"}).mail.port == 25


PRODUCTION = {"PROMO_ENVIRONMENT": "production", "PROMO_SERVER_PUBLIC_URL": "https://promo.example.com"}


def test_production_has_no_mail_sink_by_default() -> None:
    settings = shipped(PRODUCTION)
    assert (settings.mail.sink, settings.mail.port) == (False, 25)


@pytest.mark.parametrize("where", ["environment", "file"])
def test_production_refuses_a_mail_sink_naming_the_setting(tmp_path: Path, where: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('environment = "production"\n[mail]\nsink = true\n' if where == "file" else "", encoding="utf-8")
    environ = {**PRODUCTION, "PROMO_MAIL_SINK": "true"} if where == "environment" else {"PROMO_SERVER_PUBLIC_URL": "https://x.example"}
    with pytest.raises(ConfigError, match=r"^mail\.sink: .*refused .*production"):
        load_settings(cfg, environ=environ)


def test_production_needs_an_explicit_public_url() -> None:
    with pytest.raises(ConfigError, match=r"^server\.public_url: must be set"):
        shipped({"PROMO_ENVIRONMENT": "production"})


def test_trusted_proxies_default_to_none_and_accept_addresses_and_networks(tmp_path: Path) -> None:
    assert shipped({}).trusted_proxies == ()
    assert shipped({"PROMO_SERVER_TRUSTED_PROXIES": "127.0.0.1, ::1,10.0.0.0/8"}).trusted_proxies == ("127.0.0.1", "::1", "10.0.0.0/8")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[server]\ntrusted_proxies = ["192.0.2.7", "*"]\n', encoding="utf-8")
    assert load_settings(cfg, environ={}).trusted_proxies == ("192.0.2.7", "*")
    for bad in ('trusted_proxies = ["nginx"]', 'trusted_proxies = 7', 'trusted_proxies = [1]', 'trusted_proxies = ["10.0.0.0/33"]'):
        cfg.write_text(f"[server]\n{bad}\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=r"server\.trusted_proxies"):
            load_settings(cfg, environ={})


def test_metrics_are_public_in_development_and_loopback_only_in_production(tmp_path: Path) -> None:
    assert shipped({}).metrics_access == "public"
    assert shipped(PRODUCTION).metrics_access == "loopback"
    assert shipped({**PRODUCTION, "PROMO_METRICS_ACCESS": "public"}).metrics_access == "public"
    with pytest.raises(ConfigError, match=r"metrics\.access"):
        shipped({"PROMO_METRICS_ACCESS": "everyone"})


def test_metrics_token_comes_from_the_environment_or_a_file_never_the_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^metrics\.token: "):
        shipped({"PROMO_METRICS_ACCESS": "token"})
    with pytest.raises(ConfigError, match=r"^metrics\.token: fewer than 32"):
        shipped({"PROMO_METRICS_ACCESS": "token", "PROMO_METRICS_TOKEN": "short"})
    assert shipped({"PROMO_METRICS_ACCESS": "token", "PROMO_METRICS_TOKEN": "t" * 32}).metrics_token == "t" * 32
    (tmp_path / "token").write_text("f" * 40 + "\n", encoding="utf-8")
    cfg = tmp_path / "c.toml"
    cfg.write_text('[metrics]\naccess = "token"\ntoken_file = "token"\n', encoding="utf-8")
    assert load_settings(cfg, environ={}).metrics_token == "f" * 40
    cfg.write_text('[metrics]\ntoken = "' + "t" * 40 + '"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"metrics\.token: secrets are not read"):
        load_settings(cfg, environ={})


def test_database_url_defaults_to_the_sqlite_file_and_a_sqlite_url_sets_it(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("", encoding="utf-8")
    default = load_settings(cfg, environ={})
    assert default.database_url is None and default.store_url == f"sqlite:///{tmp_path}/var/promo.sqlite3"
    chosen = load_settings(cfg, environ={"PROMO_DATABASE_URL": "sqlite:///data/p.sqlite3"})
    assert chosen.database_path == tmp_path / "data" / "p.sqlite3" and chosen.database_url is None


def test_a_postgresql_url_from_the_environment_chooses_postgresql(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[database]\nurl = "sqlite:///var/promo.sqlite3"\n', encoding="utf-8")
    url = "postgresql://promo@db.example:5432/promo"
    settings = load_settings(cfg, environ={"PROMO_DATABASE_URL": url})
    assert settings.database_url == url and settings.store_url == url


@pytest.mark.parametrize(("config", "says"), [
    ('[database]\nurl = "mysql://u:hunter2@h/db"\n', "database.url: 'mysql://u:***@h/db' is not a database URL"),
    ('[database]\nurl = "postgresql://u:hunter2@h:99999/db"\n', "database.url: 'postgresql://u:***@h:99999/db' has a port"),
    ('[database]\npath = "a.sqlite3"\nurl = "sqlite:///b.sqlite3"\n', "database.url: names"),
])
def test_a_wrong_database_url_stops_start_up_naming_the_setting(tmp_path: Path, config: str, says: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(config, encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        load_settings(cfg, environ={})
    assert str(refused.value).startswith(says) and "hunter2" not in str(refused.value)
