"""The nonprofit program over HTTP with a real SMTP server: an account holder registers an
organisation, staff approve it, the holder issues a validation code, the representative
requests a donation and gets the keys by email, asks for a return that staff complete;
and the partner verification API with its token, records and rate limit."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime

import pytest
from starlette.testclient import TestClient

from promo.db import transaction
from promo.nonprofit import VERIFY_FAILURES_PER_HOUR, add_partner
from tests.console import post_form, signed_in
from tests.mailserver import MailServer
from tests.test_nonprofit import install_program, lk
from tests.web import follow_link, hidden, sign_in, text_of, wait_for_mail_to

HOLDER, REP = "holder@ngo.example", "rep@ngo.example"


@pytest.fixture
def charity(shop: sqlite3.Connection) -> sqlite3.Connection:
    """The shop's offer and the nonprofit program, 5 licence keys per product."""
    return install_program(shop, keys_per_product=5, now=datetime.now(UTC))


def as_consumer(client: TestClient, smtp: MailServer, email: str, next_path: str = "/nonprofit/") -> None:
    client.cookies.clear()
    follow_link(client, sign_in(client, smtp, email, next_path))


def register(client: TestClient, **changes: str):  # type: ignore[no-untyped-def]
    page = client.get("/nonprofit/register")
    assert page.status_code == 200
    data = {"csrf": hidden(page.text, "csrf"), "name": "Harbour Food Bank", "short_name": "HarbourFood", "country": "DK",
            "registration_number": "DK-12345", "mission": "relieving_poverty", "org_type": "charity",
            "non_discrimination": "yes", **changes}
    return client.post("/nonprofit/register", data=data)


def test_a_donation_from_registration_to_return(client: TestClient, charity: sqlite3.Connection, smtp: MailServer) -> None:
    as_consumer(client, smtp, HOLDER)
    bad = register(client, short_name="Harbour Food!", registration_number="")
    assert bad.status_code == 422
    assert "Enter a short name of 2 to 30 letters or digits" in bad.text and "Enter the organisation&#39;s registration number" in bad.text
    registered = register(client)
    assert registered.status_code == 303
    org_path = registered.headers["location"]
    assert "Waiting for review" in client.get(org_path).text

    signed_in(client, charity, "marketer")
    overview = client.get("/console/nonprofit/")
    assert "Harbour Food Bank" in overview.text and ">none<" in overview.text
    org_id = org_path.rsplit("/", 1)[1]
    assert post_form(client, f"/console/nonprofit/organisations/{org_id}/approve", {}).status_code == 303
    staff_cookies = dict(client.cookies)

    as_consumer(client, smtp, HOLDER)
    page = client.get(org_path)
    assert "Create a validation code" in page.text
    issued = client.post(f"{org_path}/codes", data={"csrf": hidden(page.text, "csrf"), "first_name": "Rita",
                                                    "last_name": "Rep", "email": REP})
    assert issued.status_code == 201
    code = re.search(r'<p class="code" id="new-code">([^<]+)</p>', issued.text).group(1)  # type: ignore[union-attr]
    assert re.fullmatch(r"[a-z0-9]{12}@HarbourFood", code) and "Rita Rep" in issued.text

    as_consumer(client, smtp, REP, "/nonprofit/request")
    form = client.get("/nonprofit/request")
    too_many = client.post("/nonprofit/request", data={"csrf": hidden(form.text, "csrf"), "code": code,
                                                       "qty.DON-WINSRV-STD": "26", "accept_terms": "yes"})
    assert too_many.status_code == 422 and "R-N2" in too_many.text
    assert "You asked for 26 of Windows Server Standard, but only 25 of 25 are left" in too_many.text
    assert re.search(r"<th scope=\"row\">Windows Server Standard</th><td>25 of 25</td>", too_many.text)
    already = len(smtp.received)
    granted = client.post("/nonprofit/request", data={"csrf": hidden(form.text, "csrf"), "code": code,
                                                      "qty.DON-WINSRV-STD": "2", "qty.DON-OFFICE-PROPLUS": "10",
                                                      "accept_terms": "yes"})
    assert granted.status_code == 303
    donation = client.get(granted.headers["location"]).text
    keys = re.findall(r'<td class="code">([A-Z0-9-]{29})</td>', donation)
    assert len(keys) == 2
    email = wait_for_mail_to(smtp, REP, after=already)
    body = text_of(email)
    assert all(k in body for k in keys) and "Harbour Food Bank" in body

    page = client.get(granted.headers["location"])
    asked = client.post(f"{granted.headers['location']}/return", data={"csrf": hidden(page.text, "csrf")})
    assert asked.status_code == 403 and "Products that were installed cannot be returned. (R-N9)" in asked.text
    asked = client.post(f"{granted.headers['location']}/return", data={"csrf": hidden(page.text, "csrf"), "not_installed": "yes"})
    assert asked.status_code == 303 and "Return asked for" in client.get(granted.headers["location"]).text

    client.cookies.clear()
    client.cookies.update(staff_cookies)
    return_id = charity.execute("SELECT id FROM donation_returns").fetchone()[0]
    already = len(smtp.received)
    assert post_form(client, f"/console/nonprofit/returns/{return_id}/complete", {}).status_code == 303
    assert "is complete" in wait_for_mail_to(smtp, REP, after=already)["Subject"]
    tags = [r[0] for r in charity.execute("SELECT tag FROM audit_events WHERE tag LIKE 'nonprofit:%' ORDER BY seq")]
    assert tags == ["nonprofit:organisation:registered", "nonprofit:organisation:approved", "nonprofit:code:issued",
                    "nonprofit:donation:refused", "nonprofit:donation:fulfilled", "nonprofit:return:asked",
                    "nonprofit:return:completed"]


def test_ineligible_types_cannot_be_approved_in_the_console(client: TestClient, charity: sqlite3.Connection,
                                                            smtp: MailServer) -> None:
    as_consumer(client, smtp, HOLDER)
    org_path = register(client, org_type="library").headers["location"]
    signed_in(client, charity, "admin")
    org_id = org_path.rsplit("/", 1)[1]
    assert "R-N6" in client.get("/console/nonprofit/").text
    refused = post_form(client, f"/console/nonprofit/organisations/{org_id}/approve", {})
    assert refused.status_code == 403 and "cannot approve: libraries are not eligible (R-N6)" in refused.text
    assert post_form(client, f"/console/nonprofit/organisations/{org_id}/reject", {"reason": "a library (R-N6)"}).status_code == 303
    as_consumer(client, smtp, HOLDER)
    page = client.get(org_path).text
    assert "Not approved" in page and "a library (R-N6)" in page and "Create a validation code" not in page
    stranger = TestClient(client.app, follow_redirects=False)
    as_consumer(stranger, smtp, "stranger@example.com")
    assert stranger.get(org_path).status_code == 404  # not theirs


def test_pages_speak_danish_and_norwegian(client: TestClient, charity: sqlite3.Connection, smtp: MailServer) -> None:
    as_consumer(client, smtp, HOLDER)
    client.get("/language?lang=da&next=/")
    page = client.get("/nonprofit/register").text
    assert "Registrér en organisation" in page and "Organisationens navn" in page
    client.get("/language?lang=nb&next=/")
    page = client.get("/nonprofit/").text
    assert "Programvaredonasjoner til ideelle organisasjoner" in page and "Be om en donasjon" in page


def test_partner_verification_over_http(client: TestClient, charity: sqlite3.Connection, smtp: MailServer) -> None:
    with transaction(charity):
        token = add_partner(charity, "TechSoup", now=datetime.now(UTC), actor="test")
    as_consumer(client, smtp, HOLDER)
    org_id = register(client).headers["location"].rsplit("/", 1)[1]
    headers = {"Authorization": f"Bearer {token}"}
    url = "/api/v1/validation-codes/verify"
    signed_in(client, charity, "marketer")
    post_form(client, f"/console/nonprofit/organisations/{org_id}/approve", {})
    as_consumer(client, smtp, HOLDER)
    page = client.get(f"/nonprofit/organisations/{org_id}")
    issued = client.post(f"/nonprofit/organisations/{org_id}/codes", data={"csrf": hidden(page.text, "csrf"),
                                                                          "first_name": "A", "last_name": "B", "email": REP})
    code = re.search(r'id="new-code">([^<]+)<', issued.text).group(1)  # type: ignore[union-attr]
    client.cookies.clear()

    ok = client.post(url, headers=headers, json={"code": code})
    assert ok.status_code == 200 and ok.json()["valid"] is True
    assert ok.json()["organisation"] == {"name": "Harbour Food Bank", "short_name": "HarbourFood", "country": "DK"}
    assert client.post(url, headers=headers, json={"code": code}).json()["valid"] is True  # works more than once (R-V6)
    unknown = client.post(url, headers=headers, json={"code": "zzzzzzzzzzzz@HarbourFood"}).json()
    assert unknown == {"valid": False, "reason": "unknown_code", "message": "no such validation code"}
    assert client.post(url, json={"code": code}).status_code == 401
    assert client.post(url, headers={"Authorization": "Bearer promo_staff-token"}, json={"code": code}).status_code == 401
    missing = client.post(url, headers=headers, json={})
    assert missing.status_code == 400
    assert missing.json()["errors"][0] == {"field": "code", "message": "is required, e.g. 123a4567@MyNGOname", "rule": "R-V1"}
    uses = charity.execute("SELECT COUNT(*), SUM(valid) FROM validation_code_uses WHERE purpose = 'verify'").fetchone()
    assert tuple(uses) == (3, 2)
    for _ in range(VERIFY_FAILURES_PER_HOUR - 1):
        client.post(url, headers=headers, json={"code": "guess@HarbourFood"})
    limited = client.post(url, headers=headers, json={"code": code})  # even a good code, once guessing is capped
    assert limited.status_code == 429 and limited.json()["valid"] is False


def test_licence_keys_upload_into_per_product_pools(client: TestClient, charity: sqlite3.Connection) -> None:
    from tests.console import csrf, wait_for_job
    signed_in(client, charity, "marketer")
    page = client.get("/console/nonprofit/").text
    assert re.search(r'data-sku="DON-SQL-SRV">5<', page)
    content = "code,sku\n" + "".join(f"{lk('DON-SQL-SRV', 100 + i)},DON-SQL-SRV\n" for i in range(3))
    posted = client.post("/console/nonprofit/keys", data={"csrf": csrf(client, "/console/nonprofit/")},
                         files={"file": ("keys.csv", content.encode(), "text/csv")})
    assert posted.status_code == 303
    done = wait_for_job(client, posted.headers["location"])
    assert "Done:</strong> 3 codes imported" in done and 'href="/console/nonprofit/"' in done
    assert re.search(r'data-sku="DON-SQL-SRV">8<', client.get("/console/nonprofit/").text)
    wrong = "code,sku\n" + f"{lk('X', 1)},O365-HOME-ESD\n" + f"{lk('X', 2)}\n"
    posted = client.post("/console/nonprofit/keys", data={"csrf": csrf(client, "/console/nonprofit/")},
                         files={"file": ("wrong.csv", wrong.encode(), "text/csv")})
    failed = wait_for_job(client, posted.headers["location"])
    assert "line 2: sku: &#39;O365-HOME-ESD&#39; is not one of the program&#39;s products" in failed
    assert "line 3: row: has 1 fields, the header has 2" in failed


def test_the_program_is_not_an_offer(client: TestClient, charity: sqlite3.Connection, smtp: MailServer) -> None:
    """Routes of the purchase offer answer plainly for the donation program, never with a 500."""
    as_consumer(client, smtp, REP, "/")
    page = client.get("/offers/open-today/redeem")
    assert client.get("/offers/nonprofit-donations").status_code == 404
    redeemed = client.post("/offers/nonprofit-donations/redeem", data={"csrf": hidden(page.text, "csrf"),
                                                                       "product_key": "X" * 25, "accept_terms": "yes"})
    assert redeemed.status_code == 404
    assert "Software donations" not in client.get("/").text
    signed_in(client, charity, "marketer")
    assert client.get("/console/campaigns/nonprofit-donations").status_code == 404
    assert "Software donations" not in client.get("/console/").text
    token = re.search(r'id="new-token">([^<]+)<', post_form(client, "/console/tokens", {"name": "t"}).text).group(1)  # type: ignore[union-attr]
    dry = client.post("/api/v1/campaigns/nonprofit-donations/evaluate", headers={"Authorization": f"Bearer {token}"},
                      json={"sku": "DON-SQL-SRV", "country": "DK", "purchased_at": "2026-01-01", "activated_at": "2026-01-01"})
    assert dry.status_code == 400 and dry.json()["errors"][0]["field"] == "campaign"
    listed = client.get("/api/v1/campaigns", headers={"Authorization": f"Bearer {token}"}).json()["campaigns"]
    assert {c["slug"]: c["status"] for c in listed}["nonprofit-donations"] == "live"
    stock = client.get("/api/v1/campaigns/nonprofit-donations/stock", headers={"Authorization": f"Bearer {token}"}).json()
    assert stock["available"] == 30


def test_the_keys_email_speaks_the_requester_s_language(client: TestClient, charity: sqlite3.Connection,
                                                       smtp: MailServer) -> None:
    from promo.campaigns.donation_program import Registration
    from promo.nonprofit import issue_code, register_organisation, review_organisation

    now = datetime.now(UTC)
    with transaction(charity):
        org_id = register_organisation(charity, holder_email=HOLDER, now=now, ip=None, registration=Registration(
            "Havnens Madbank", "Madbank", "DK", "DK-777", "relieving_poverty", "charity", None, True))
        review_organisation(charity, org_id, decision="approve", reviewer="s@example.com", reason="", now=now, ip=None)
        code = issue_code(charity, org_id, holder_email=HOLDER, first_name="R", last_name="R", email=REP, now=now, ip=None)
    as_consumer(client, smtp, REP)
    for lang, subject in (("da", "Jeres donerede software: anmodning"), ("nb", "Den donerte programvaren deres: forespørsel")):
        client.get(f"/language?lang={lang}&next=/")
        form = client.get("/nonprofit/request")
        already = len(smtp.received)
        granted = client.post("/nonprofit/request", data={"csrf": hidden(form.text, "csrf"), "code": code,
                                                          "qty.DON-WINSRV-CAL": "1", "accept_terms": "yes"})
        assert granted.status_code == 303
        email = wait_for_mail_to(smtp, REP, after=already)
        assert email["Subject"].startswith(subject) and email["Content-Language"] == lang
        assert "Havnens Madbank" in text_of(email)
