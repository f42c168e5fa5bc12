"""Security properties of the web side, checked through HTTP."""

from __future__ import annotations

import re
import sqlite3

from starlette.routing import Route
from starlette.testclient import TestClient

from tests.support.database import product_key
from tests.support.mailserver import MailServer
from tests.support.web import ANN, follow_link, hidden, redeem_form, sign_in, submit, wait_for_mail


def post_routes(client: TestClient) -> list[str]:
    return sorted({re.sub(r":\w+}", "}", r.path)  # {code_id:int64} -> {code_id}
                   for r in client.app.routes if isinstance(r, Route) and "POST" in (r.methods or set())})  # type: ignore[attr-defined]


def test_every_form_rejects_a_missing_or_wrong_csrf_token(client: TestClient, smtp: MailServer,
                                                           shop: sqlite3.Connection) -> None:
    follow_link(client, sign_in(client, smtp))
    location = submit(client, redeem_form(client), product_key(1)).headers["location"]
    redemption_id = location.rsplit("/", 1)[1]
    # Staff forms: tested below and in test_console_roles.py; the API takes no cookies (test_api.py).
    routes = [r for r in post_routes(client) if not r.startswith(("/staff/", "/review/", "/console/", "/api/"))]
    assert routes == ["/nonprofit/codes/{code_id}/refresh", "/nonprofit/organisations/{org_id}/codes", "/nonprofit/register",
                      "/nonprofit/request", "/nonprofit/requests/{request_id}/return",
                      "/offers/{slug}/redeem", "/offers/{slug}/review", "/rewards/{redemption_id}/resend", "/signin", "/signout"]
    before = shop.execute("SELECT (SELECT COUNT(*) FROM redemptions), (SELECT COUNT(*) FROM outbox)").fetchone()
    for path in routes:
        url = path.format(slug="open-today", redemption_id=redemption_id, code_id=1, org_id=1, request_id=1)
        for token in (None, "forged"):
            data = {"email": ANN, "product_key": product_key(3), "country": "NO", "accept_terms": "yes"}
            if token:
                data["csrf"] = token
            assert client.post(url, data=data).status_code == 403, (url, token)
    after = shop.execute("SELECT (SELECT COUNT(*) FROM redemptions), (SELECT COUNT(*) FROM outbox)").fetchone()
    assert tuple(before) == tuple(after)  # nothing happened
    assert client.get("/rewards").status_code == 200  # and the forged sign-out did not end the session


def test_a_session_id_chosen_by_an_attacker_is_never_used(client: TestClient, smtp: MailServer) -> None:
    client.cookies.set("promo_session", "attacker-chosen-value")
    assert client.get("/rewards").headers["location"].startswith("/signin")  # not a session
    response = client.get(sign_in(client, smtp))
    issued = re.search(r"promo_session=([^;]+)", response.headers["set-cookie"])
    assert issued and issued.group(1) != "attacker-chosen-value"  # a fresh id from the server, never the planted one
    stranger = TestClient(client.app, follow_redirects=False)
    stranger.cookies.set("promo_session", "attacker-chosen-value")
    assert stranger.get("/rewards").status_code == 303


def test_sign_in_requests_are_limited_per_address_without_saying_so(client: TestClient, smtp: MailServer) -> None:
    from promo.auth import SIGNIN_REQUESTS_PER_WINDOW
    pages = set()
    for _ in range(SIGNIN_REQUESTS_PER_WINDOW + 3):
        form = client.get("/signin")
        sent = client.post("/signin", data={"csrf": hidden(form.text, "csrf"), "email": ANN, "next": "/"})
        pages.add((sent.status_code, sent.headers["location"]))
    assert pages == {(303, "/signin/sent")}  # the same answer every time
    wait_for_mail(smtp, SIGNIN_REQUESTS_PER_WINDOW)
    import time
    time.sleep(0.5)
    assert len(smtp.received) == SIGNIN_REQUESTS_PER_WINDOW  # but no more emails


def test_pages_never_show_a_traceback_or_a_500(client: TestClient) -> None:
    for path in ("/offers/%00", "/offers/" + "x" * 5000, "/rewards/abc", "/signin/" + "A" * 3000, "/signin/..%2f..",
                 "/language?lang=<script>&next=//evil", "/?country=' OR 1=1 --", "/dev/mail/1"):
        response = client.get(path)
        assert response.status_code < 500 and "Traceback" not in response.text, path
    assert not re.search(r"<script", client.get("/?country=<script>alert(1)</script>").text)


def test_staff_forms_reject_a_missing_or_wrong_csrf_token(client: TestClient, shop: sqlite3.Connection) -> None:
    from tests.support.staff import staff, staff_sign_in
    staff(shop, "auditor@example.com", "auditor")
    assert [r for r in post_routes(client) if r.startswith("/staff/")] == ["/staff/signin", "/staff/signout"]
    for token in (None, "forged"):
        data = {"email": "auditor@example.com", "password": "correct horse battery"}
        if token:
            data["csrf"] = token
        assert client.post("/staff/signin", data=data).status_code == 403
    assert shop.execute("SELECT COUNT(*) FROM staff_sessions").fetchone()[0] == 0
    assert staff_sign_in(client, "auditor@example.com").status_code == 303
    for token in (None, "forged"):
        assert client.post("/staff/signout", data={"csrf": token} if token else {}).status_code == 403
    assert client.get("/audit/").status_code == 200  # still signed in
