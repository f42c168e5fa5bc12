"""Roles on every console route and API endpoint, each role against each route: who may
read, who may change, and that a refused request changes nothing. The table below must
name every route, so a new route cannot be added without deciding who may use it."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from promo.api_tokens import create_token
from promo.db import transaction
from promo.staff import ROLES, StaffMember
from tests.support.console import csrf, signed_in

READ, EDIT, ADMIN = ("admin", "marketer", "auditor"), ("admin", "marketer"), ("admin",)
CONSOLE = {
    ("GET", "/console/"): READ,
    ("GET", "/console/campaigns/new"): EDIT,
    ("POST", "/console/campaigns/new"): EDIT,
    ("POST", "/console/campaigns/import"): EDIT,
    ("GET", "/console/campaigns/{slug}"): READ,
    ("GET", "/console/campaigns/{slug}/dashboard"): READ,
    ("GET", "/console/dashboard"): READ,
    ("GET", "/console/campaigns/{slug}/edit"): EDIT,
    ("POST", "/console/campaigns/{slug}/edit"): EDIT,
    ("POST", "/console/campaigns/{slug}/state"): EDIT,
    ("GET", "/console/campaigns/{slug}/export.toml"): READ,
    ("GET", "/console/campaigns/{slug}/preview"): EDIT,  # "View as customer" (issue 19, item 10)
    ("GET", "/console/campaigns/{slug}/preview/{lang}/{page}"): EDIT,
    ("GET", "/console/campaigns/{slug}/preview/{lang}/email/{template}"): EDIT,
    ("GET", "/console/campaigns/{slug}/preview/{lang}/email/{template}/html"): EDIT,
    ("POST", "/console/campaigns/{slug}/codes"): EDIT,
    ("POST", "/console/campaigns/{slug}/batches/{batch_id}/void"): EDIT,
    ("GET", "/console/activations"): READ,
    ("POST", "/console/activations"): EDIT,
    ("GET", "/console/jobs/{job_id}"): READ,
    ("GET", "/console/staff"): ADMIN,
    ("POST", "/console/staff"): ADMIN,
    ("POST", "/console/staff/{staff_id}"): ADMIN,
    ("GET", "/console/tokens"): READ,
    ("POST", "/console/tokens"): READ,
    ("POST", "/console/tokens/{token_id}/revoke"): READ,
    ("GET", "/console/nonprofit/"): READ,
    ("GET", "/console/nonprofit/organisations"): READ,
    ("GET", "/console/nonprofit/requests"): READ,
    ("POST", "/console/nonprofit/keys"): EDIT,
    ("POST", "/console/nonprofit/organisations/{org_id}/{decision}"): EDIT,
    ("POST", "/console/nonprofit/requests/{request_id}/{decision}"): EDIT,
    ("POST", "/console/nonprofit/returns/{return_id}/{decision}"): EDIT,
}
API = {
    ("GET", "/api/v1/campaigns"): READ,
    ("GET", "/api/v1/campaigns/{slug}"): READ,
    ("PUT", "/api/v1/campaigns/{slug}"): EDIT,
    ("POST", "/api/v1/campaigns/{slug}/state"): EDIT,
    ("POST", "/api/v1/campaigns/{slug}/evaluate"): READ,
    ("GET", "/api/v1/campaigns/{slug}/stock"): READ,
    ("POST", "/api/v1/campaigns/{slug}/codes"): EDIT,
    ("POST", "/api/v1/activations"): EDIT,
    ("GET", "/api/v1/jobs/{job_id}"): READ,
}
PUBLIC = {("GET", "/api/v1/openapi.json")}
PARTNER = {("POST", "/api/v1/validation-codes/verify")}  # partner tokens, not staff: tests/test_nonprofit_web.py


def routes_of(client: TestClient, prefix: str) -> set[tuple[str, str]]:
    return {(method, re.sub(r":\w+}", "}", r.path))  # {job_id:int64} -> {job_id}
            for r in client.app.routes if isinstance(r, Route) and r.path.startswith(prefix)  # type: ignore[attr-defined]
            for method in (r.methods or set()) - {"HEAD"}}


def url(path: str, ids: dict[str, int]) -> str:
    return path.format(slug="open-today", decision="approve", org_id=1, return_id=1, request_id=1, lang="da", page="reward",
                       template="reward_code", **ids)


@pytest.fixture
def ids(shop: sqlite3.Connection) -> dict[str, int]:
    """Real rows for every path parameter: a batch, a job, another staff member, a token."""
    now = datetime.now(UTC)
    with transaction(shop):
        shop.execute("INSERT INTO import_jobs (kind, source, size_bytes, status, imported, actor, started_at)"
                     " VALUES ('activations', 'x.csv', 1, 'done', 1, 'test', '2026-01-01T00:00:00.000000Z')")
    from tests.support.staff import staff
    staff(shop, "other@example.com", "support")
    other = shop.execute("SELECT id, email, role FROM staff WHERE email = 'other@example.com'").fetchone()
    with transaction(shop):
        _raw, token_id = create_token(shop, StaffMember(*other), "theirs", now=now, ip=None)
    return {"batch_id": shop.execute("SELECT MIN(id) FROM code_batches").fetchone()[0],
            "job_id": shop.execute("SELECT MAX(id) FROM import_jobs").fetchone()[0],
            "staff_id": other["id"], "token_id": token_id}


def test_the_tables_name_every_route(client: TestClient) -> None:
    assert routes_of(client, "/console/") == set(CONSOLE)
    assert routes_of(client, "/api/") == set(API) | PUBLIC | PARTNER


def test_without_a_session_every_console_route_asks_to_sign_in(client: TestClient, ids: dict[str, int]) -> None:
    for method, path in CONSOLE:
        response = client.request(method, url(path, ids))
        assert response.status_code == 303 and response.headers["location"].startswith("/staff/signin"), (method, path)


@pytest.mark.parametrize("role", ROLES)
def test_each_role_on_each_console_route(client: TestClient, shop: sqlite3.Connection, ids: dict[str, int], role: str) -> None:
    signed_in(client, shop, role)
    token = csrf(client, "/console/tokens") if role in READ else ""
    for (method, path), allowed in sorted(CONSOLE.items()):
        events = shop.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0]
        response = client.request(method, url(path, ids), data={"csrf": token} if method == "POST" else None)
        if role in allowed:
            assert response.status_code not in (401, 403), (role, method, path, response.status_code)
        else:
            assert response.status_code == 403 and "not allowed" in response.text.lower(), (role, method, path)
            assert shop.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0] == events, (role, method, path)


def test_console_forms_need_the_session_csrf_token(client: TestClient, shop: sqlite3.Connection, ids: dict[str, int]) -> None:
    signed_in(client, shop, "admin")
    events = shop.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0]
    for (method, path) in CONSOLE:
        if method == "POST":
            for token in (None, "forged"):
                response = client.post(url(path, ids), data={"csrf": token, "action": "pause"} if token else {"action": "pause"})
                assert response.status_code == 403, (path, token)
    assert shop.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0] == events


@pytest.mark.parametrize("role", ROLES)
def test_each_role_on_each_api_endpoint(client: TestClient, shop: sqlite3.Connection, ids: dict[str, int], role: str) -> None:
    from tests.support.staff import staff
    staff(shop, f"api-{role}@example.com", role)
    member = shop.execute("SELECT id, email, role FROM staff WHERE email = ?", (f"api-{role}@example.com",)).fetchone()
    with transaction(shop):
        raw, _id = create_token(shop, StaffMember(*member), "matrix", now=datetime.now(UTC), ip=None)
    for (method, path), allowed in sorted(API.items()):
        events = shop.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0]
        response = client.request(method, url(path, ids), headers={"Authorization": f"Bearer {raw}"}, content=b"{}")
        if role in allowed:
            assert response.status_code not in (401, 403), (role, method, path, response.text)
        else:
            assert response.status_code == 403 and response.headers["content-type"] == "application/problem+json", (role, path)
            assert f"the {role} role cannot do this" in response.json()["title"]
            assert shop.execute("SELECT COUNT(*) FROM audit_events").fetchone()[0] == events
    for (method, path) in API:  # no token, a bad one, or a staff cookie instead: 401
        for headers in ({}, {"Authorization": "Bearer promo_not-a-token"}, {"Authorization": f"Basic {raw}"}):
            response = client.request(method, url(path, ids), headers=headers)
            assert response.status_code == 401 and response.headers["www-authenticate"].startswith("Bearer"), (path, headers)
