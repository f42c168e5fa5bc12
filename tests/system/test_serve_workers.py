"""`promo serve --workers N` (issue 18, item 1): N processes on PostgreSQL; refused with a
message naming the setting on SQLite (one writer) and with the development mail sink on
(it binds one port)."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import httpx2 as httpx

from promo.backends import pg_connection
from tests.support.database import prepare
from tests.support.instances import SECRET, instance_config, start_instance
from tests.support.served import PROMO


def serve(config: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PROMO_CONFIG": str(config), "PROMO_SECURITY_SECRET_KEY": SECRET, **env}
    return subprocess.run([PROMO, "serve", *args], env=environ, capture_output=True, text=True, timeout=60, check=False)


def test_more_than_one_worker_on_sqlite_is_refused_naming_the_setting(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(f'[database]\npath = "{tmp_path}/promo.sqlite3"\n[mail]\nsink = false\n', encoding="utf-8")
    for refused in (serve(config, "--workers", "2"), serve(config, PROMO_SERVER_WORKERS="3")):
        assert refused.returncode == 2
        assert refused.stderr.startswith("error: server.workers: ") and "need PostgreSQL (database.url)" in refused.stderr
        assert "Traceback" not in refused.stderr
    assert not (tmp_path / "promo.sqlite3").exists()  # refused before anything was opened


def test_more_than_one_worker_with_the_mail_sink_is_refused(tmp_path: Path, pg_url: str) -> None:
    config = instance_config(tmp_path, pg_url, mail="sink = true")
    refused = serve(config, "--workers", "2")
    assert refused.returncode == 2 and "mail.sink = false" in refused.stderr and "server.workers" in refused.stderr


def test_a_worker_count_out_of_range_is_refused(tmp_path: Path, pg_url: str) -> None:
    config = instance_config(tmp_path, pg_url)
    from_option = serve(config, "--workers", "65")
    assert from_option.returncode == 2 and "--workers" in from_option.stderr and "1<=x<=64" in from_option.stderr
    from_env = serve(config, PROMO_SERVER_WORKERS="0")
    assert from_env.returncode == 2 and "server.workers: must be between 1 and 64" in from_env.stderr


def test_two_workers_on_postgresql_both_answer(tmp_path: Path, pg_url: str) -> None:
    conn = pg_connection.connect(pg_url)
    prepare(conn)
    conn.close()
    instance = start_instance(instance_config(tmp_path, pg_url, pool_size=2), tmp_path / "serve.log", "--workers", "2")
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 30
        while len(pids) < 2:  # each request on a new connection: the kernel hands it to either process
            assert time.monotonic() < deadline, f"one process answered: {pids}"
            response = httpx.get(instance.url + "/readyz", timeout=5)
            assert response.status_code == 200
            pids.add(response.json()["pid"])
        assert instance.process.pid not in pids  # the parent supervises; its workers serve
    finally:
        instance.stop()
    assert instance.process.returncode == 0
