"""Destructive staff actions ask first (issue 19, item 3): voiding a batch's codes, publishing
or pausing a campaign, disabling a staff account, revoking an API token.

The routes are found from the app (the views carry views/confirm.py's mark), and each must
have a scenario here. For each: a post without the confirmation changes nothing in the
database and shows the consequence with its real figures; a forged confirmation, one from
another session, or one whose figures have changed since changes nothing either; the
confirmation shown carries it out, audited. The buttons look dangerous, and none of this
needs JavaScript (plain forms)."""

from __future__ import annotations

import re
import sqlite3
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import tomli_w
from starlette.routing import Route
from starlette.testclient import TestClient

from promo.campaign_store import get_campaign, save_campaign
from promo.campaigns import parse_campaign_file
from promo.catalog import load_catalog
from promo.db import transaction
from tests.support.console import confirmation_fields, csrf, signed_in
from tests.support.database import open_campaign_text
from tests.support.open_today import redeem_one
from tests.support.redemption import add_codes
from tests.support.staff import staff, staff_sign_in, token_for

ADMIN = "admin@example.com"
TARGET = "leaving@example.com"


@dataclass(frozen=True)
class Scenario:
    path: str  # the form's action
    values: dict[str, str]
    page: str  # where its button is
    figures: str  # the consequence as the confirmation page states it
    tag: str  # the audit event the action writes
    done: Callable[[sqlite3.Connection], bool]
    stale: Callable[[sqlite3.Connection], None]  # changes the figures behind the confirmation's back


def _one(conn: sqlite3.Connection, sql: str) -> object:
    return conn.execute(sql).fetchone()[0]


def _rename(conn: sqlite3.Connection, slug: str, name: str) -> None:
    data = tomllib.loads(open_campaign_text(slug))
    data["name"] = name
    with transaction(conn):
        save_campaign(conn, parse_campaign_file(tomli_w.dumps(data), load_catalog(conn)), actor="test", now=datetime.now(UTC))


def _rename_token(conn: sqlite3.Connection, token_id: int) -> None:
    with transaction(conn):  # tokens have no rename: its name is what the confirmation showed
        conn.execute("UPDATE api_tokens SET name = 'renamed' WHERE id = ?", (token_id,))


@pytest.fixture
def world(client: TestClient, shop: sqlite3.Connection) -> dict[str, Scenario]:
    """An admin signed in on `client`; a draft offer with 3 codes; a marketer with an open
    session and a token; the admin's own token; one scenario per destructive action."""
    with transaction(shop):
        save_campaign(shop, parse_campaign_file(open_campaign_text("draft-offer"), load_catalog(shop)), actor="test",
                      now=datetime.now(UTC), publish=False)
    add_codes(shop, get_campaign(shop, "draft-offer"), 3, start=100)
    staff(shop, TARGET, "marketer")
    assert staff_sign_in(TestClient(client.app, follow_redirects=False), TARGET).status_code == 303  # an open session
    token_for(shop, TARGET, "their script")
    signed_in(client, shop, "admin", ADMIN)
    own_token = token_for(shop, ADMIN, "nightly upload")
    batch = _one(shop, "SELECT MIN(id) FROM code_batches")
    target = _one(shop, f"SELECT id FROM staff WHERE email = '{TARGET}'")
    return {
        "void": Scenario(
            f"/console/campaigns/open-today/batches/{batch}/void", {}, "/console/campaigns/open-today",
            f"Void 5 unissued codes of batch {batch} (t.csv) of campaign", "codes:batch:voided",
            lambda c: _one(c, f"SELECT COUNT(*) FROM reward_codes WHERE batch_id = {batch} AND voided_at IS NOT NULL") == 4,
            redeem_one),
        "publish": Scenario(
            "/console/campaigns/draft-offer/state", {"action": "publish"}, "/console/campaigns/draft-offer",
            "Publish campaign Free 12-month Xbox Live Gold membership with Office 365 (draft-offer) with 3 codes available",
            "campaign:state:publish",
            lambda c: _one(c, "SELECT published_at FROM campaigns WHERE slug = 'draft-offer'") is not None,
            lambda c: add_codes(c, get_campaign(c, "draft-offer"), 1, start=200)),
        "pause": Scenario(
            "/console/campaigns/open-today/state", {"action": "pause"}, "/console/campaigns/open-today",
            "(open-today), now live: from this moment customers are refused", "campaign:state:pause",
            lambda c: _one(c, "SELECT paused_at FROM campaigns WHERE slug = 'open-today'") is not None,
            lambda c: _rename(c, "open-today", "Renamed while you looked")),
        "disable": Scenario(
            f"/console/staff/{target}", {"action": "disable"}, "/console/staff",
            f"Disable the staff account {TARGET} (marketer): 1 open session ends at once, and 1 API token stops working",
            "staff:account:changed",
            lambda c: _one(c, f"SELECT disabled_at FROM staff WHERE id = {target}") is not None,
            lambda c: token_for(c, TARGET, "another script")),
        "revoke": Scenario(
            f"/console/tokens/{own_token}/revoke", {}, "/console/tokens",
            "Revoke the API token \u201cnightly upload\u201d (never used)", "staff:token:revoked",
            lambda c: _one(c, f"SELECT revoked_at FROM api_tokens WHERE id = {own_token}") is not None,
            lambda c: _rename_token(c, own_token)),
    }


def fingerprint(conn: sqlite3.Connection) -> tuple[object, ...]:
    """Everything a destructive action could change, and the audit log."""
    return tuple(tuple(tuple(row) for row in conn.execute(sql)) for sql in (  # every row, in a fixed order
        "SELECT COUNT(*) FROM audit_events",
        "SELECT slug, published_at, paused_at, updated_at FROM campaigns ORDER BY slug",
        "SELECT COUNT(*) FROM reward_codes WHERE voided_at IS NOT NULL",
        "SELECT email, disabled_at FROM staff ORDER BY email",
        "SELECT COUNT(*) FROM staff_sessions WHERE ended_at IS NOT NULL",
        "SELECT COUNT(*) FROM api_tokens WHERE revoked_at IS NOT NULL"))


def destructive_routes(client: TestClient) -> set[str]:
    return {re.sub(r":\w+}", "}", r.path)  # {batch_id:int64} -> {batch_id}
            for r in client.app.routes  # type: ignore[attr-defined]
            if isinstance(r, Route) and getattr(r.endpoint, "confirmation", None) is not None}


def test_every_destructive_route_has_a_scenario(client: TestClient, world: dict[str, Scenario]) -> None:
    routes = destructive_routes(client)
    assert routes == {"/console/campaigns/{slug}/batches/{batch_id}/void", "/console/campaigns/{slug}/state",
                      "/console/staff/{staff_id}", "/console/tokens/{token_id}/revoke"}
    covered = {route for route in routes for s in world.values()
               if re.fullmatch(re.sub(r"\{\w+\}", "[^/]+", route), s.path)}
    assert covered == routes


def button_classes(html: str, action: str) -> list[str]:
    forms = re.findall(rf'<form method="post" action="{re.escape(action)}"[^>]*>(.*?)</form>', html, re.S)
    return [cls for form in forms for cls in re.findall(r'<button type="submit"[^>]*class="([^"]*)"', form)]


@pytest.mark.parametrize("name", ["void", "publish", "pause", "disable", "revoke"])
def test_a_destructive_action_asks_first_and_only_a_matching_confirmation_does_it(
        client: TestClient, shop: sqlite3.Connection, world: dict[str, Scenario], name: str) -> None:
    scenario = world[name]
    page = client.get(scenario.page)
    assert any("danger" in cls.split() for cls in button_classes(page.text, scenario.path)), "not styled as dangerous"
    token = csrf(client, scenario.page)
    before = fingerprint(shop)

    asked = client.post(scenario.path, data={"csrf": token, **scenario.values})
    assert asked.status_code == 200 and scenario.figures in asked.text, asked.text
    assert fingerprint(shop) == before  # nothing happened
    assert "danger confirm" in asked.text and 'href="' + scenario.page + '"' in asked.text  # Cancel goes back
    fields = confirmation_fields(asked.text)
    assert fields["csrf"] == token and {k: fields[k] for k in scenario.values} == scenario.values

    for forged in ("", "x", fields["confirm"][:-2] + "AA", fields["confirm"] + "x"):
        again = client.post(scenario.path, data={**fields, "confirm": forged})
        assert again.status_code in (200, 409) and 'name="confirm"' in again.text, forged
        assert fingerprint(shop) == before

    stranger = TestClient(client.app, follow_redirects=False)  # another admin's session cannot use this confirmation
    staff(shop, "other-admin@example.com", "admin")
    assert staff_sign_in(stranger, "other-admin@example.com").status_code == 303
    their_token = csrf(stranger, scenario.page)
    before = fingerprint(shop)  # (their sign-in was audited)
    theirs = stranger.post(scenario.path, data={**fields, "csrf": their_token})
    assert theirs.status_code == 409 and 'id="stale"' in theirs.text
    assert fingerprint(shop) == before

    scenario.stale(shop)  # the figures change while the confirmation page is open
    before = fingerprint(shop)
    stale = client.post(scenario.path, data=fields)
    assert stale.status_code == 409 and 'id="stale"' in stale.text and "The figures have changed" in stale.text
    assert fingerprint(shop) == before and not scenario.done(shop)

    done = client.post(scenario.path, data=confirmation_fields(stale.text))  # confirmed with the new figures
    assert done.status_code == 303, done.text
    assert scenario.done(shop)
    event = shop.execute("SELECT actor FROM audit_events WHERE tag = ? ORDER BY seq DESC LIMIT 1", (scenario.tag,)).fetchone()
    assert event is not None and event[0] == f"staff:{ADMIN}"


def test_harmless_changes_go_straight_through(client: TestClient, shop: sqlite3.Connection,
                                              world: dict[str, Scenario]) -> None:
    """Resuming, enabling and role changes are not asked about, and their buttons look plain."""
    from tests.support.console import post_confirmed, post_form
    assert post_confirmed(client, "/console/campaigns/open-today/state", {"action": "pause"}).status_code == 303
    page = client.get("/console/campaigns/open-today").text
    assert button_classes(page, "/console/campaigns/open-today/state") == []  # Resume: the default look
    assert post_form(client, "/console/campaigns/open-today/state", {"action": "resume"}).status_code == 303
    target = world["disable"].path
    assert post_form(client, target, {"action": "role", "role": "auditor"}).status_code == 303
    assert post_confirmed(client, target, {"action": "disable"}).status_code == 303
    assert "secondary" in button_classes(client.get("/console/staff").text, target)
    assert post_form(client, target, {"action": "enable"}).status_code == 303
    assert _one(shop, f"SELECT disabled_at IS NULL FROM staff WHERE email = '{TARGET}'") == 1


def test_a_refused_action_is_refused_before_any_confirmation(client: TestClient, world: dict[str, Scenario]) -> None:
    """Publishing a live campaign, voiding another campaign's batch: the reason, not a question."""
    from tests.support.console import post_form
    assert post_form(client, "/console/campaigns/open-today/state", {"action": "publish"}).status_code == 400
    assert post_form(client, "/console/campaigns/open-today/batches/999/void", {}).status_code == 400
    assert post_form(client, "/console/campaigns/open-today/batches/99999999999999999999/void", {}).status_code == 404
