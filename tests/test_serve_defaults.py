"""`promo serve` with the embedded defaults (SQLite, the local mail sink, the demo offer),
as a newcomer runs it: a real process, real HTTP, email read from the sink's page."""

from __future__ import annotations

import html
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest

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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Served]:
    process, served = start_default_server(tmp_path)
    yield served
    process.terminate()
    process.wait(timeout=15)


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


def test_a_newcomer_redeems_the_demo_offer_and_reads_the_email(server: Served) -> None:
    with httpx.Client(base_url=server.url, follow_redirects=True, timeout=10) as client:
        home = client.get("/?country=DK")
        assert "/offers/demo-xbox-gold" in home.text
        form = client.get("/signin?next=/offers/demo-xbox-gold/redeem").text
        client.post("/signin", data={"csrf": field(form, "csrf"), "email": "newcomer@example.com",
                                     "next": "/offers/demo-xbox-gold/redeem"})
        link = re.search(rf"{re.escape(server.url)}/signin/[^\s\"<]+", newest_mail(client, 1))
        assert link, "no sign-in link in the email"
        page = client.get(link.group(0))
        assert str(page.url).endswith("/offers/demo-xbox-gold/redeem") and "Product key" in page.text
        result = client.post("/offers/demo-xbox-gold/redeem", data={
            "csrf": field(page.text, "csrf"), "idempotency_key": field(page.text, "idempotency_key"),
            "product_key": "DEMO1-AAAAA-BBBBB-CCCCC-00001", "country": "DK", "accept_terms": "yes"})
        code = re.search(r'class="code"[^>]*>([A-Z0-9-]{29})<', result.text)
        assert code, result.text
        mail = newest_mail(client, 2)
        assert code.group(1) in mail and "will not be replaced" in mail
    assert code.group(1) not in server.log.read_text()  # never in the logs
