"""A NUL character (\\0) in any field is refused at the edge with a 400 naming the field, on both
stores: SQLite would keep it and PostgreSQL's text cannot, so without this a value could be
stored on one store, refused by the other, and stop `promo db copy` later. The class: every
POST route of the app, enumerated from its router, as each staff role and as a consumer; the
JSON API's documents at any depth; and no NUL in any text the store holds afterwards."""

from __future__ import annotations

import re
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.routing import Route
from starlette.testclient import TestClient

from promo.errors import NUL_MESSAGE, InputError, refuse_nul
from promo.views.context import urlencoded_fields
from tests.support.console import csrf, new_token, signed_in
from tests.support.mailserver import MailServer
from tests.support.web import follow_link, hidden, refused_for_nul, sign_in

FIELDS = ("name", "email", "product_key", "country", "slug", "reason", "code", "role", "next")


def post_routes(client: TestClient) -> list[str]:
    """Every POST route's path, its parameters filled with a plausible value."""
    paths = []
    for route in client.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Route) and "POST" in (route.methods or ()):
            paths.append(re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: "open-today" if m.group(1) == "slug" else "1", route.path))
    assert len(paths) > 30, paths  # the enumeration found the app's forms
    return paths


def nul_in_text_columns(conn: sqlite3.Connection) -> list[str]:
    """Every (table.column) holding a NUL in some row. PostgreSQL's text cannot hold one."""
    if not isinstance(conn, sqlite3.Connection):
        return []
    found = []
    for (table,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"):
        for column in conn.execute(f"PRAGMA table_info({table})"):  # noqa: S608 - names from the schema
            if column["type"].upper() == "TEXT" and conn.execute(
                    f'SELECT 1 FROM "{table}" WHERE instr("{column["name"]}", char(0)) > 0 LIMIT 1').fetchone():  # noqa: S608
                found.append(f"{table}.{column['name']}")
    return found


def walk(client: TestClient, token: str) -> list[str]:
    """POST every route with one field holding a NUL; what was not refused as it should be."""
    wrong = []
    for path in post_routes(client):
        for field in FIELDS:
            data = {**dict.fromkeys(FIELDS, "ok"), field: "a\x00b", "csrf": token}
            response = client.post(path, data=data, follow_redirects=False)
            # Reached: a 400 naming the field. Not reached (another role's area, no such id, not
            # signed in there): refused, or sent to sign in.
            if response.status_code == 303 and response.headers["location"].startswith(("/signin?", "/staff/signin?")):
                continue
            if response.status_code == 400:
                if not refused_for_nul(response, {field: data[field]}):
                    wrong.append(f"{path} {field}: 400 without the field named: {response.text[:200]!r}")
            elif response.status_code < 400 or response.status_code >= 500:
                wrong.append(f"{path} {field}: {response.status_code} {response.headers.get('location')}")
    return wrong


@pytest.mark.parametrize("role", ["admin", "marketer", "auditor", "support"])
def test_every_staff_form_refuses_a_nul_naming_its_field(client: TestClient, shop: sqlite3.Connection, role: str) -> None:
    signed_in(client, shop, role)
    token = csrf(client, "/review/" if role == "support" else "/console/tokens")
    assert walk(client, token) == []
    assert client.get("/healthz").status_code == 200
    assert nul_in_text_columns(shop) == []


def test_every_consumer_form_refuses_a_nul_naming_its_field(client: TestClient, shop: sqlite3.Connection,
                                                            smtp: MailServer) -> None:
    follow_link(client, sign_in(client, smtp))
    token = hidden(client.get("/offers/open-today/redeem").text, "csrf")
    assert walk(client, token) == []
    attempts = shop.execute("SELECT COUNT(*) FROM redemption_attempts").fetchone()[0]
    assert attempts == 0  # refused at the edge: nothing decided, nothing logged
    assert nul_in_text_columns(shop) == []


def test_the_api_refuses_a_nul_at_any_depth_and_json_nested_too_deeply(client: TestClient,
                                                                      shop: sqlite3.Connection) -> None:
    signed_in(client, shop, "marketer")
    headers = {"Authorization": f"Bearer {new_token(client)}"}
    client.cookies.clear()
    definition = client.get("/api/v1/campaigns/open-today", headers=headers).json()["definition"]
    for document, field in ((dict(definition, slug="nul-made", name="a\x00b"), "name"),
                            (dict(definition, slug="nul-made", countries=["DK", "N\x00"]), "countries.1"),
                            (dict(definition, slug="nul-made", **{"x\x00": 1}), "x\\0")):
        refused = client.put("/api/v1/campaigns/nul-made", headers=headers, json=document)
        assert refused.status_code == 400, refused.text
        assert refused.json()["errors"] == [{"field": field, "message": NUL_MESSAGE}]
    assert client.get("/api/v1/campaigns/nul-made", headers=headers).status_code == 404  # nothing saved
    deep = client.put("/api/v1/campaigns/nul-made", headers=headers, content=b"[" * 100_000)
    assert deep.status_code == 400 and deep.json()["errors"] == [{"field": "body", "message": "is nested too deeply"}]
    assert nul_in_text_columns(shop) == []


@given(fields=st.lists(st.tuples(st.text(min_size=1, max_size=8), st.text(max_size=8)), max_size=6))
def test_a_parsed_form_is_refused_exactly_when_a_name_or_value_holds_a_nul(fields: list[tuple[str, str]]) -> None:
    body = "&".join(f"{quote_all(name)}={quote_all(value)}" for name, value in fields)
    parsed = urlencoded_fields(body)
    holding = list(dict.fromkeys(name.replace("\x00", "\\0") for name, value in parsed if "\x00" in name + value))
    try:
        refuse_nul(parsed)
    except InputError as exc:
        assert [e.field for e in exc.errors] == holding and holding
        assert all(e.message == NUL_MESSAGE for e in exc.errors)
    else:
        assert holding == []


def quote_all(text: str) -> str:
    return "".join(f"%{b:02X}" for b in text.encode())
