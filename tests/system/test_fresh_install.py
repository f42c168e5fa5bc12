"""The README's first command on a fresh machine: `scripts/serve` builds its own environment
with the runtime dependencies only (no `dev` extra, so nothing the tests install can hide a
missing package), migrates, loads the shipped campaign and the demo, and serves. One setting,
the port, moves the public URL and the mail sink with it."""

from __future__ import annotations

import html
import os
import re
import secrets
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

from tests.support.served import port_pair

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
DEV_ONLY = ("pytest", "hypothesis", "freezegun", "httpx2", "playwright", "mypy")
IMPORT_EVERY_MODULE = ("import importlib, pkgutil, promo\n"
                       "names = [m.name for m in pkgutil.walk_packages(promo.__path__, 'promo.')]\n"
                       "[importlib.import_module(name) for name in names]\nprint(len(names))")


def log_tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-6000:]


@pytest.fixture
def served_by_scripts_serve(tmp_path: Path) -> Iterator[tuple[str, Path, Path]]:
    port = port_pair()
    venv, log = tmp_path / "venv", tmp_path / "serve.log"
    env = {name: value for name, value in os.environ.items() if not name.startswith(("PROMO_", "VIRTUAL_ENV"))}
    env.update(PROMO_VENV=str(venv), PROMO_SERVER_PORT=str(port),  # the only port setting
               PROMO_DATABASE_PATH=str(tmp_path / "promo.sqlite3"), PROMO_REVIEWS_RECEIPTS_DIR=str(tmp_path / "receipts"),
               PROMO_SECURITY_SECRET_KEY=secrets.token_urlsafe(48))
    with open(log, "wb") as out:
        process = subprocess.Popen([str(ROOT / "scripts" / "serve")], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)  # its own group: pip and the server end with it
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600  # creating the environment downloads on a cold pip cache
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, f"scripts/serve exited with {process.returncode}:\n{log_tail(log)}"
            assert time.time() < deadline, f"scripts/serve did not answer /readyz:\n{log_tail(log)}"
            time.sleep(0.25)
        yield url, venv, log
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def test_scripts_serve_in_a_runtime_only_environment_serves_home_demo_offer_and_readyz(
        served_by_scripts_serve: tuple[str, Path, Path]) -> None:
    url, venv, log = served_by_scripts_serve
    python = str(venv / "bin" / "python")
    for module in DEV_ONLY:  # the environment really is runtime-only
        found = subprocess.run([python, "-c", f"import {module}"], capture_output=True)
        assert found.returncode != 0, f"{module} (dev only) is installed in the runtime environment"
    # Every module of the package imports there, not only those the pages reached.
    every = subprocess.run([python, "-c", IMPORT_EVERY_MODULE], capture_output=True, text=True, cwd="/")
    assert every.returncode == 0 and int(every.stdout) > 40, every.stderr
    with httpx.Client(base_url=url, timeout=10) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200 and ready.json()["status"] == "ok", ready.text
        home = client.get("/?country=DK")
        assert home.status_code == 200 and "/offers/demo-xbox-gold" in home.text, home.text[:2000]
        offer = client.get("/offers/demo-xbox-gold")
        assert offer.status_code == 200 and "/offers/demo-xbox-gold/redeem" in offer.text, offer.text[:2000]
        # The sign-in link is mailed to the port the server runs on, and arrives in its sink:
        # PROMO_SERVER_PORT alone moved the public URL and the sink (and the relay's target).
        form = client.get("/signin?next=/offers/demo-xbox-gold/redeem").text
        csrf = html.unescape(re.search(r'name="csrf" value="([^"]*)"', form).group(1))  # type: ignore[union-attr]
        assert client.post("/signin", data={"csrf": csrf, "email": "fresh@example.com"}).status_code < 400
        deadline = time.time() + 15
        while "/dev/mail/1" not in client.get("/dev/mail").text:
            assert time.time() < deadline, f"no email reached the sink:\n{log_tail(log)}"
            time.sleep(0.2)
        assert f"{url}/signin/" in html.unescape(client.get("/dev/mail/1").text)
    assert "Traceback" not in log.read_text(encoding="utf-8", errors="replace"), log_tail(log)
