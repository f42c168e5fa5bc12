"""`promo serve` as a newcomer runs it, for end-to-end tests (HTTP and browser)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx

from tests.mailserver import free_port

PROMO = str(Path(sys.executable).parent / "promo")
ROOT = Path(__file__).resolve().parent.parent


class Served:
    def __init__(self, url: str, log: Path):
        self.url, self.log = url, log


def start_default_server(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Served]:
    """The shipped config.toml, moved to free ports and a private database file."""
    config = (ROOT / "config.toml").read_text(encoding="utf-8")
    config = config.replace('path = "var/promo.sqlite3"', f'path = "{tmp_path}/promo.sqlite3"')
    config = config.replace('secret_key_file = "var/secret_key"', f'secret_key_file = "{tmp_path}/secret"')
    (tmp_path / "secret").write_text("s" * 48, encoding="utf-8")
    (tmp_path / "config.toml").write_text(config, encoding="utf-8")
    port, mail_port = free_port(), free_port()
    env = {**os.environ, "PROMO_CONFIG": str(tmp_path / "config.toml"), "PROMO_SERVER_PORT": str(port),
           "PROMO_SERVER_PUBLIC_URL": f"http://127.0.0.1:{port}", "PROMO_MAIL_PORT": str(mail_port),
           "PROMO_MAIL_SINK_PORT": str(mail_port)}
    for command in (["migrate"], ["campaigns", "import", "--shipped", "office365-xbox-gold-2013"], ["demo"]):
        subprocess.run([PROMO, *command], env=env, check=True, capture_output=True, timeout=60)
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([PROMO, "serve"], env=env, stdout=out, stderr=subprocess.STDOUT)
    served = Served(f"http://127.0.0.1:{port}", log)
    deadline = time.time() + 30
    while True:
        try:
            if httpx.get(served.url + "/readyz", timeout=2).status_code == 200:
                return process, served
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.1)
