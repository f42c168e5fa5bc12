"""`promo serve` with the embedded defaults (SQLite, the local mail sink, the demo offer),
as a newcomer runs it: a real process, real HTTP, email read from the sink's page."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx2 as httpx

from tests.support.served import Served, field, newest_mail, port_pair, write_config

PROMO = str(Path(sys.executable).parent / "promo")
ROOT = Path(__file__).resolve().parents[2]


def test_a_newcomer_redeems_the_demo_offer_and_reads_the_email(default_server: Served) -> None:
    server = default_server
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


def start_copy(tmp_path: Path, name: str, port: int, *, by_option: bool) -> tuple[subprocess.Popen[bytes], str]:
    """A copy of Promo with the shipped config and its own database, told only its port
    (PROMO_SERVER_PORT, or `promo serve --port`)."""
    folder = tmp_path / name
    folder.mkdir()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("PROMO_")},
           "PROMO_CONFIG": str(write_config(folder, folder / "promo.sqlite3"))}
    subprocess.run([PROMO, "migrate"], env=env, check=True, capture_output=True, timeout=60)
    command = [PROMO, "serve", "--port", str(port)] if by_option else [PROMO, "serve"]
    if not by_option:
        env["PROMO_SERVER_PORT"] = str(port)
    log = folder / "server.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 30
    while True:
        try:
            if httpx.get(url + "/readyz", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        assert process.poll() is None and time.time() < deadline, log.read_text()
        time.sleep(0.1)


def test_two_copies_side_by_side_need_only_their_own_port(tmp_path: Path) -> None:
    copies = []
    try:
        for name, by_option in (("first", False), ("second", True)):
            copies.append(start_copy(tmp_path, name, port_pair(), by_option=by_option))
        for n, (_, url) in enumerate(copies):
            with httpx.Client(base_url=url, follow_redirects=True, timeout=10) as client:
                form = client.get("/signin").text
                client.post("/signin", data={"csrf": field(form, "csrf"), "email": f"copy{n}@example.com"})
                # The email reached this copy's own sink, with a link to this copy's port.
                mail = newest_mail(client, 1)
                assert f"copy{n}@example.com" in mail and re.search(rf"{re.escape(url)}/signin/\S+", mail), mail
    finally:
        for process, _ in copies:
            process.terminate()
            process.wait(timeout=15)
