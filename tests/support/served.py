"""`promo serve` as a real process, for end-to-end tests (HTTP, browser, races, crashes).

On either store (issue 17): `write_config(tmp_path, settings)` puts the settings' store in the
config, so the served process uses the test's own database. Issue 18: on PostgreSQL a test
runs `instances(store)` = 2 processes on that one database (SQLite has one writer: 1), each on
its own port; `start_servers` starts them, `Servers.url(n)` spreads a load round-robin."""

from __future__ import annotations

import html
import os
import re
import secrets
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx2 as httpx

from promo.auth import consume_signin
from promo.config import SINK_PORT_OFFSET, Settings
from promo.db import transaction
from promo.timeutil import db_time
from tests.support.mailserver import free_port

PROMO = str(Path(sys.executable).parent / "promo")
ROOT = Path(__file__).resolve().parents[2]


class Served:
    def __init__(self, url: str, log: Path, env: dict[str, str]):
        self.url, self.log, self.env = url, log, env


def write_config(tmp_path: Path, database: Path | Settings) -> Path:
    """The shipped config.toml with a private database (a SQLite file, or the store of the
    settings: its file or its PostgreSQL URL) and secret."""
    config = (ROOT / "config.toml").read_text(encoding="utf-8")
    path = database.database_path if isinstance(database, Settings) else database
    config = config.replace('path = "var/promo.sqlite3"', f'path = "{path}"')
    if isinstance(database, Settings) and database.database_url:
        assert "\n[database]\n" in config  # else the served processes would quietly use the SQLite file
        config = config.replace("\n[database]\n", f'\n[database]\nurl = "{database.database_url}"\n', 1)
    config = config.replace('secret_key_file = "var/secret_key"', f'secret_key_file = "{tmp_path}/secret"')
    (tmp_path / "secret").write_text("s" * 48, encoding="utf-8")
    (tmp_path / "served.toml").write_text(config, encoding="utf-8")
    return tmp_path / "served.toml"


def start_server(config: Path, log: Path, **overrides: str) -> tuple[subprocess.Popen[bytes], Served]:
    """Start `promo serve` on a free port and wait until /readyz answers 200."""
    process, served = launch(config, log, **overrides)
    wait_ready(process, served)
    return process, served


def launch(config: Path, log: Path, *args: str, **overrides: str) -> tuple[subprocess.Popen[bytes], Served]:
    """Start `promo serve [args]` on a free port, without waiting for it."""
    port = free_port()
    env = {**os.environ, "PROMO_CONFIG": str(config), "PROMO_SERVER_PORT": str(port),
           "PROMO_SERVER_PUBLIC_URL": f"http://127.0.0.1:{port}", **overrides}
    with open(log, "ab") as out:
        process = subprocess.Popen([PROMO, "serve", *args], env=env, stdout=out, stderr=subprocess.STDOUT)
    return process, Served(f"http://127.0.0.1:{port}", log, env)


def wait_ready(process: subprocess.Popen[bytes], served: Served, timeout: float = 30) -> None:
    """Until /readyz answers 200; fails with the server's log when it exits or the time is up."""
    deadline = time.time() + timeout
    while True:
        try:
            if httpx.get(served.url + "/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.time() < deadline, served.log.read_text()
        time.sleep(0.1)


def instances(store: str) -> int:
    """How many `promo serve` processes share the test's database: 2 on PostgreSQL (issue 18),
    1 on SQLite (one writer; `promo serve --workers N` refuses N > 1 there)."""
    return 2 if store == "postgresql" else 1


class Servers:
    """`promo serve` processes on one database, each on its own port and with its own log."""

    def __init__(self, config: Path, logs: Path, count: int, **overrides: str):
        self.config, self.logs, self.overrides = config, logs, overrides
        started = [launch(config, logs / f"server{n}.log", **overrides) for n in range(count)]
        self.processes = [process for process, _ in started]
        self.served = [served for _, served in started]
        try:
            for process, served in started:  # started together, so they start up side by side
                wait_ready(process, served)
        except BaseException:
            self.stop()
            raise

    def __len__(self) -> int:
        return len(self.served)

    def url(self, n: int) -> str:
        """The instance request n goes to: round-robin over all of them."""
        return self.served[n % len(self.served)].url

    def log_text(self) -> str:
        return "".join(served.log.read_text() for served in self.served)

    def restart(self, n: int) -> None:
        """Start instance n again (after a kill), on a new port, logging to the same file."""
        process, served = launch(self.config, self.served[n].log, **self.overrides)
        self.processes[n], self.served[n] = process, served
        wait_ready(process, served)

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.terminate()
        for process in self.processes:
            process.wait(timeout=15)


def start_servers(config: Path, logs: Path, count: int, **overrides: str) -> Servers:
    """`count` instances of `promo serve` on the config's database, each ready (see Servers)."""
    return Servers(config, logs, count, **overrides)


def start_default_server(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Served]:
    """As a newcomer runs it: shipped config, sink on (on a free port), demo offer loaded."""
    config = write_config(tmp_path, tmp_path / "promo.sqlite3")
    mail_port = str(free_port())
    env = {**os.environ, "PROMO_CONFIG": str(config), "PROMO_MAIL_PORT": mail_port, "PROMO_MAIL_SINK_PORT": mail_port}
    for command in (["migrate"], ["campaigns", "import", "--shipped", "office365-xbox-gold-2013"], ["demo"]):
        subprocess.run([PROMO, *command], env=env, check=True, capture_output=True, timeout=60)
    return start_server(config, tmp_path / "server.log", PROMO_MAIL_PORT=mail_port, PROMO_MAIL_SINK_PORT=mail_port)


def mint_sessions(conn: Any, accounts: list[str]) -> dict[str, tuple[str, str]]:
    """Sign accounts in through the application's own code (a used sign-in token and a new
    session each). Returns {account: (session cookie value, csrf token)}."""
    now = datetime.now(UTC)
    out = {}
    with transaction(conn):
        for account in accounts:
            jti = secrets.token_urlsafe(12)
            conn.execute("INSERT INTO signin_tokens (jti, account_email, created_at) VALUES (:j, :e, :t)",
                         {"j": jti, "e": account, "t": db_time(now)})
            started = consume_signin(conn, email=account, jti=jti, now=now, ip="127.0.0.1")
            assert started is not None
            raw, session = started
            out[account] = (raw, session.csrf_token)
    return out


def port_pair() -> int:
    """A free port whose derived sink port (port + 25) is free too, for a server that is
    told only its port."""
    while True:
        port = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + SINK_PORT_OFFSET))
            except OSError:
                continue
        return port


def field(page: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', page)
    assert match
    return html.unescape(match.group(1))


def newest_mail(client: httpx.Client, count: int) -> str:
    deadline = time.time() + 10
    while True:
        box = client.get("/dev/mail").text
        numbers = [int(n) for n in re.findall(r'href="/dev/mail/(\d+)"', box)]
        if len(numbers) >= count:
            return html.unescape(client.get(f"/dev/mail/{max(numbers)}").text)
        assert time.time() < deadline, "no email in the sink"
        time.sleep(0.1)
