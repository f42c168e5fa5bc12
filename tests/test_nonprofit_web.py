"""The nonprofit program over HTTP with a real SMTP server: an account holder registers an
organisation, staff approve it, the holder issues a validation code, the representative
requests a donation and gets the keys by email, asks for a return that staff complete;
and the partner verification API with its token, records and rate limit."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from promo.db import transaction
from promo.nonprofit.validation_codes import VERIFY_FAILURES_PER_HOUR, add_partner
from tests.support.console import field_error, post_form, signed_in
from tests.support.invariants import assert_chain_verifies
from tests.support.mailserver import MailServer
from tests.support.nonprofit import HOLDER, REP, as_consumer, grant_by_staff, install_program, lk, register
from tests.support.web import answered, hidden, holding_nul, text_of, wait_for_mail_to


@pytest.fixture
def charity(shop: sqlite3.Connection) -> sqlite3.Connection:
    """The shop's offer and the nonprofit program, 5 licence keys per product."""
    return install_program(shop, keys_per_product=5, now=datetime.now(UTC))


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
    as_consumer(client, smtp, "stranger@example.com")
    assert client.get(org_path).status_code == 404  # not theirs


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
    from tests.support.console import csrf, wait_for_job
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
    from promo.nonprofit.organisations import register_organisation, review_organisation
    from promo.nonprofit.validation_codes import issue_code

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


# ---- issue 15, item 8: terms, holds, refusals, reviews, revocation, refresh, dates in zone ---------

def approved_with_code(conn: sqlite3.Connection, *, country: str = "DK", at: datetime | None = None,
                       short: str = "HarbourFood", number: str = "DK-12345") -> tuple[int, str]:
    """An approved organisation (holder HOLDER) and a code for REP, as the holder and staff make them."""
    from promo.campaigns.donation_program import Registration
    from promo.nonprofit.organisations import register_organisation, review_organisation
    from promo.nonprofit.validation_codes import issue_code

    now = at or datetime.now(UTC)
    with transaction(conn):
        org_id = register_organisation(conn, holder_email=HOLDER, now=now, ip=None, registration=Registration(
            "Harbour Food Bank", short, country, number, "relieving_poverty", "charity", None, True))
        review_organisation(conn, org_id, decision="approve", reviewer="s@example.com", reason="", now=now, ip=None)
        code = issue_code(conn, org_id, holder_email=HOLDER, first_name="Rita", last_name="Rep", email=REP, now=now, ip=None)
    return org_id, code


class Tab:
    """One person's browser: their own cookies on the shared client. (A second TestClient
    outside `with` serves each request on an event loop of its own, while the database's
    group commits belong to the app's loop: under load a request could wait for ever.)"""

    def __init__(self, client: TestClient):
        self.client, self.cookies = client, list(client.cookies.jar)  # whole cookies, with their domains

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        self.client.cookies.clear()
        for cookie in self.cookies:
            self.client.cookies.jar.set_cookie(cookie)
        try:
            return self.client.request(method, url, **kwargs)
        finally:
            self.cookies = list(self.client.cookies.jar)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)


def consumer(client: TestClient, smtp: MailServer, email: str, next_path: str = "/nonprofit/") -> Tab:
    """A browser signed in as `email`, beside the staff member's."""
    as_consumer(client, smtp, email, next_path)
    return Tab(client)


def staff_member(client: TestClient, conn: sqlite3.Connection, role: str) -> Tab:
    signed_in(client, conn, role)
    return Tab(client)


def ask_for(browser: Tab, code: str, terms: bool = True, **quantities: str):  # type: ignore[no-untyped-def]
    form = browser.get("/nonprofit/request")
    data = {"csrf": hidden(form.text, "csrf"), "code": code, **{f"qty.{k.replace('_', '-')}": v for k, v in quantities.items()}}
    if terms:
        data["accept_terms"] = "yes"
    return browser.post("/nonprofit/request", data=data)


def test_a_request_needs_the_terms_of_use_and_shows_who_may_use_the_licences(
        client: TestClient, charity: sqlite3.Connection, smtp: MailServer) -> None:
    _org_id, code = approved_with_code(charity)
    rep = consumer(client, smtp, REP, "/nonprofit/request")
    form = rep.get("/nonprofit/request").text
    assert 'name="accept_terms"' in form and 'href="/nonprofit/terms"' in form and "(version 1)" in form
    assert "Volunteers and members of the organisation are not eligible for licences." in form  # R-N11
    missing = ask_for(rep, code, terms=False, DON_OFFICE_PROPLUS="2")
    assert missing.status_code == 422
    assert field_error(missing.text, "accept_terms") == "Accept the program&#39;s terms of use to send the request."
    assert re.search(r'id="accept_terms"[^>]*aria-invalid="true"', missing.text)
    both = ask_for(rep, code, terms=False)  # every wrong field named at once
    assert both.status_code == 422 and field_error(both.text, "accept_terms") and field_error(both.text, "products")
    assert charity.execute("SELECT COUNT(*) FROM donation_requests").fetchone()[0] == 0

    already = len(smtp.received)
    granted = ask_for(rep, code, DON_OFFICE_PROPLUS="2")
    assert granted.status_code == 303
    page = rep.get(granted.headers["location"]).text
    assert "Granted" in page and "Who may use the licences" in page and "Terms of use version 1 accepted on" in page
    body = text_of(wait_for_mail_to(smtp, REP, after=already))
    assert "Only employees and board members with substantial day-to-day management" in body
    assert "Terms of use version 1 accepted on" in body
    stored = charity.execute("SELECT terms_version, terms_accepted_at FROM donation_requests").fetchone()
    assert stored[0] == "1" and stored[1].endswith("Z")
    for lang, heading, rn11 in (("en", "Terms of use", "not for personal gain"),
                                ("da", "Vilkår for anvendelse", "ikke til personlig vinding"),
                                ("nb", "Bruksvilkår", "ikke for personlig vinning")):
        rep.get(f"/language?lang={lang}&next=/")
        terms = rep.get("/nonprofit/terms")
        assert terms.status_code == 200 and f"<h1>{heading}</h1>" in terms.text and rn11 in terms.text


def test_a_request_during_a_review_is_held_until_staff_clear_it(client: TestClient, charity: sqlite3.Connection,
                                                                smtp: MailServer) -> None:
    org_id, code = approved_with_code(charity)
    staff = staff_member(client, charity, "marketer")
    bare = post_form(staff, f"/console/nonprofit/organisations/{org_id}/review", {"reason": ""})
    assert bare.status_code == 422 and "say why the organisation is reviewed again" in bare.text
    assert post_form(staff, f"/console/nonprofit/organisations/{org_id}/review",
                     {"reason": "A complaint about its hiring policy"}).status_code == 303
    assert "A complaint about its hiring policy" in staff.get("/console/nonprofit/").text

    rep = consumer(client, smtp, REP, "/nonprofit/request")
    already = len(smtp.received)
    held = ask_for(rep, code, DON_WINSRV_STD="20")
    assert held.status_code == 303
    page = rep.get(held.headers["location"]).text
    assert "On hold" in page and "being reviewed again. The request waits until the review ends" in page
    assert 'id="keys"' not in page and "Windows Server Standard (donation)</td><td>20" in page
    email = wait_for_mail_to(smtp, REP, after=already)
    assert email["Subject"].startswith("Your donation request") and email["Subject"].endswith("is on hold")
    assert "The request waits until the review ends" in text_of(email)
    over = ask_for(rep, code, DON_WINSRV_STD="6")  # 20 are reserved by the held request
    assert over.status_code == 422 and "only 5 of 25 are left" in over.text

    holder = consumer(client, smtp, HOLDER)
    org_page = holder.get(f"/nonprofit/organisations/{org_id}").text
    assert "Under review" in org_page and "Donation requests wait until the review ends" in org_page
    assert re.search(r'id="request-\d+".*On hold', org_page, re.S)

    request_id = held.headers["location"].rsplit("/", 1)[1]
    early = post_form(staff, f"/console/nonprofit/requests/{request_id}/grant", {})
    assert early.status_code == 409 and "under review: its requests wait until the review ends (R-N4)" in early.text
    already = len(smtp.received)
    assert post_form(staff, f"/console/nonprofit/organisations/{org_id}/clear", {}).status_code == 303
    keys = wait_for_mail_to(smtp, REP, after=already)
    assert keys["Subject"].startswith("Your donated software: request")
    assert "Granted" in rep.get(held.headers["location"]).text
    tags = [r[0] for r in charity.execute("SELECT tag FROM audit_events WHERE tag LIKE 'nonprofit:%' ORDER BY seq")][-5:]
    assert tags == ["nonprofit:organisation:under_review", "nonprofit:donation:held", "nonprofit:donation:refused",
                    "nonprofit:organisation:cleared", "nonprofit:donation:fulfilled"]


def test_staff_hold_and_refuse_with_a_reason_the_requester_reads(client: TestClient, charity: sqlite3.Connection,
                                                                 smtp: MailServer) -> None:
    grant_by_staff(charity)
    org_id, code = approved_with_code(charity)
    rep = consumer(client, smtp, REP, "/nonprofit/request")
    first, second = ask_for(rep, code, DON_OFFICE_PROPLUS="3"), ask_for(rep, code, DON_WINSRV_CAL="4")
    assert "Waiting for a decision" in rep.get(first.headers["location"]).text
    first_id, second_id = (r.headers["location"].rsplit("/", 1)[1] for r in (first, second))
    staff = staff_member(client, charity, "marketer")
    console = staff.get("/console/nonprofit/").text
    assert f'id="waiting-{first_id}"' in console and f"Hold request {first_id}" in console

    bare = post_form(staff, f"/console/nonprofit/requests/{first_id}/hold", {"reason": "  "})
    assert bare.status_code == 422 and "say why the request is held (the requester is told)" in bare.text
    already = len(smtp.received)
    reason = "Please send us your latest annual report <first>."
    assert post_form(staff, f"/console/nonprofit/requests/{first_id}/hold", {"reason": reason}).status_code == 303
    email = wait_for_mail_to(smtp, REP, after=already)
    assert email["Subject"].endswith("is on hold") and reason in text_of(email)
    html = email.get_body(("html",)).get_content()
    assert "latest annual report &lt;first&gt;." in html and "<first>" not in html  # staff's words escaped
    page = rep.get(first.headers["location"]).text
    assert "On hold" in page and "latest annual report &lt;first&gt;." in page

    already = len(smtp.received)
    assert post_form(staff, f"/console/nonprofit/requests/{second_id}/refuse",
                     {"reason": "Client access licences need a server."}).status_code == 303
    email = wait_for_mail_to(smtp, REP, after=already)
    assert email["Subject"].endswith("was not granted") and "Client access licences need a server." in text_of(email)
    page = rep.get(second.headers["location"]).text
    assert "Not granted" in page and "Client access licences need a server." in page and "no longer counts" in page
    holder = consumer(client, smtp, HOLDER)
    org_page = holder.get(f"/nonprofit/organisations/{org_id}").text
    assert "Client access licences need a server." in org_page and "latest annual report" in org_page

    assert post_form(staff, f"/console/nonprofit/requests/{first_id}/grant", {}).status_code == 303
    again = post_form(staff, f"/console/nonprofit/requests/{first_id}/refuse", {"reason": "no"})
    assert again.status_code == 409 and "stays granted (R-V7)" in again.text
    assert post_form(staff, f"/console/nonprofit/requests/{first_id}/approve", {}).status_code == 404
    auditor = staff_member(client, charity, "auditor")
    read_only = auditor.get("/console/nonprofit/").text
    assert "Hold request" not in read_only and "Revoke " not in read_only


def test_revoking_an_organisation_over_http(client: TestClient, charity: sqlite3.Connection, smtp: MailServer) -> None:
    with transaction(charity):
        token = add_partner(charity, "TechSoup", now=datetime.now(UTC), actor="test")
    org_id, code = approved_with_code(charity)
    rep = consumer(client, smtp, REP, "/nonprofit/request")
    granted = ask_for(rep, code, DON_WINSRV_STD="3")
    keys_before = re.findall(r'<td class="code">([A-Z0-9-]{29})</td>', rep.get(granted.headers["location"]).text)
    assert len(keys_before) == 1

    staff = staff_member(client, charity, "admin")
    bare = post_form(staff, f"/console/nonprofit/organisations/{org_id}/revoke", {})
    assert bare.status_code == 422 and "say why the approval is revoked" in bare.text
    already = len(smtp.received)
    reason = "Its bylaws exclude members by religion."
    assert post_form(staff, f"/console/nonprofit/organisations/{org_id}/revoke", {"reason": reason}).status_code == 303
    told = {wait_for_mail_to(smtp, address, after=already)["To"]: wait_for_mail_to(smtp, address, after=already)
            for address in (HOLDER, REP)}
    for email in told.values():  # a Danish organisation: told in Danish, with the reason
        assert email["Subject"] == "Godkendelsen af Harbour Food Bank i softwaredonationsprogrammet er tilbagekaldt"
        assert reason in text_of(email) and "heller ikke hos partnere" in text_of(email)
    assert reason in staff.get("/console/nonprofit/").text
    again = post_form(staff, f"/console/nonprofit/organisations/{org_id}/clear", {})
    assert again.status_code == 409 and "a revoked approval is final (R-N7)" in again.text

    holder = consumer(client, smtp, HOLDER)
    org_page = holder.get(f"/nonprofit/organisations/{org_id}")
    assert "Approval revoked" in org_page.text and reason in org_page.text and "Create a validation code" not in org_page.text
    assert "no longer valid: the approval was revoked" in org_page.text and "valid until" not in org_page.text
    assert "no longer valid: the approval was revoked" in rep.get("/nonprofit/").text
    issued = holder.post(f"/nonprofit/organisations/{org_id}/codes", data={
        "csrf": hidden(org_page.text, "csrf"), "first_name": "A", "last_name": "B", "email": "c@ngo.example"})
    assert issued.status_code == 403 and "approval was revoked" in issued.text and "(R-N7)" in issued.text
    code_id = charity.execute("SELECT id FROM validation_codes").fetchone()[0]
    refreshed = holder.post(f"/nonprofit/codes/{code_id}/refresh", data={"csrf": hidden(org_page.text, "csrf")})
    assert refreshed.status_code == 403 and "(R-N7)" in refreshed.text
    answer = client.post("/api/v1/validation-codes/verify", headers={"Authorization": f"Bearer {token}"},
                         json={"code": code}).json()
    assert answer["valid"] is False and answer["rule"] == "R-N7" and answer["reason"] == "organisation_revoked"

    refused = ask_for(rep, code, DON_OFFICE_PROPLUS="1")
    assert refused.status_code == 422 and "approval was revoked" in refused.text
    kept = rep.get(granted.headers["location"]).text  # R-V7: what it received stays
    assert re.findall(r'<td class="code">([A-Z0-9-]{29})</td>', kept) == keys_before and "Granted" in kept


def test_a_used_code_is_refreshed_any_time_and_the_old_one_fails_at_partners_at_once(
        client: TestClient, charity: sqlite3.Connection, smtp: MailServer) -> None:
    with transaction(charity):
        token = add_partner(charity, "TechSoup", now=datetime.now(UTC), actor="test")
    headers = {"Authorization": f"Bearer {token}"}
    org_id, code = approved_with_code(charity)
    assert client.post("/api/v1/validation-codes/verify", headers=headers, json={"code": code}).json()["valid"] is True
    holder = consumer(client, smtp, HOLDER)
    page = holder.get(f"/nonprofit/organisations/{org_id}").text
    assert "used" in page and "/refresh" in page  # used and valid: refreshable all the same (R-V4)
    code_id = charity.execute("SELECT id FROM validation_codes").fetchone()[0]
    refreshed = holder.post(f"/nonprofit/codes/{code_id}/refresh", data={"csrf": hidden(page, "csrf")})
    assert refreshed.status_code == 201
    fresh = re.search(r'id="new-code">([^<]+)<', refreshed.text).group(1)  # type: ignore[union-attr]
    old = client.post("/api/v1/validation-codes/verify", headers=headers, json={"code": code}).json()
    assert (old["valid"], old["rule"], old["reason"]) == (False, "R-V4", "code_replaced")
    assert client.post("/api/v1/validation-codes/verify", headers=headers, json={"code": fresh}).json()["valid"] is True
    twice = holder.post(f"/nonprofit/codes/{code_id}/refresh", data={"csrf": hidden(page, "csrf")})
    assert twice.status_code == 403 and "(R-V4)" in twice.text


def test_dates_are_shown_in_the_organisation_s_zone(client: TestClient, charity: sqlite3.Connection, smtp: MailServer) -> None:
    """A code created at 23:30 UTC on 2 March expires 60 days later at 23:30 UTC, which in
    Copenhagen is 01:30 on 2 May (summer time): the page says 2 May, never the UTC date."""
    from promo.nonprofit.donations import request_donation
    late = datetime(2030, 3, 2, 23, 30, tzinfo=UTC)
    dk_org, dk_code = approved_with_code(charity, at=late)
    us_org, _ = approved_with_code(charity, country="US", at=datetime(2030, 3, 3, 2, 0, tzinfo=UTC), short="Bronx",
                                   number="US-1")
    with transaction(charity):
        request_id = request_donation(charity, account_email=REP, code=dk_code, quantities={"DON-WINSRV-CAL": 1}, now=late,
                                      terms_accepted=True).request_id
    holder = consumer(client, smtp, HOLDER)
    assert "valid until May 2, 2030 at 01:30" in holder.get(f"/nonprofit/organisations/{dk_org}").text
    assert "valid until May 1, 2030 at 22:00" in holder.get(f"/nonprofit/organisations/{us_org}").text  # New York, EDT
    holder.get("/language?lang=da&next=/")
    assert "gyldig til 2. maj 2030 kl. 01:30" in holder.get(f"/nonprofit/organisations/{dk_org}").text
    rep = consumer(client, smtp, REP)
    home = rep.get("/nonprofit/").text
    assert "valid until May 2, 2030 at 01:30" in home and "March 3, 2030" in home  # the request's day in Copenhagen
    donation = rep.get(f"/nonprofit/requests/{request_id}").text
    assert "Harbour Food Bank · March 3, 2030" in donation and "accepted on March 3, 2030" in donation
    assert "March 2, 2030" not in donation


HOSTILE = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=200)
FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(kind=st.sampled_from(["organisations", "requests"]),
       target=st.one_of(st.integers(-2, 4).map(str), HOSTILE),
       decision=st.one_of(st.sampled_from(["grant", "hold", "refuse", "review", "clear", "revoke", "approve", "reject"]), HOSTILE),
       reason=HOSTILE)
def test_staff_decisions_answer_any_input_clearly(client: TestClient, charity: sqlite3.Connection, kind: str, target: str,
                                                  decision: str, reason: str) -> None:
    """Every decision route of the console, any target, decision and reason: a decision or a
    clear refusal (404, 409, 422), never a 500; the audit chain stays whole."""
    if charity.execute("SELECT COUNT(*) FROM organisations").fetchone()[0] == 0:
        grant_by_staff(charity)
        _org, code = approved_with_code(charity)
        with transaction(charity):
            from promo.nonprofit.donations import request_donation
            for _ in range(3):
                request_donation(charity, account_email=REP, code=code, quantities={"DON-OFFICE-PROPLUS": 1},
                                 now=datetime.now(UTC), terms_accepted=True)
        signed_in(client, charity, "marketer")
    path = f"/console/nonprofit/{kind}/{quote(target, safe='')}/{quote(decision, safe='')}"
    response = post_form(client, path, {"reason": reason})
    # 307: an empty id and decision leave ".../organisations//", which Starlette redirects to the list's path.
    # A path no route matches (an empty decision) is not found before any form is read: 404 even with a NUL.
    if {target, decision} & {".", ".."}:  # dot segments the client resolves (RFC 3986): another route's path,
        assert response.status_code in (307, 404, 405), (path, response.status_code)  # refused before any form is read
    else:
        assert answered(response, {"reason": reason}, (303, 307, 404, 409, 422)) or response.status_code == 404, \
            (path, response.status_code)
    assert "Traceback" not in response.text
    assert_chain_verifies(charity)


@FUZZ
@given(code=HOSTILE, terms=HOSTILE, quantity=HOSTILE)
def test_the_request_form_answers_any_input_clearly(client: TestClient, charity: sqlite3.Connection, smtp: MailServer,
                                                    code: str, terms: str, quantity: str) -> None:
    if client.cookies.get("promo_session") is None:
        as_consumer(client, smtp, REP, "/nonprofit/request")
    form = client.get("/nonprofit/request")
    data = {"code": code, "accept_terms": terms, "qty.DON-SQL-SRV": quantity}
    response = client.post("/nonprofit/request", data={"csrf": hidden(form.text, "csrf"), **data})
    assert answered(response, data, (422,)) and "Traceback" not in response.text  # no such code, or a field named
    if holding_nul(data):
        return
    if terms != "yes":
        assert field_error(response.text, "accept_terms")
