"""`promo serve` as a real process, for end-to-end tests (HTTP, browser, races, crashes)."""

from __future__ import annotations

import html
import os
import re
import secrets
import socket
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx2 as httpx

from promo.auth import consume_signin
from promo.config import SINK_PORT_OFFSET
from promo.db import transaction
from promo.timeutil import db_time
from tests.support.mailserver import free_port

PROMO = str(Path(sys.executable).parent / "promo")
ROOT = Path(__file__).resolve().parents[2]


class Served:
    def __init__(self, url: str, log: Path, env: dict[str, str]):
        self.url, self.log, self.env = url, log, env


def write_config(tmp_path: Path, database: Path) -> Path:
    """The shipped config.toml with a private database and secret."""
    config = (ROOT / "config.toml").read_text(encoding="utf-8")
    config = config.replace('path = "var/promo.sqlite3"', f'path = "{database}"')
    config = config.replace('secret_key_file = "var/secret_key"', f'secret_key_file = "{tmp_path}/secret"')
    (tmp_path / "secret").write_text("s" * 48, encoding="utf-8")
    (tmp_path / "served.toml").write_text(config, encoding="utf-8")
    return tmp_path / "served.toml"


def start_server(config: Path, log: Path, **overrides: str) -> tuple[subprocess.Popen[bytes], Served]:
    """Start `promo serve` on a free port and wait until /readyz answers 200."""
    port = free_port()
    env = {**os.environ, "PROMO_CONFIG": str(config), "PROMO_SERVER_PORT": str(port),
           "PROMO_SERVER_PUBLIC_URL": f"http://127.0.0.1:{port}", **overrides}
    with open(log, "ab") as out:
        process = subprocess.Popen([PROMO, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    served = Served(f"http://127.0.0.1:{port}", log, env)
    deadline = time.time() + 30
    while True:
        try:
            if httpx.get(served.url + "/readyz", timeout=2).status_code == 200:
                return process, served
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.1)


def start_default_server(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Served]:
    """As a newcomer runs it: shipped config, sink on (on a free port), demo offer loaded."""
    config = write_config(tmp_path, tmp_path / "promo.sqlite3")
    mail_port = str(free_port())
    env = {**os.environ, "PROMO_CONFIG": str(config), "PROMO_MAIL_PORT": mail_port, "PROMO_MAIL_SINK_PORT": mail_port}
    for command in (["migrate"], ["campaigns", "import", "--shipped", "office365-xbox-gold-2013"], ["demo"]):
        subprocess.run([PROMO, *command], env=env, check=True, capture_output=True, timeout=60)
    return start_server(config, tmp_path / "server.log", PROMO_MAIL_PORT=mail_port, PROMO_MAIL_SINK_PORT=mail_port)


def mint_sessions(conn: sqlite3.Connection, accounts: list[str]) -> dict[str, tuple[str, str]]:
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
