"""Safe defaults for a real deployment, through a real `promo serve`: no mail sink in
production, X-Forwarded-For believed only from configured proxies, /metrics only for whom
metrics.access names. On both stores (issue 17); the per-IP limits on PostgreSQL through 2
instances on one database, the attempts alternating between them (issue 18)."""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from starlette.testclient import TestClient

from promo.app import create_app
from promo.config import Settings
from tests.support.database import product_key
from tests.support.served import PROMO, Servers, instances, mint_sessions, start_server, start_servers, write_config
from tests.support.web import add_open_campaign

PRODUCTION = {"PROMO_ENVIRONMENT": "production", "PROMO_SERVER_PUBLIC_URL": "https://promo.example.com",
              "PROMO_MAIL_PORT": "9"}
UNKNOWN_KEYS = [product_key(900 + n) for n in range(3)]  # no activation record: failed guesses (R-X11)


@pytest.fixture
def db(conn: Any) -> Any:
    add_open_campaign(conn, keys=1, codes=1)
    return conn


@pytest.fixture
def serve(settings: Settings, store: str, tmp_path: Path) -> Iterator[Any]:
    """serve(**overrides): the store's instances of `promo serve` (stopped after the test)."""
    started: list[Servers] = []

    def start(**overrides: str) -> Servers:
        started.append(start_servers(write_config(tmp_path, settings), tmp_path, instances(store),
                                     PROMO_MAIL_SINK="false", PROMO_MAIL_PORT="9", **overrides))
        return started[-1]

    yield start
    for servers in started:
        servers.stop()


@pytest.mark.parametrize("setting", [{"PROMO_MAIL_SINK": "true"}, {}])
def test_promo_serve_in_production_refuses_a_mail_sink_naming_the_setting(settings: Settings, tmp_path: Path,
                                                                          setting: dict[str, str]) -> None:
    config = write_config(tmp_path, settings)
    if not setting:  # the same, said in the config file
        config.write_text(config.read_text(encoding="utf-8").replace("# sink = true", "sink = true"), encoding="utf-8")
    env = {**os.environ, "PROMO_CONFIG": str(config), **PRODUCTION, **setting}
    result = subprocess.run([PROMO, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith("error: mail.sink: ") and "PROMO_MAIL_SINK=false" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_promo_serve_in_production_needs_its_public_url(settings: Settings, tmp_path: Path) -> None:
    env = {**os.environ, "PROMO_CONFIG": str(write_config(tmp_path, settings)), "PROMO_ENVIRONMENT": "production"}
    result = subprocess.run([PROMO, "serve"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and result.stderr.startswith("error: server.public_url: must be set"), result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_production_defaults_no_dev_mail_page_and_metrics_for_this_machine_only(settings: Settings, tmp_path: Path,
                                                                              db: Any) -> None:
    config = write_config(tmp_path, settings)
    process, served = start_server(config, tmp_path / "server.log", **PRODUCTION)  # the shipped config, production
    try:
        with httpx.Client(base_url=served.url, timeout=10) as client:
            assert client.get("/dev/mail").status_code == 404  # no sink, so no page of sign-in links
            assert client.get("/metrics").status_code == 200 and "promo_code_stock" in client.get("/metrics").text
            # Through a proxy on this machine (it adds X-Forwarded-For), the client is not local.
            proxied = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.5"})
            assert proxied.status_code == 403 and "metrics.access" in proxied.text
    finally:
        process.terminate()
        process.wait(timeout=15)


def guess_from(servers: Servers, conn: Any, addresses: list[str]) -> list[tuple[int, str, str]]:
    """One failed key attempt per address, each by its own account, each claiming in
    X-Forwarded-For to come from that address, round-robin over the instances (the limits are
    kept in the database they share). Returns (status, failed rules, recorded client ip)."""
    statuses = []
    sessions = mint_sessions(conn, [f"guess{n}@example.com" for n in range(len(addresses))])
    with httpx.Client(timeout=10) as client:
        for n, ((cookie, csrf), key, address) in enumerate(zip(sessions.values(), UNKNOWN_KEYS, addresses, strict=True)):
            headers = {"Cookie": f"promo_session={cookie}", "X-Forwarded-For": address}
            response = client.post(servers.url(n) + "/offers/open-today/redeem", headers=headers,
                                   data={"csrf": csrf, "idempotency_key": secrets.token_hex(8), "product_key": key,
                                         "country": "DK", "accept_terms": "yes"})
            statuses.append(response.status_code)
    rows = conn.execute("SELECT failed_rules, client_ip FROM redemption_attempts ORDER BY id").fetchall()
    return [(status, r[0].split()[0], r[1]) for status, r in zip(statuses, rows, strict=True)]


def test_x_forwarded_for_is_ignored_by_default_so_per_ip_limits_hold(serve: Any, db: Any) -> None:
    attempts = guess_from(serve(PROMO_SECURITY_KEY_ATTEMPTS_PER_HOUR="2"), db,
                          ["198.51.100.1", "198.51.100.2", "198.51.100.3"])
    # Three accounts, three claimed addresses, one real client: the third attempt hits the
    # per-IP limit (R-X12), and every record names the real address.
    assert [(status, rule) for status, rule, _ in attempts] == [(422, "R-X11"), (422, "R-X11"), (429, "R-X12")]
    assert {ip for _, _, ip in attempts} == {"127.0.0.1"}


def test_x_forwarded_for_is_believed_from_a_configured_proxy(serve: Any, db: Any) -> None:
    attempts = guess_from(serve(PROMO_SECURITY_KEY_ATTEMPTS_PER_HOUR="2", PROMO_SERVER_TRUSTED_PROXIES="127.0.0.1,::1"),
                          db, ["198.51.100.1", "198.51.100.2", "198.51.100.3"])
    # Three clients behind the proxy, none over its limit, each recorded with its own address.
    assert [(status, rule) for status, rule, _ in attempts] == [(422, "R-X11")] * 3
    assert [ip for _, _, ip in attempts] == ["198.51.100.1", "198.51.100.2", "198.51.100.3"]


def app_with(settings: Settings, **metrics: str | None) -> Settings:
    return settings.replace(**{f"metrics_{name}": value for name, value in metrics.items()})


@pytest.mark.parametrize(("peer", "headers", "status"), [
    ("127.0.0.1", {}, 200), ("::1", {}, 200), ("::ffff:127.0.0.1", {}, 200),
    ("203.0.113.9", {}, 403), ("127.0.0.1", {"X-Forwarded-For": "127.0.0.1"}, 403),
    ("127.0.0.1", {"Forwarded": "for=203.0.113.9"}, 403), ("testclient", {}, 403),
])
def test_metrics_for_loopback_only(settings: Settings, db: Any, peer: str, headers: dict[str, str],
                                   status: int) -> None:
    with TestClient(create_app(app_with(settings, access="loopback")), client=(peer, 4321)) as client:
        response = client.get("/metrics", headers=headers)
    assert response.status_code == status
    assert ("promo_http_requests" in response.text) == (status == 200)


TOKEN = "m" * 40


@pytest.mark.parametrize(("authorization", "status"), [
    (None, 401), ("Bearer " + "x" * 40, 401), ("Basic " + TOKEN, 401), ("Bearer " + TOKEN[:-1], 401),
    ("Bearer " + TOKEN[:-1] + "é", 401), ("Bearer " + TOKEN, 200), ("bearer  " + TOKEN, 200),
])
def test_metrics_with_a_bearer_token(settings: Settings, db: Any, authorization: str | None, status: int) -> None:
    with TestClient(create_app(app_with(settings, access="token", token=TOKEN)), client=("127.0.0.1", 4321)) as client:
        headers = {"Authorization": authorization.encode("utf-8")} if authorization else {}
        response = client.get("/metrics", headers=headers)  # type: ignore[arg-type]
    assert response.status_code == status
    if status == 401:
        assert response.headers["www-authenticate"] == 'Bearer realm="metrics"' and "promo_" not in response.text
