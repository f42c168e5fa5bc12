"""The JSON API under /api/v1/ over HTTP: tokens created and revoked in the console and
stored hashed, every endpoint, problem+json errors naming field, line and rule, the
audit trail of API changes, and answers that match the served OpenAPI description."""

from __future__ import annotations

import json
import re
import sqlite3
from typing import Any

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from promo.campaign_store import get_campaign
from promo.campaigns import render_campaign_file
from tests.support.console import audit_changes, new_token, post_confirmed, post_form, signed_in
from tests.support.database import product_key, reward_code
from tests.support.prepared import dump_text


@pytest.fixture
def api(client: TestClient, shop: sqlite3.Connection) -> tuple[TestClient, dict[str, str]]:
    signed_in(client, shop, "marketer")
    raw = new_token(client)
    client.cookies.clear()  # the API never looks at cookies
    return client, {"Authorization": f"Bearer {raw}"}


def schema_check(openapi: dict[str, Any], name: str, body: dict[str, Any]) -> None:
    """The answer has the required fields of its OpenAPI schema, with the declared enums."""
    schema = openapi["components"]["schemas"][name]
    missing = [f for f in schema.get("required", []) if f not in body]
    assert not missing, f"{name} lacks {missing}"
    for field, spec in schema["properties"].items():
        if "enum" in spec and field in body:
            assert body[field] in spec["enum"], (name, field, body[field])


def test_tokens_are_shown_once_stored_hashed_and_revocable(client: TestClient, shop: sqlite3.Connection) -> None:
    signed_in(client, shop, "auditor")
    raw = new_token(client, "quarterly audit export")
    listed = client.get("/console/tokens").text
    assert "quarterly audit export" in listed and raw not in listed  # never shown again
    dump = dump_text(shop)
    assert raw not in dump and raw[len("promo_"):] not in dump  # only its hash is stored
    headers = {"Authorization": f"Bearer {raw}"}
    assert client.get("/api/v1/campaigns", headers=headers).status_code == 200
    assert client.put("/api/v1/campaigns/open-today", headers=headers, json={}).status_code == 403  # auditors read only
    token_id = shop.execute("SELECT id FROM api_tokens").fetchone()[0]
    assert post_confirmed(client, f"/console/tokens/{token_id}/revoke", {}).status_code == 303
    assert client.get("/api/v1/campaigns", headers=headers).status_code == 401
    assert [e["name"] for e in audit_changes(shop, "staff:token:created")] == ["quarterly audit export"]
    assert audit_changes(shop, "staff:token:revoked")[0]["owner"] == "auditor@example.com"
    empty = post_form(client, "/console/tokens", {"name": " "})
    assert empty.status_code == 422 and "name: is required" in empty.text


def test_a_disabled_owner_s_tokens_stop_working(api: tuple[TestClient, dict[str, str]], shop: sqlite3.Connection) -> None:
    client, headers = api
    assert client.get("/api/v1/campaigns", headers=headers).status_code == 200
    signed_in(client, shop, "admin")
    marketer_id = shop.execute("SELECT id FROM staff WHERE email = 'marketer@example.com'").fetchone()[0]
    assert post_confirmed(client, f"/console/staff/{marketer_id}", {"action": "disable"}).status_code == 303
    assert client.get("/api/v1/campaigns", headers=headers).status_code == 401


def test_campaigns_read_and_write(api: tuple[TestClient, dict[str, str]], shop: sqlite3.Connection) -> None:
    client, headers = api
    openapi = client.get("/api/v1/openapi.json").json()
    listed = client.get("/api/v1/campaigns", headers=headers).json()["campaigns"]
    assert {c["slug"]: c["status"] for c in listed} == {"office365-xbox-gold-2013": "ended", "open-today": "live"}
    one = client.get("/api/v1/campaigns/open-today", headers=headers).json()
    schema_check(openapi, "Campaign", one)
    definition = dict(one["definition"], slug="api-made", name="Made by a script")
    created = client.put("/api/v1/campaigns/api-made", headers=headers, json=definition)
    assert created.status_code == 201 and created.json()["status"] == "draft"
    definition["limit_per_account"] = 2
    changed = client.put("/api/v1/campaigns/api-made", headers=headers, json=definition)
    assert changed.status_code == 200 and changed.json()["changes"] == {"limit_per_account": [1, 2]}
    actor = shop.execute("SELECT actor FROM audit_events WHERE tag = 'campaign:definition:changed'").fetchone()[0]
    assert re.fullmatch(r"staff:marketer@example\.com \(API token \d+\)", actor)

    toml = render_campaign_file(get_campaign(shop, "open-today").campaign).replace('slug = "open-today"', 'slug = "from-toml"')
    as_file = client.put("/api/v1/campaigns/from-toml", headers={**headers, "Content-Type": "application/toml"}, content=toml)
    assert as_file.status_code == 201 and render_campaign_file(get_campaign(shop, "from-toml").campaign) == toml

    published = client.post("/api/v1/campaigns/api-made/state", headers=headers, json={"action": "publish"})
    assert published.status_code == 200 and published.json()["status"] in ("live", "scheduled", "ended")
    again = client.post("/api/v1/campaigns/api-made/state", headers=headers, json={"action": "publish"})
    assert again.status_code == 400 and again.json()["errors"][0]["field"] == "action"


def test_errors_are_problem_details_with_field_and_rule(api: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = api
    definition = client.get("/api/v1/campaigns/open-today", headers=headers).json()["definition"]
    bad = client.put("/api/v1/campaigns/open-today", headers=headers,
                     json={**definition, "limit_per_account": 0, "countries": []})
    assert bad.status_code == 400 and bad.headers["content-type"] == "application/problem+json"
    errors = {e["field"]: e for e in bad.json()["errors"]}
    assert errors["limit_per_account"] == {"field": "limit_per_account", "message": "must be a whole number of at least 1",
                                           "rule": "R-X6"}
    assert errors["countries"]["rule"] == "R-X2"
    schema_check(client.get("/api/v1/openapi.json").json(), "Problem", bad.json())
    mismatch = client.put("/api/v1/campaigns/other", headers=headers, json=definition)
    assert mismatch.status_code == 400 and mismatch.json()["errors"][0]["field"] == "slug"
    not_json = client.put("/api/v1/campaigns/open-today", headers=headers, content=b"{oops")
    assert not_json.status_code == 400 and not_json.json()["errors"] == [{"field": "body", "message": "is not valid JSON"}]
    missing = client.get("/api/v1/campaigns/nope", headers=headers)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


def test_evaluate_stock_and_uploads(api: tuple[TestClient, dict[str, str]], shop: sqlite3.Connection) -> None:
    client, headers = api
    openapi = client.get("/api/v1/openapi.json").json()
    decision = client.post("/api/v1/campaigns/open-today/evaluate", headers=headers,
                           json={"sku": "O365-HOME-MONTHLY", "country": "US", "purchased_at": "2001-01-01",
                                 "activated_at": "2001-01-01"}).json()
    schema_check(openapi, "Decision", decision)
    assert decision["eligible"] is False and decision["failed_rules"] == ["R-X1", "R-X2", "R-X4"]
    bad = client.post("/api/v1/campaigns/open-today/evaluate", headers=headers, json={"sku": "X", "country": "DK"})
    assert bad.status_code == 400 and {e["field"] for e in bad.json()["errors"]} == {"sku", "purchased_at", "activated_at"}

    codes = "code\n" + "".join(f"{reward_code(n)}\n" for n in range(100, 110))
    uploaded = client.post("/api/v1/campaigns/open-today/codes?source=nightly.csv", headers={**headers, "Content-Type": "text/csv"},
                           content=codes)
    assert uploaded.status_code == 201 and uploaded.json()["imported"] == 10 and uploaded.json()["source"] == "nightly.csv"
    schema_check(openapi, "Job", uploaded.json())
    job = client.get(f"/api/v1/jobs/{uploaded.json()['id']}", headers=headers).json()
    assert job["status"] == "done" and job["progress"] == 1.0
    refused = client.post("/api/v1/campaigns/open-today/codes", headers=headers, content=codes + "short\n")
    assert refused.status_code == 422 and refused.headers["content-type"] == "application/problem+json"
    lines = {(e["line"], e["message"]) for e in refused.json()["errors"]}
    assert (12, "does not match the pool's pattern ^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$") in lines
    assert (2, "already in a code pool") in lines

    stock = client.get("/api/v1/campaigns/open-today/stock", headers=headers).json()
    schema_check(openapi, "Stock", stock)
    assert (stock["available"], stock["issued"]) == (15, 0)

    records = "product_key,sku,country,purchased_at,activated_at\n" + f"{product_key(77)},O365-HOME-ESD,DK,2026-11-01,2026-11-01\n"
    assert client.post("/api/v1/activations", headers=headers, content=records).json()["imported"] == 1
    assert client.post("/api/v1/activations", headers=headers, content=records).status_code == 422  # already there


def test_the_openapi_description_names_every_endpoint(client: TestClient) -> None:
    openapi = client.get("/api/v1/openapi.json").json()
    assert openapi["openapi"].startswith("3.1") and openapi["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    served = {(m.lower(), re.sub(r":\w+}", "}", r.path))  # {job_id:int64} is {job_id} in OpenAPI
              for r in client.app.routes if isinstance(r, Route) and r.path.startswith("/api/v1/")  # type: ignore[attr-defined]
              and r.path != "/api/v1/openapi.json" for m in (r.methods or set()) - {"HEAD"}}
    described = {(m, p) for p, ops in openapi["paths"].items() for m in ops if m != "parameters"}
    assert described == served
    refs = re.findall(r'"\$ref": "#/components/schemas/(\w+)"', json.dumps(openapi))
    assert set(refs) <= set(openapi["components"]["schemas"])


def test_an_upload_over_the_limit_is_refused_and_leaves_no_file(api: tuple[TestClient, dict[str, str]], tmp_path,  # type: ignore[no-untyped-def]
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import tempfile

    client, headers = api
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # this test's own temporary directory
    monkeypatch.setattr("promo.views.api.MAX_UPLOAD_BYTES", 100)
    too_big = client.post("/api/v1/campaigns/open-today/codes", headers=headers, content=b"code\n" + b"X" * 500)
    assert too_big.status_code == 413 and too_big.headers["content-type"] == "application/problem+json"
    assert list(tmp_path.glob("promo-upload-*")) == []


def test_evaluate_and_activation_uploads_carry_both_countries(api: tuple[TestClient, dict[str, str]],
                                                              shop: sqlite3.Connection) -> None:
    """R-X2 through the API: two countries in the evaluate body and in the activation CSV, as described."""
    from promo.activations import get_activation

    client, headers = api
    openapi = client.get("/api/v1/openapi.json").json()
    body = openapi["paths"]["/api/v1/campaigns/{slug}/evaluate"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert {"country", "purchase_country", "activation_country"} <= set(body["properties"])
    assert "country" not in body["required"]
    upload = openapi["paths"]["/api/v1/activations"]["post"]["requestBody"]["content"]["text/csv"]["schema"]["description"]
    assert "purchase_country,activation_country" in upload and "`country`" in upload

    day = "2026-11-01"
    answer = client.post("/api/v1/campaigns/open-today/evaluate", headers=headers, json={
        "sku": "O365-HOME-ESD", "purchase_country": "DK", "activation_country": "US", "purchased_at": day, "activated_at": day})
    assert answer.status_code == 200
    schema_check(openapi, "Decision", answer.json())
    assert [f["reason"] for f in answer.json()["failures"] if f["rule"] == "R-X2"] == ["activation_country_not_eligible"]
    missing = client.post("/api/v1/campaigns/open-today/evaluate", headers=headers,
                          json={"sku": "O365-HOME-ESD", "purchased_at": day, "activated_at": day})
    assert missing.status_code == 400 and {e["field"] for e in missing.json()["errors"]} == {"country"}

    records = ("product_key,sku,purchase_country,activation_country,purchased_at,activated_at\n"
               f"{product_key(78)},O365-HOME-ESD,DK,NO,{day},{day}\n")
    assert client.post("/api/v1/activations", headers=headers, content=records).status_code == 201
    record = get_activation(shop, product_key(78).replace("-", ""))
    assert record is not None and (record.purchase_country, record.activation_country) == ("DK", "NO")
    half = client.post("/api/v1/activations", headers=headers,
                       content="product_key,sku,purchase_country,purchased_at,activated_at\n")
    assert half.status_code == 422 and "missing column activation_country" in half.json()["errors"][0]["message"]
