"""Admins manage staff in the console: add, change role, disable and enable, audited with
before and after; nobody changes their own account, and the last admin stays."""

from __future__ import annotations

import sqlite3

from starlette.testclient import TestClient

from tests.support.console import audit_changes, post_confirmed, post_form, signed_in
from tests.support.staff import PASSWORD, staff_sign_in


def member_id(conn: sqlite3.Connection, email: str) -> int:
    return int(conn.execute("SELECT id FROM staff WHERE email = ?", (email,)).fetchone()[0])


def test_admins_add_change_and_disable_staff(client: TestClient, shop: sqlite3.Connection) -> None:
    signed_in(client, shop, "admin")
    added = post_form(client, "/console/staff", {"email": "New.Marketer@example.com", "role": "marketer", "password": PASSWORD},
                      token=None)
    assert added.status_code == 303
    assert "new.marketer@example.com" in client.get("/console/staff").text
    weak = post_form(client, "/console/staff", {"email": "x@example.com", "role": "marketer", "password": "short"})
    assert weak.status_code == 422 and "password: must have at least 12 characters" in weak.text
    twice = post_form(client, "/console/staff", {"email": "new.marketer@example.com", "role": "auditor", "password": PASSWORD})
    assert twice.status_code == 422 and "already has a staff account" in twice.text
    bad_role = post_form(client, "/console/staff", {"email": "y@example.com", "role": "owner", "password": PASSWORD})
    assert bad_role.status_code == 422 and "role: must be one of admin, marketer, auditor, support" in bad_role.text

    new_id = member_id(shop, "new.marketer@example.com")
    assert post_form(client, f"/console/staff/{new_id}", {"action": "role", "role": "auditor"}).status_code == 303
    assert audit_changes(shop, "staff:account:changed")[-1] == {"changes": {"role": ["marketer", "auditor"]}}

    other = TestClient(client.app, follow_redirects=False)
    assert staff_sign_in(other, "new.marketer@example.com").status_code == 303
    assert other.get("/console/").status_code == 200
    assert post_confirmed(client, f"/console/staff/{new_id}", {"action": "disable"}).status_code == 303
    assert other.get("/console/").status_code == 303  # the session ended with the account
    assert staff_sign_in(other, "new.marketer@example.com").status_code == 401
    assert audit_changes(shop, "staff:account:changed")[-1] == {"changes": {"disabled": [False, True]}}
    assert post_form(client, f"/console/staff/{new_id}", {"action": "enable"}).status_code == 303
    assert staff_sign_in(other, "new.marketer@example.com").status_code == 303
    created = shop.execute("SELECT actor FROM audit_events WHERE tag = 'staff:account:created' ORDER BY seq DESC").fetchone()[0]
    assert created == "staff:admin@example.com"


def test_nobody_changes_their_own_account_and_the_last_admin_stays(client: TestClient, shop: sqlite3.Connection) -> None:
    signed_in(client, shop, "admin")
    me = member_id(shop, "admin@example.com")
    own = post_form(client, f"/console/staff/{me}", {"action": "role", "role": "support"})
    assert own.status_code == 422 and "you cannot change your own role or disable yourself" in own.text
    # Through the console an admin always changes another admin, so one stays; the function
    # itself also refuses to demote or disable the last active admin, whoever asks.
    import pytest

    from promo.db import transaction
    from promo.errors import InputError
    from promo.staff import StaffMember, update_staff
    from promo.timeutil import utcnow
    with pytest.raises(InputError, match="this is the last active admin"), transaction(shop):
        update_staff(shop, me, role="marketer", disabled=None, actor=StaffMember(0, "script@example.com", "admin"),
                     now=utcnow(), ip=None)
    assert shop.execute("SELECT role FROM staff WHERE id = ?", (me,)).fetchone()[0] == "admin"
    unknown = post_form(client, "/console/staff/99999", {"action": "disable"})
    assert unknown.status_code == 404
