"""Console test helpers: staff signed in through the real sign-in form, the campaign form
as a marketer fills it in, and waiting for a background upload to finish."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from html.parser import HTMLParser
from typing import Any

from starlette.testclient import TestClient

from tests.support.staff import staff, staff_sign_in
from tests.support.web import hidden

SUMMER = {
    "slug": "summer-2026", "name": "Summer offer", "names.da": "Sommertilbud", "timezone": "Europe/Copenhagen",
    "eligibility_window.first_day": "2026-06-01", "eligibility_window.last_day": "2026-08-31",
    "redemption_window.first_day": "2026-06-01", "redemption_window.last_day": "2026-09-30",
    "countries": ["DK", "NO"], "products.qualifying_skus": ["O365-HOME-ESD", "O365-UNI-ESD"],
    "products.excluded": "term=monthly", "limit_per_account": "1",
    "reward.name": "Xbox Live Gold 12 months", "reward.terms_url": "https://example.com/terms",
    "reward.code_expires_on": "2027-01-31",
}


def signed_in(client: TestClient, conn: sqlite3.Connection, role: str, email: str | None = None) -> str:
    """Create a staff member with `role` and sign them in on `client`; returns the address."""
    address = email or f"{role}@example.com"
    staff(conn, address, role)
    client.cookies.clear()
    assert staff_sign_in(client, address).status_code == 303
    return address


def csrf(client: TestClient, path: str = "/console/tokens") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    return hidden(page.text, "csrf")


def post_form(client: TestClient, path: str, values: dict[str, Any], token: str | None = None):  # type: ignore[no-untyped-def]
    return client.post(path, data={"csrf": token or csrf(client), **values})


def confirmation_fields(html: str) -> dict[str, str]:
    """The hidden fields of a confirmation page's form (views/confirm.py), which post the
    action again with its confirm token."""
    form = re.search(r'<form method="post"[^>]*>(.*?)</form>', html.split('id="consequence"', 1)[1], re.S)
    assert form, "no confirmation form"
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', form.group(1)))


def post_confirmed(client: TestClient, path: str, values: dict[str, Any]):  # type: ignore[no-untyped-def]
    """A destructive form as a person sends it: posted, the confirmation page read, confirmed."""
    asked = post_form(client, path, values)
    assert asked.status_code == 200 and 'name="confirm"' in asked.text, (asked.status_code, asked.text[:2000])
    return client.post(path, data=confirmation_fields(asked.text))


class _FormReader(HTMLParser):
    """What a browser would send for a form as shown: inputs, checked boxes, selected
    options and textareas (lists for names that repeat: checkboxes)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.values: dict[str, Any] = {}
        self._area: str | None = None

    def _add(self, name: str, value: str) -> None:
        if name in self.values:
            old = self.values[name]
            self.values[name] = [*old, value] if isinstance(old, list) else [old, value]
        else:
            self.values[name] = value

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "input" and a.get("name") and a.get("type") not in ("submit", "file"):
            if a.get("type") != "checkbox" or "checked" in a:
                self._add(a["name"], a.get("value", ""))
        elif tag == "textarea" and a.get("name"):
            self._area = a["name"]
            self.values[self._area] = ""

    def handle_data(self, data: str) -> None:
        if self._area:
            self.values[self._area] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._area = None


def form_values(html: str) -> dict[str, Any]:
    reader = _FormReader()
    reader.feed(html)
    return reader.values


def field_error(html: str, field: str) -> str:
    """The message shown next to a form field (the element the field's aria-describedby names)."""
    match = re.search(rf'id="{re.escape(field.replace(".", "-"))}-error">([^<]*)<', html)
    assert match, f"no error shown at {field}"
    return match.group(1)


def wait_for_job(client: TestClient, job_path: str, timeout: float = 60) -> str:
    deadline = time.time() + timeout
    while True:
        page = client.get(job_path)
        assert page.status_code == 200
        if "Done:" in page.text or "Nothing was imported" in page.text:
            return page.text
        assert time.time() < deadline, "upload still running"
        time.sleep(0.05)


def audit_changes(conn: sqlite3.Connection, tag: str) -> list[dict[str, Any]]:
    return [json.loads(row[0]) for row in conn.execute("SELECT data FROM audit_events WHERE tag = ? ORDER BY seq", (tag,))]


def new_token(client: TestClient, name: str = "nightly upload") -> str:
    response = post_form(client, "/console/tokens", {"name": name}, csrf(client))
    assert response.status_code == 201 and "it is not shown again" in response.text
    found = re.search(r'<p class="token" id="new-token">(promo_[\w-]+)</p>', response.text)
    assert found
    return found.group(1)


def values_of(campaign: object) -> dict[str, object]:
    from promo.campaign_form import form_from_definition
    from promo.i18n import languages
    return {k: v for k, v in form_from_definition(campaign.to_dict(), languages()).items() if v != ""}  # type: ignore[attr-defined]
