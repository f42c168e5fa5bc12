"""Operations endpoints: /healthz, /readyz, /metrics, request ids, error responses, logs."""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from promo.app import create_app
from promo.backends import pg_schema
from promo.backends.store import StoreUnavailable
from promo.config import Settings
from promo.db import connect
from promo.migrate import available_migrations
from tests.support.database import SLUG, reward_code
from tests.support.redemption import add_codes


@pytest.fixture
def client(settings: Settings, conn: sqlite3.Connection) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def test_healthz(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_when_migrated(client: TestClient, settings: Settings) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    pool = body.pop("pool")
    assert body == {"status": "ok", "database": "ok", "pending_migrations": [], "mail_relay": "up", "pid": os.getpid(),
                    **({"audit_sealer": "up"} if settings.database_url else {})}
    if settings.database_url:  # this process's connections (issue 18): all open (the relay and the sealer may hold one each)
        assert pool["size"] == pool["max"] == pool["in_use"] + pool["available"] == 10 and pool["in_use"] <= 2
        assert pool["waiting"] == pool["connections_lost"] == 0
    else:
        assert pool == {"writer": "open", "writer_calls": 0, "grouped_waiting": 0}


def test_readyz_is_503_when_migrations_are_pending(settings: Settings) -> None:
    if settings.database_url:  # the test's own PostgreSQL database is empty
        names = [name for _, name, _ in pg_schema.available_migrations()]
    else:
        connect(settings.database_path).close()  # an empty, unmigrated database
        names = [name for _, name, _ in available_migrations()]
    with TestClient(create_app(settings)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["pending_migrations"] == names


@pytest.mark.sqlite_only("a file that is not a database; PostgreSQL's counterpart: an unreachable server stops start-up")
def test_readyz_is_503_when_the_database_is_unreachable(settings: Settings, tmp_path: Path) -> None:
    unreadable = settings.replace(database_path=tmp_path / "not-a-db")
    unreadable.database_path.write_bytes(b"this is not sqlite" * 100)
    with TestClient(create_app(unreadable)) as client:
        response = client.get("/readyz")
    assert response.status_code == 503 and response.json()["database"] == "unreachable"


def test_an_unreachable_postgresql_stops_start_up_naming_the_setting(settings: Settings) -> None:
    unreachable = settings.replace(database_url="postgresql://promo:hunter2@127.0.0.1:1/promo")
    with pytest.raises(StoreUnavailable) as refused, TestClient(create_app(unreachable)):
        pass
    assert str(refused.value).startswith("database.url: cannot open postgresql://promo:***@127.0.0.1:1/promo")
    assert "hunter2" not in str(refused.value)


def test_metrics_expose_requests_and_code_stock(client: TestClient, conn: sqlite3.Connection) -> None:
    from promo.campaign_store import get_campaign
    add_codes(conn, get_campaign(conn, SLUG), 7)
    client.get("/healthz")
    body = client.get("/metrics").text
    assert 'promo_http_requests_total{method="GET",route="ops.healthz",status="200"} 1.0' in body
    # /metrics is read in 2026, after the shipped campaign's codes expired (2014-10-31): they count as expired.
    assert f'promo_code_stock{{campaign="{SLUG}",status="expired"}} 7.0' in body
    assert f'promo_code_stock{{campaign="{SLUG}",status="available"}} 0.0' in body


def test_metrics_count_decisions_by_outcome_and_rule_from_any_process(client: TestClient, conn: sqlite3.Connection) -> None:
    from promo.campaign_store import get_campaign
    from tests.support.redemption import add_activations, redeem
    add_activations(conn, [(1, "O365-HOME-ESD", "DK", "ann@example.com"), (2, "O365-HOME-TRIAL", "US", "bob@example.com")])
    add_codes(conn, get_campaign(conn, SLUG), 2)
    assert redeem(conn, key=1).redeemed  # on another connection, as the CLI would
    assert not redeem(conn, key=2, account="bob@example.com").redeemed
    assert not redeem(conn, key=1, account="bob@example.com").redeemed
    body = client.get("/metrics").text
    assert f'promo_redemption_decisions{{campaign="{SLUG}",outcome="redeemed"}} 1.0' in body
    assert f'promo_redemption_decisions{{campaign="{SLUG}",outcome="refused"}} 2.0' in body
    assert f'promo_refusals_by_rule{{campaign="{SLUG}",rule="R-X2"}} 1.0' in body
    assert f'promo_refusals_by_rule{{campaign="{SLUG}",rule="R-X4"}} 1.0' in body
    assert f'promo_refusals_by_rule{{campaign="{SLUG}",rule="R-X5"}} 1.0' in body


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    ids = {client.get("/healthz").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3 and all(len(i) == 32 for i in ids)
    assert client.get("/healthz", headers={"X-Request-ID": "abc-123"}).headers["x-request-id"] == "abc-123"


def test_unknown_route_is_a_404_not_a_500(client: TestClient) -> None:
    assert client.get("/nope").status_code == 404


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_promo_serve_over_real_http_logs_json_without_secrets(settings: Settings, conn: sqlite3.Connection, tmp_path: Path) -> None:
    from promo.campaign_store import get_campaign
    add_codes(conn, get_campaign(conn, SLUG), 3)
    port = free_port()
    env = {**os.environ, "PROMO_CONFIG": str(tmp_path / "config.toml"), "PROMO_SECURITY_SECRET_KEY": "k" * 40,
           "PROMO_MAIL_PORT": str(free_port()),
           "PROMO_LOGGING_FORMAT": "json", "PROMO_ENVIRONMENT": "production",
           "PROMO_SERVER_PUBLIC_URL": f"http://127.0.0.1:{port}"}
    log_path = tmp_path / "server.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen([str(Path(sys.executable).parent / "promo"), "serve", "--port", str(port)],
                                  env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as response:
                    assert response.status == 200
                    break
            except (urllib.error.URLError, ConnectionError):
                assert time.time() < deadline, log_path.read_text()
                time.sleep(0.1)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            assert b"promo_code_stock" in response.read()
    finally:
        server.terminate()
        server.wait(timeout=10)
    logged = log_path.read_text()
    assert '"event": "http.request"' in logged and '"route": "ops.readyz"' in logged and '"request_id"' in logged
    for i in range(3):
        assert reward_code(i) not in logged


def test_log_redaction_masks_codes_and_secrets_whatever_the_key() -> None:
    from promo.logs import redact
    event = redact(None, "info", {"event": f"sent {reward_code(5)} to ann", "code": reward_code(6),
                                  "token": "abcdefghijkl", "product_key": "PK000000000000000000000001"})
    text = repr(event)
    assert reward_code(5) not in text and reward_code(6) not in text and "abcdefghijkl" not in text
    assert "*****-*****-*****-*****-*0005" in event["event"]


async def test_a_client_that_leaves_mid_body_gets_no_500_and_no_traceback(settings: Settings) -> None:
    """wrk and real browsers hang up mid-upload; that is not a server error."""
    app = create_app(settings, start_relay=False)
    messages = iter([{"type": "http.request", "body": b"csrf=abc&email=", "more_body": True}, {"type": "http.disconnect"}])
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return next(messages)

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/signin", "raw_path": b"/signin", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/x-www-form-urlencoded"), (b"content-length", b"1000")],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000)}
    await app(scope, receive, send)  # type: ignore[arg-type]
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400
