"""Who may open what, read from the routes themselves.

Every staff view is wrapped by `require_role(*roles)` (staffauth.py), which records the
roles on the view it wraps. That record is the one policy: the routes enforce it, and the
staff menu and in-page links ask it here (`may_open`) instead of keeping their own lists,
so a menu cannot offer a page that answers 403 (issue 19, item 4)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from starlette.routing import Match, Router

from promo.i18n import N_

# The staff menu, in order: (path, label). Each entry is shown only to roles its route admits.
# Labels are English msgids, translated where the menu is shown (templates/staff/base.html).
MENU = (
    ("/console/", N_("Campaigns")),
    ("/console/dashboard", N_("Dashboard")),
    ("/console/activations", N_("Activations")),
    ("/console/nonprofit/", N_("Nonprofits")),
    ("/audit/", N_("Decision log")),
    ("/audit/actions", N_("Staff actions")),
    ("/audit/reconciliation", N_("Reconciliation")),
    ("/audit/redemptions", N_("Find a redemption")),
    ("/review/", N_("Review queue")),
    ("/console/tokens", N_("API tokens")),
    ("/console/staff", N_("Staff")),
)
# Paths under these prefixes are staff pages: their 404 and 403 come in the staff layout.
STAFF_PREFIXES = ("/console", "/audit", "/review", "/staff")
# Where each role starts after signing in, in order of preference; else its first menu entry.
PREFERRED_HOME = {"auditor": "/audit/", "support": "/review/"}
CACHE_SIZE = 4096  # distinct paths (rows' links); cleared when full
PUBLIC = object()  # a route with no role check (the consumer side, static files)


def route_roles(router: Router, method: str, path: str) -> frozenset[str] | object | None:
    """The roles the route answering `method path` admits; PUBLIC for a route without a role
    check; None when no route answers (a 404 or a 405)."""
    key = (method.upper(), urlsplit(path).path)
    # a page asks dozens of times
    cache: dict[tuple[str, str], frozenset[str] | object | None] = router.__dict__.setdefault("_promo_route_roles", {})
    if key not in cache:
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        cache[key] = _route_roles(router, *key)
    return cache[key]


def _route_roles(router: Router, method: str, path: str) -> frozenset[str] | object | None:
    scope: dict[str, Any] = {"type": "http", "method": method, "path": path, "root_path": ""}
    for route in router.routes:
        match, child = route.matches(scope)
        if match == Match.FULL:
            roles = getattr(child.get("endpoint"), "allowed_roles", None)
            return roles if roles is not None else PUBLIC
    return None


def may_open(router: Router, role: str | None, path: str, method: str = "GET") -> bool:
    """Whether a staff member with `role` gets past the route's role check at `path`."""
    roles = route_roles(router, method, path)
    if roles is PUBLIC:
        return True
    return role is not None and isinstance(roles, frozenset) and role in roles


def menu_for(router: Router, role: str) -> list[tuple[str, str]]:
    return [(path, label) for path, label in MENU if may_open(router, role, path)]


def home_for(router: Router, role: str) -> str:
    preferred = PREFERRED_HOME.get(role)
    if preferred and may_open(router, role, preferred):
        return preferred
    entries = menu_for(router, role)
    return entries[0][0] if entries else "/staff/signin"


def _template(router: Router, method: str, path: str) -> str | None:
    """The path template of the route answering `method path` ('/console/campaigns/{slug}')."""
    scope: dict[str, Any] = {"type": "http", "method": method, "path": path, "root_path": ""}
    for route in router.routes:
        if route.matches(scope)[0] == Match.FULL:
            return getattr(route, "path", None)
    return None


def retry_page(router: Router, role: str | None, path: str, method: str = "POST") -> str:
    """The page a form at `path` was most likely sent from: the nearest address above it that
    the role may open with GET (/console/campaigns/x/batches/3/void -> /console/campaigns/x);
    without a role (not signed in), the nearest that exists. The way back after an expired
    form, or after signing in again. A page counts only if its route has the same shape as
    that part of the form's (so /console/campaigns/import is not taken for a campaign)."""
    parts = urlsplit(path).path.rstrip("/").split("/")
    template = (_template(router, method, path) or "").rstrip("/").split("/")
    if len(template) != len(parts):
        template = parts
    while len(parts) > 1:
        candidate, shape = "/".join(parts), "/".join(template[: len(parts)])
        for option, expected in ((candidate, shape), (candidate + "/", shape + "/")):
            if (route_roles(router, "GET", option) is not None and _template(router, "GET", option) == expected
                    and (role is None or may_open(router, role, option))):
                return option
        parts.pop()
    return home_for(router, role) if role else "/staff/signin"
