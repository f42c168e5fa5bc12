"""`promo serve` with the embedded defaults (SQLite, the local mail sink, the demo offer),
as a newcomer runs it: a real process, real HTTP, email read from the sink's page."""

from __future__ import annotations

import html
import re
import sys
import time
from pathlib import Path

import httpx2 as httpx

from tests.served import Served

PROMO = str(Path(sys.executable).parent / "promo")
ROOT = Path(__file__).resolve().parent.parent


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
