"""database.url chooses the store (issue 17, item 1): SQLite by default, PostgreSQL by URL; a
wrong or unreachable URL is refused with a message naming the setting, never the password."""

from __future__ import annotations

from pathlib import Path

import pytest

from promo.backends import pg_connection
from promo.backends.store import StoreUnavailable, StoreUrlError, make_store, migrate, open_store
from promo.db import Database, connect


def test_a_sqlite_url_is_the_file_relative_to_the_config_folder_or_absolute(tmp_path: Path) -> None:
    relative = make_store("sqlite:///var/promo.sqlite3", base=tmp_path)
    assert isinstance(relative, Database) and relative.path == tmp_path / "var" / "promo.sqlite3"
    absolute = make_store(f"sqlite:///{tmp_path}/x.sqlite3", base=Path("/elsewhere"))
    assert isinstance(absolute, Database) and absolute.path == tmp_path / "x.sqlite3"


@pytest.mark.parametrize(("url", "says"), [
    ("mysql://u@h/db", "is not a database URL"),
    ("var/promo.sqlite3", "is not a database URL"),
    ("sqlite://promo.sqlite3", "sqlite:///relative"),
    ("postgresql://u:hunter2@db.example/", "names no host or no database"),
    ("postgresql://u:hunter2@db.example:99999/promo", "port"),
])
def test_a_wrong_url_names_the_setting_and_hides_the_password(tmp_path: Path, url: str, says: str) -> None:
    with pytest.raises(StoreUrlError) as refused:
        make_store(url, base=tmp_path)
    assert str(refused.value).startswith("database.url: ") and says in str(refused.value)
    assert "hunter2" not in str(refused.value)


async def test_an_unreachable_postgresql_stops_start_up_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(StoreUnavailable) as refused:  # port 1: nothing listens
        await open_store("postgresql://promo:hunter2@127.0.0.1:1/promo", base=tmp_path, timeout_s=1.0)
    message = str(refused.value)
    assert message.startswith("database.url: cannot open postgresql://promo:***@127.0.0.1:1/promo: ")
    assert "Connection refused" in message and "hunter2" not in message


async def test_migrate_and_open_either_store(tmp_path: Path, pg_url: str) -> None:
    sqlite = connect(tmp_path / "a.sqlite3")
    assert "0023_definition_hashes.sql" in migrate(sqlite)
    sqlite.close()
    pg = pg_connection.connect(pg_url)
    assert migrate(pg)[0] == "0023_baseline.sql"  # then the later ones
    pg.close()
    for url in (f"sqlite:///{tmp_path}/a.sqlite3", pg_url):
        store = await open_store(url, base=tmp_path)
        try:
            assert store.is_open
            assert await store.read(lambda conn: conn.execute("SELECT count(*) FROM schema_migrations").fetchone()[0]) >= 1
        finally:
            await store.close()
