"""HTTP rules for every route, enumerated from the app's router: a method a path does not
answer is a 405 whose Allow lists exactly the methods it does answer, and nothing but static
files may be kept by a cache (exports, API answers, pages: Cache-Control: no-store)."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator

import pytest
from starlette.routing import BaseRoute, Mount, Route
from starlette.testclient import TestClient

from promo.app import STATIC_DIR, create_app
from promo.config import Settings
from tests.support.console import new_token, signed_in
from tests.support.database import SLUG
from tests.support.mailserver import MailServer
from tests.support.review_fixtures import ask_for_review

METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def concrete(path_format: str) -> str:
    """A real path for a route pattern: the shipped campaign for slugs, 1 for ids."""
    return re.sub(r"\{(\w+)\}", lambda m: SLUG if m.group(1) == "slug" else "1", path_format)


def route_paths(routes: list[BaseRoute], prefix: str = "") -> set[str]:
    paths: set[str] = set()
    for route in routes:
        if isinstance(route, Route):
            paths.add(prefix + concrete(route.path_format))
        elif isinstance(route, Mount):
            if route.routes:
                paths |= route_paths(route.routes, prefix + route.path)
            else:  # static files: a real file under the mount
                assert (STATIC_DIR / "promo.css").is_file()
                paths.add(f"{prefix}{route.path}/promo.css")
    return paths


@pytest.fixture
def walker(web_settings: Settings, shop: sqlite3.Connection) -> Iterator[TestClient]:
    """The app as `client`, but a 500 is an answer to inspect, not an exception."""
    with TestClient(create_app(web_settings), follow_redirects=False, raise_server_exceptions=False) as client:
        yield client


def test_every_route_answers_a_wrong_method_with_405_and_allow_naming_every_method_it_answers(walker: TestClient) -> None:
    paths = route_paths(walker.app.routes)  # type: ignore[attr-defined]
    assert len(paths) > 60 and "/static/promo.css" in paths
    for path in sorted(paths):
        answers = {method: walker.request(method, path) for method in METHODS}
        answered = {method for method, response in answers.items() if response.status_code != 405}
        refused = {method: response for method, response in answers.items() if response.status_code == 405}
        assert answered and refused, f"{path}: answered {sorted(answered)}"
        for method, response in refused.items():
            allow = {m.strip() for m in response.headers.get("allow", "").split(",") if m.strip()}
            assert allow == answered, f"{method} {path}: Allow {sorted(allow)}, but it answers {sorted(answered)}"


def test_a_page_split_in_a_get_route_and_a_post_route_allows_both(walker: TestClient) -> None:
    # Starlette's own 405 comes from the first route that matches the path: GET and HEAD only.
    response = walker.put("/staff/signin")
    assert response.status_code == 405 and response.headers["allow"] == "GET, HEAD, POST"
    assert walker.delete("/api/v1/campaigns/x").headers["allow"] == "GET, HEAD, PUT"


def test_exports_api_answers_and_pages_are_never_stored_by_a_cache(walker: TestClient, shop: sqlite3.Connection,
                                                                    smtp: MailServer) -> None:
    ask_for_review(walker, smtp)  # claim 1, with a receipt to download
    signed_in(walker, shop, "admin")
    token = new_token(walker)
    paths = route_paths(walker.app.routes)  # type: ignore[attr-defined]
    downloads, api_answers = set(), 0
    for path in sorted(paths):
        for method in METHODS:
            for headers in ({}, {"Authorization": f"Bearer {token}"}) if path.startswith("/api/") else ({},):
                response = walker.request(method, path, headers=headers)
                if path.startswith("/static/"):
                    continue
                assert response.headers.get("cache-control") == "no-store", f"{method} {path} -> {response.status_code}"
                if "content-disposition" in response.headers and response.status_code == 200:
                    downloads.add(path)
                api_answers += path.startswith("/api/") and response.status_code < 400
    # The walk really reached every download and answered API calls (as admin, with a token).
    assert downloads >= {"/audit/export.csv", "/audit/export.json", f"/console/campaigns/{SLUG}/export.toml",
                         "/review/1/receipt"}, downloads
    assert api_answers >= 5
    assert "cache-control" not in walker.get("/static/promo.css").headers  # static files may be cached
