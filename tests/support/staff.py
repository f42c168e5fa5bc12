"""Staff members with a known password, signed in through the real sign-in form, and their API tokens."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime

from starlette.testclient import TestClient

from promo.api_tokens import create_token
from promo.db import transaction
from promo.passwords import hash_password
from promo.staff import StaffMember, add_staff

PASSWORD = "correct horse battery"


def staff(conn: sqlite3.Connection, email: str, role: str) -> None:
    with transaction(conn):
        add_staff(conn, email=email, role=role, password_hash=hash_password(PASSWORD), now=datetime.now(UTC), actor="test")


def staff_sign_in(client: TestClient, email: str, password: str = PASSWORD):  # type: ignore[no-untyped-def]
    form = client.get("/staff/signin")
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf
    return client.post("/staff/signin", data={"csrf": csrf.group(1), "email": email, "password": password, "next": "/audit/"})


def token_for(conn: sqlite3.Connection, email: str, name: str) -> int:
    member = conn.execute("SELECT id, email, role FROM staff WHERE email = ?", (email,)).fetchone()
    with transaction(conn):
        return create_token(conn, StaffMember(*member), name, now=datetime.now(UTC), ip=None)[1]
