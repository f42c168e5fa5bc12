"""HTTP rules that hold for every route: what a 405's Allow lists, and who may cache what."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from starlette.routing import BaseRoute, Match, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope


def allowed_methods(routes: Iterable[BaseRoute], scope: Scope) -> set[str]:
    """Every method some route answers at this request's path. A page often has two Routes
    (GET shows the form, POST sends it), so Starlette's 405 from one of them lists only
    its own methods; Allow must name them all."""
    allowed: set[str] = set()
    for route in routes:
        match, child = route.matches(scope)
        if match is Match.NONE:
            continue
        if isinstance(route, Route):
            allowed |= route.methods or set()
        elif isinstance(route, Mount):
            if route.routes:
                allowed |= allowed_methods(route.routes, {**scope, **child})
            elif isinstance(route.app, StaticFiles):
                allowed |= {"GET", "HEAD"}
    return allowed


def allow_header(routes: Iterable[BaseRoute], scope: Scope, fallback: Any = None) -> str:
    methods = allowed_methods(routes, scope)
    return ", ".join(sorted(methods)) if methods else str(fallback or "")


STATIC_PREFIX = "/static/"


def no_store_unless_set(path: str, headers: list[tuple[bytes, bytes]]) -> None:
    """`Cache-Control: no-store` on every answer that does not set its own, static files aside.
    Pages, exports (decision log CSV/JSON, campaign files, receipts) and API answers hold
    personal data, codes and tokens: no browser or proxy may keep them. (Called by the one
    request middleware, promo.app.RequestContext, as it adds the headers every answer carries.)"""
    if not path.startswith(STATIC_PREFIX) and not any(name.lower() == b"cache-control" for name, _ in headers):
        headers.append((b"cache-control", b"no-store"))
