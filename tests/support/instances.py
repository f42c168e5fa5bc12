"""`promo serve` processes on one PostgreSQL database, as several instances behind a proxy run
(issue 18): each started on a free port and waited for until /readyz answers 200."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2 as httpx

from tests.support.mailserver import free_port
from tests.support.served import mint_sessions

PROMO = str(Path(sys.executable).parent / "promo")
SECRET = "k" * 48  # every instance signs with the same key: a session made by one is good on all


def instance_config(folder: Path, url: str, *, pool_size: int = 3, mail: str = "sink = false\nrelay = false") -> Path:
    """A config.toml for instances of one service: the database, a small pool (the shared
    server's connections are counted), no mail sink and no relay (no SMTP server here)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f'[database]\nurl = "{url}"\npool_size = {pool_size}', f"[mail]\n{mail}", '[logging]\nlevel = "WARNING"']
    config = folder / "config.toml"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return config


@dataclass
class Instance:
    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_instance(config: Path, log: Path, *args: str, **env: str) -> Instance:
    """`promo serve [args]` on a free port, once /readyz answers 200 (fails with its log otherwise)."""
    port = free_port()
    environ = {**os.environ, "PROMO_CONFIG": str(config), "PROMO_SERVER_PORT": str(port),
               "PROMO_SECURITY_SECRET_KEY": SECRET, "PROMO_SERVER_PUBLIC_URL": f"http://127.0.0.1:{port}", **env}
    with open(log, "ab") as out:
        process = subprocess.Popen([PROMO, "serve", *args], env=environ, stdout=out, stderr=subprocess.STDOUT)
    instance = Instance(f"http://127.0.0.1:{port}", process, log)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(instance.url + "/readyz", timeout=2).status_code == 200:
                return instance
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            instance.stop()
            raise AssertionError(f"promo serve did not become ready:\n{log.read_text(errors='replace')}")
        time.sleep(0.1)


@contextmanager
def instances(config: Path, folder: Path, count: int, *args: str, **env: str) -> Iterator[list[Instance]]:
    started: list[Instance] = []
    try:
        for n in range(count):
            started.append(start_instance(config, folder / f"instance{n}.log", *args, **env))
        yield started
    finally:
        for instance in started:
            instance.stop()


def signed_in(conn: Any, accounts: list[str]) -> dict[str, tuple[str, str]]:
    """{account: (session cookie, csrf token)}, good on every instance (served.mint_sessions)."""
    return mint_sessions(conn, accounts)
