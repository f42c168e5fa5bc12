"""The outbox relay never dies, and a dead relay is visible (issue 14, section 2): hostile
text in every field that reaches an email, sent through the real forms of a `promo serve`
process over real HTTP, never stops email to anyone else (real SMTP, aiosmtpd); a relay
that stops anyway is restarted, counted in /metrics and shown by /readyz meanwhile. On both
stores (issue 17); on PostgreSQL 2 instances share the database, each with its relay, and the
forms go to both (issue 18)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote_from_bytes

import httpx2 as httpx
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from promo.campaign_form import form_from_definition
from promo.campaign_store import get_campaign
from promo.config import Settings
from promo.i18n import languages
from promo.mail import MailRelay
from tests.support.database import product_key
from tests.support.invariants import assert_chain_verifies
from tests.support.mailserver import MailServer
from tests.support.nonprofit import install_program
from tests.support.served import Servers, instances, mint_sessions, start_servers, write_config
from tests.support.staff import PASSWORD, staff
from tests.support.web import add_open_campaign

ANN = "ann@example.com"
ADMIN = "admin@example.com"
PDF = b"%PDF-1.4\n% a receipt\n"
DAY = (datetime.now(UTC).date() - timedelta(days=2)).isoformat()  # inside the open-today offer's windows


@pytest.fixture
def relay_db(conn: Any) -> Any:
    """The test's database (either store), prepared."""
    return conn


@pytest.fixture
def served(settings: Settings, store: str, tmp_path: Path, relay_db: Any, smtp: MailServer) -> Iterator[Servers]:
    """`promo serve` relaying to the test's SMTP server (no built-in sink): the store's instances."""
    servers = start_servers(write_config(tmp_path, settings), tmp_path, instances(store), PROMO_MAIL_SINK="false",
                            PROMO_MAIL_PORT=str(smtp.port), PROMO_MAIL_TIMEOUT_SECONDS="3")
    yield servers
    servers.stop()


def assert_relays_up(servers: Servers) -> None:
    """Every instance's /readyz: ready, its relay up (other keys of /readyz are not this test's)."""
    for n in range(len(servers)):
        ready = httpx.get(servers.url(n) + "/readyz", timeout=10)
        assert ready.status_code == 200 and ready.json()["mail_relay"] == "up", ready.text


def ask_for_link(http: httpx.Client, email: str | bytes, **headers: str) -> int:
    """Send the sign-in form as a browser does (its CSRF token from the page)."""
    form = http.get("/signin")
    token = re.search(r'name="csrf" value="([^"]*)"', form.text)
    assert form.status_code == 200 and token
    return post(http, "/signin", [("csrf", token.group(1)), ("email", email), ("next", "/")], **headers).status_code


def post(http: httpx.Client, path: str, fields: list[tuple[str, str | bytes]], **headers: str) -> httpx.Response:
    """A urlencoded form with any bytes in it, %-escaped as a browser sends them."""
    body = "&".join(f"{quote_from_bytes(name.encode())}={quote_from_bytes(v if isinstance(v, bytes) else v.encode())}"
                    for name, v in fields)
    return http.post(path, content=body, headers={"Content-Type": "application/x-www-form-urlencoded", **headers})


def wait_for_mail_to(smtp: MailServer, recipient: str, timeout: float = 15) -> None:
    deadline = time.time() + timeout
    while not any(m["To"] == recipient for m in smtp.received):
        assert time.time() < deadline, f"no email to {recipient}: the relay is not sending"
        time.sleep(0.02)


def test_an_address_with_a_control_character_does_not_stop_email(served: Servers, smtp: MailServer,
                                                                  relay_db: Any) -> None:
    """R-X5: one hostile anonymous sign-in used to end the relay task for good (aiosmtplib
    raised ValueError on the RCPT argument), while /readyz still said ok."""
    with httpx.Client(base_url=served.url(0), timeout=10) as http:
        status = ask_for_link(http, "x\x00y@example.com")
        assert status in (303, 400, 422)  # refused at the edge (the NUL: 400; section 3: 422) or failed by the relay: never a 500
    deadline = time.time() + 10  # until a relay has taken the hostile row (if it was queued at all)
    while relay_db.execute("SELECT COUNT(*) FROM outbox WHERE status = 'queued'").fetchone()[0]:
        assert time.time() < deadline, "the hostile row is still queued"
        time.sleep(0.02)
    with httpx.Client(base_url=served.url(1), timeout=10) as http:  # the other instance, where there are two
        assert ask_for_link(http, ANN) == 303
    wait_for_mail_to(smtp, ANN)
    assert_relays_up(served)
    hostile = relay_db.execute("SELECT status, last_error FROM outbox WHERE recipient LIKE 'x%y@example.com'").fetchall()
    assert [row["status"] for row in hostile] in ([], ["failed"])
    assert "Traceback" not in served.log_text()


# ---- supervision, through the app

def test_a_relay_that_stops_is_restarted_and_shown_meanwhile(client: TestClient, smtp: MailServer,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever escapes the relay's loop (here: an error it does not wait out, twice), the
    relay is restarted with backoff (1 s, then 2 s); meanwhile /readyz answers 503 naming it,
    /metrics shows it down, and the log says what stopped it without its text."""
    import structlog

    real = MailRelay.deliver_once
    failures = iter([RuntimeError("token=SECRET-LINK"), RuntimeError("token=SECRET-LINK")])

    async def failing(self: MailRelay, **kwargs: Any) -> int:
        error = next(failures, None)
        if error is not None:
            raise error
        return await real(self, **kwargs)

    worker = client.app.state.workers[0]  # type: ignore[attr-defined]
    with structlog.testing.capture_logs() as logs:
        monkeypatch.setattr(MailRelay, "deliver_once", failing)
        client.app.state.wake_relay()  # type: ignore[attr-defined]
        down, metrics_down = [], []
        deadline = time.time() + 15
        while not (worker.restarts == 2 and worker.up):
            ready = client.get("/readyz")
            if ready.status_code == 503:
                down.append(ready.json())
                # The relay may come back between the two requests (on a busy machine): a sample each.
                metrics_down.append('promo_worker_up{worker="mail_relay"} 0.0' in client.get("/metrics").text)
            assert time.time() < deadline, "the relay was not restarted"
            time.sleep(0.02)
    assert any(metrics_down)  # /metrics showed it down meanwhile too
    # The keys this test is about (other helpers add their own to /readyz).
    assert down and all((d["status"], d["database"], d["pending_migrations"], d["mail_relay"], d["mail_relay_error"])
                        == ("unavailable", "ok", [], "down", "RuntimeError") for d in down)
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["mail_relay"] == "up"
    metrics = client.get("/metrics").text
    assert 'promo_worker_restarts_total{worker="mail_relay"} 2.0' in metrics
    assert 'promo_worker_up{worker="mail_relay"} 1.0' in metrics
    stopped = [entry for entry in logs if entry["event"] == "worker.stopped"]
    assert [(e["log_level"], e["worker"], e["error"], e["restart_in_seconds"]) for e in stopped] == [
        ("error", "mail_relay", "RuntimeError", 1.0), ("error", "mail_relay", "RuntimeError", 2.0)]
    assert "SECRET-LINK" not in repr(logs)
    from tests.support.web import follow_link, sign_in
    follow_link(client, sign_in(client, smtp))  # and email goes out again


# ---- every field that reaches an email, through the real forms

_TRICKY = [b"\x00", b"\r\n", b"\r\nBcc: eve@example.com", b"\n.\r\n", b"\x1b[2J", b"\x7f", b"\x0b\x0c", b"\x1c\x1d\x1e\x1f",
           "\u2028\u2029\x85".encode(), b"\xed\xa0\x80", b"\xff\xfe", "ærø é".encode() * 400, b"A" * 5000, b"{{ 7 * 7 }}",
           b"<script>x</script>", b"=HYPERLINK()", "\u202e\ufeff".encode(), "𝔘𝔫𝔦".encode()]
# Bytes as a browser could send them: anything, UTF-8 text of any code point (lone
# surrogates as their three bytes: the form parser turns them into U+FFFD), and known traps.
_RAW = st.one_of(st.binary(max_size=40),
                 st.text(st.one_of(st.characters(), st.characters(categories=["Cs"])), max_size=40)
                 .map(lambda t: t.encode("utf-8", "surrogatepass")),
                 st.sampled_from(_TRICKY))
HOSTILE = st.lists(_RAW, min_size=1, max_size=3).map(b"".join)


def _address_part(raw: bytes) -> bytes:
    """As the form parser reads it, without what no address holds (white space, "@")."""
    return re.sub(r"[\s@]", "", raw.decode("utf-8", "replace")).encode() or b"x"


# Addresses mostly shaped like one, so that they get past the form's check and reach the relay.
ADDRESS = st.one_of(st.builds(lambda local, domain: _address_part(local) + b"@" + _address_part(domain) + b".example",
                              HOSTILE, HOSTILE), HOSTILE)
LINK = st.one_of(HOSTILE.map(lambda path: b"https://example.com/" + path), HOSTILE)  # mostly past "must be an http(s) link"


class Service:
    """A served Promo with the open-today offer, the nonprofit program and an admin; makes
    fresh consumers (sessions minted through the app's own code) as the examples need them."""

    def __init__(self, served: Servers, conn: Any, smtp: MailServer):
        self.served, self.conn, self.smtp, self.n = served, conn, smtp, 0
        self.admin = httpx.Client(base_url=served.url(0), timeout=15)  # staff on the first instance
        form = self.admin.get("/staff/signin")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text).group(1)  # type: ignore[union-attr]
        signed = self.admin.post("/staff/signin", data={"csrf": token, "email": ADMIN, "password": PASSWORD, "next": "/console/"})
        assert signed.status_code == 303
        self.admin_csrf = re.search(r'name="csrf" value="([^"]+)"',  # type: ignore[union-attr]
                                    self.admin.get("/console/tokens").text).group(1)
        self.statuses: list[tuple[str, int]] = []
        self.turns = 0

    def instance(self) -> str:
        """The next instance for a consumer: they alternate, where there are two."""
        self.turns += 1
        return self.served.url(self.turns)

    def next(self) -> int:
        self.n += 1
        return self.n

    def consumer(self, account: str) -> tuple[httpx.Client, str]:
        [(raw, csrf)] = mint_sessions(self.conn, [account]).values()
        return httpx.Client(base_url=self.instance(), timeout=15, cookies={"promo_session": raw}), csrf

    def check(self, what: str, response: httpx.Response) -> httpx.Response:
        self.statuses.append((what, response.status_code))
        assert response.status_code < 500, (what, response.status_code, response.text[:500])
        return response

    def staff_post(self, path: str, fields: list[tuple[str, str | bytes]]) -> httpx.Response:
        return self.check(path, post(self.admin, path, [("csrf", self.admin_csrf), *fields]))


@pytest.fixture
def service(served: Servers, relay_db: Any, smtp: MailServer) -> Iterator[Service]:
    add_open_campaign(relay_db, keys=200, codes=300)
    install_program(relay_db, keys_per_product=100, now=datetime.now(UTC))
    staff(relay_db, ADMIN, "admin")
    running = Service(served, relay_db, smtp)
    yield running
    running.admin.close()


def sign_in_address(s: Service, address: bytes) -> None:
    with httpx.Client(base_url=s.instance(), timeout=15) as http:
        s.statuses.append(("signin", status := ask_for_link(http, address, **{"Accept-Language": "da, nb;q=0.5"})))
        assert status < 500


def campaign_texts(s: Service, n: int, texts: dict[str, bytes], staff_address: bytes) -> None:
    """A marketer's address, the campaign's names and reward through the console's forms;
    then a redemption mails the reward (campaign and reward names) and, below the low-stock
    threshold, the alert to every marketer (the campaign's name, their addresses)."""
    s.staff_post("/console/staff", [("email", staff_address), ("role", "marketer"), ("password", PASSWORD)])
    def edit(threshold: str, hostile: dict[str, bytes]) -> int:
        stored = get_campaign(s.conn, "open-today")
        values = form_from_definition(stored.campaign.to_dict(), languages())
        fields: list[tuple[str, str | bytes]] = []
        for name, value in {**values, "low_stock_threshold": threshold, "updated_at": stored.updated_at, **hostile}.items():
            fields.extend((name, v) for v in value) if isinstance(value, list) else fields.append((name, value))
        return s.staff_post("/console/campaigns/open-today/edit", fields).status_code

    edit("1", {})  # re-arms the low-stock alert
    if edit("100000", texts) != 303:  # below the threshold now: the next redemption trips the alert
        edit("100000", {})  # the texts were refused at their fields; trip it all the same
    consumer, csrf = s.consumer(f"buyer{n}@example.com")
    with consumer:
        page = s.check("redeem form", consumer.get("/offers/open-today/redeem")).text
        key = re.search(r'name="idempotency_key" value="([^"]*)"', page).group(1)  # type: ignore[union-attr]
        s.check("redeem", post(consumer, "/offers/open-today/redeem", [
            ("csrf", csrf), ("idempotency_key", key), ("product_key", product_key(n)), ("country", "DK"), ("accept_terms", "yes")]))


def review_reason(s: Service, n: int, reason: bytes) -> None:
    """A consumer asks for a manual review (R-X11); the reviewer's rejection mails the reason."""
    account = f"claimant{n}@example.com"
    consumer, csrf = s.consumer(account)
    with consumer:
        sent = consumer.post("/offers/open-today/review", data={
            "csrf": csrf, "product_key": f"QQQQQ-QQQQQ-QQQQQ-QQQQQ-{n:05d}", "sku": "O365-HOME-ESD", "country": "DK",
            "purchased_at": DAY, "activated_at": DAY}, files={"receipt": ("receipt.pdf", PDF, "application/pdf")})
        assert s.check("review", sent).status_code == 200
    claim_id = s.conn.execute("SELECT id FROM review_claims WHERE account_email = ?", (account,)).fetchone()[0]
    s.staff_post(f"/review/{claim_id}/reject", [("reason", reason)])


def nonprofit_texts(s: Service, n: int, name: bytes, reason: bytes) -> None:
    """An organisation's name (R-N*) in the keys email, and a refused return's reason (R-N9)."""
    holder, holder_csrf = s.consumer(f"holder{n}@ngo.example")
    rep_address = f"rep{n}@ngo.example"
    with holder:
        registered = s.check("register", post(holder, "/nonprofit/register", [
            ("csrf", holder_csrf), ("name", name), ("short_name", f"Org{n}"), ("country", "DK"),
            ("registration_number", f"DK-{n}"), ("mission", "relieving_poverty"), ("org_type", "charity"),
            ("non_discrimination", "yes")]))
        if registered.status_code != 303:
            return  # the name was refused at the form, with a message: it reaches no email
        org_path = registered.headers["location"]
        assert s.staff_post(f"/console/nonprofit/organisations/{org_path.rsplit('/', 1)[1]}/approve", []).status_code == 303
        issued = s.check("issue code", post(holder, f"{org_path}/codes", [
            ("csrf", holder_csrf), ("first_name", "Rita"), ("last_name", "Rep"), ("email", rep_address)]))
        code = re.search(r'id="new-code">([^<]+)<', issued.text).group(1)  # type: ignore[union-attr]
    rep, rep_csrf = s.consumer(rep_address)
    with rep:
        granted = s.check("request", post(rep, "/nonprofit/request", [("csrf", rep_csrf), ("code", code),
                                                                       ("qty.DON-WINSRV-STD", "1"),
                                                                       ("accept_terms", "yes")]))  # R-N10
        assert granted.status_code == 303, granted.text
        s.check("return", post(rep, f"{granted.headers['location']}/return", [("csrf", rep_csrf), ("not_installed", "yes")]))
    return_id = s.conn.execute("SELECT MAX(id) FROM donation_returns").fetchone()[0]
    s.staff_post(f"/console/nonprofit/returns/{return_id}/reject", [("reason", reason)])


def assert_still_whole(s: Service, n: int) -> None:
    """A normal sign-in email still arrives, the relay is up, nothing was a 500 or a traceback."""
    normal = f"normal{n}@example.com"
    with httpx.Client(base_url=s.instance(), timeout=15) as http:
        assert ask_for_link(http, normal) == 303
        wait_for_mail_to(s.smtp, normal)
    assert_relays_up(s.served)
    logged = s.served.log_text()
    assert "Traceback" not in logged and "worker.stopped" not in logged


def test_hostile_text_in_every_emailed_field_never_stops_email(service: Service) -> None:
    @settings(max_examples=25, deadline=None, database=None)
    @given(address=ADDRESS, staff_address=ADDRESS, name=HOSTILE, name_da=HOSTILE, name_nb=HOSTILE, reward=HOSTILE,
           terms_url=LINK, review=HOSTILE, organisation=HOSTILE, return_reason=HOSTILE)
    @example(address=b"x\x00y@example.com", staff_address="ærø\x00@example.dk".encode(), name=b"Offer\r\nBcc: eve@example.com",
             name_da=b"\x00", name_nb="\u2028".encode(), reward=b"Gold\x00\r\n", terms_url=b"https://example.com/\x00",
             review=b"No.\r\n.\r\nQUIT\x00", organisation=b"Food\x00Bank\r\nBcc: eve@example.com", return_reason=b"\xed\xa0\x80 x")
    def hostile(address: bytes, staff_address: bytes, name: bytes, name_da: bytes, name_nb: bytes, reward: bytes,
                terms_url: bytes, review: bytes, organisation: bytes, return_reason: bytes) -> None:
        n = service.next()
        sign_in_address(service, address)
        campaign_texts(service, n, {"name": name, "names.da": name_da, "names.nb": name_nb, "reward.name": reward,
                                    "reward.terms_url": terms_url}, staff_address)
        review_reason(service, n, review)
        nonprofit_texts(service, n, organisation, return_reason)
        assert_still_whole(service, n)

    hostile()
    # Every email was sent or failed (none stuck behind a lease), and each failure is audited.
    deadline = time.time() + 15
    while service.conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'queued'").fetchone()[0]:
        assert time.time() < deadline, "emails left queued"
        time.sleep(0.05)
    failed = service.conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'failed'").fetchone()[0]
    audited = service.conn.execute("SELECT COUNT(*) FROM audit_events WHERE tag = 'mail:message:failed'").fetchone()[0]
    assert failed == audited
    assert_chain_verifies(service.conn)
    templates = {row[0] for row in service.conn.execute("SELECT DISTINCT template FROM outbox WHERE status = 'sent'")}
    assert templates >= {"signin_link", "reward_code", "low_stock", "review_rejected", "donation_keys", "donation_return"}
