"""The campaign editor under /console/: create, validate field by field, edit with an
audit trail, clone, publish/pause/resume, export/import, preview and replay."""

from __future__ import annotations

import re
import sqlite3

import pytest
from starlette.testclient import TestClient

from promo.campaign_store import get_campaign
from promo.campaigns import render_campaign_file
from tests.support.console import SUMMER, audit_changes, csrf, field_error, form_values, post_confirmed, post_form, signed_in, values_of
from tests.support.database import product_key
from tests.support.mailserver import MailServer
from tests.support.web import follow_link, redeem_form, sign_in, submit


@pytest.fixture
def marketer(client: TestClient, shop: sqlite3.Connection) -> TestClient:
    signed_in(client, shop, "marketer")
    return client


def create(client: TestClient, **changes: object):  # type: ignore[no-untyped-def]
    return post_form(client, "/console/campaigns/new", {**SUMMER, **changes})


def test_a_new_campaign_is_a_draft_and_its_creation_is_audited(marketer: TestClient, shop: sqlite3.Connection) -> None:
    response = create(marketer)
    assert response.status_code == 303 and response.headers["location"] == "/console/campaigns/summer-2026"
    stored = get_campaign(shop, "summer-2026")
    assert stored.campaign.countries == ("DK", "NO") and stored.campaign.timezone == "Europe/Copenhagen"
    assert stored.campaign.names == {"da": "Sommertilbud"} and stored.campaign.products.excluded == ({"term": ("monthly",)},)
    assert not stored.published
    page = marketer.get("/console/campaigns/summer-2026")
    assert 'status-draft">draft<' in page.text
    created = audit_changes(shop, "campaign:definition:created")[-1]
    assert created["state"] == "draft" and created["changes"]["countries"] == [None, ["DK", "NO"]]
    assert marketer.get("/offers/summer-2026").status_code == 404  # consumers never see a draft
    assert "Summer offer" not in marketer.get("/").text
    taken = create(marketer)
    assert taken.status_code == 422 and field_error(taken.text, "slug") == "summer-2026 is already taken by another campaign"


@pytest.mark.parametrize(("changes", "field", "message"), [
    ({"eligibility_window.last_day": "2026-05-01"}, "eligibility_window.last_day",
     "the window ends (2026-05-01) before it starts (2026-06-01)"),
    ({"redemption_window.first_day": "2026-01-01", "redemption_window.last_day": "2026-05-31"}, "redemption_window.last_day",
     "the redemption window closes before the eligibility window opens"),
    ({"countries": []}, "countries", "Choose at least one country (R-X2)."),
    ({"countries": ["DK", "XX"]}, "countries", "&#39;XX&#39; is not an ISO 3166-1 country code (such as DK, NO, GB)"),
    ({"products.qualifying_skus": ["O365-HOME-ESD", "NOPE-1"]}, "products.qualifying_skus",
     "unknown SKU NOPE-1: not in the product catalog"),
    ({"products.excluded_skus": ["GONE"]}, "products.excluded_skus", "unknown SKU GONE: not in the product catalog"),
    ({"limit_per_account": "0"}, "limit_per_account", "must be a whole number of at least 1 (R-X6)"),
    ({"limit_per_account": "one"}, "limit_per_account", "must be a whole number of at least 1 (R-X6)"),
    ({"total_cap": "0"}, "total_cap", "must be a whole number of at least 1, or left out for no cap"),
    ({"low_stock_threshold": "-5"}, "low_stock_threshold", "must be a whole number of at least 1, or left out for no alert"),
    ({"timezone": "Mars/Olympus"}, "timezone", "unknown time zone &#39;Mars/Olympus&#39; (use an IANA name such as Europe/Copenhagen)"),
    ({"timezone": ""}, "timezone", "Choose the campaign&#39;s time zone, such as Europe/Copenhagen."),
    ({"name": " "}, "name", "Give the campaign a name."),
    ({"slug": "Summer 2026"}, "slug", "must be lower-case letters, digits and single dashes"),
    ({"eligibility_window.first_day": "1 June"}, "eligibility_window.first_day",
     "Enter the first day of purchase and activation as a date, such as 2026-06-01."),
    ({"reward.terms_url": "ftp://example.com"}, "reward.terms_url", "must be an http(s) link"),
    ({"reward.code_expires_on": "2026-09-01"}, "reward.code_expires_on",
     "codes would expire before the redemption window closes (R-X9)"),
    ({"reward.code_pattern": "(["}, "reward.code_pattern", "is not a valid regular expression"),
    ({"products.qualifying_skus": [], "products.qualifying": ""}, "products", "Choose at least one qualifying product (R-X3)."),
    ({"products.excluded": "term monthly"}, "products.excluded",
     "line 1: write each rule as attribute=value[,value] joined by &#39;;&#39; (attributes: family, edition, channel, term)"),
    ({"products.excluded": "colour=red"}, "products.excluded",
     "products.excluded[0].colour: unknown attribute; use family, edition, channel, term"),
    ({"availability": "O365-HOME-ESD DK"}, "availability", "line 1: write each line as SKU: country, country"),
    ({"availability": "O365-HOME-ESD: DK, Narnia"}, "availability",
     "availability.O365-HOME-ESD: &#39;Narnia&#39; is not an ISO 3166-1 country code (such as DK, NO, GB)"),
])
def test_each_validation_message_is_shown_at_its_field(marketer: TestClient, shop: sqlite3.Connection,
                                                       changes: dict[str, object], field: str, message: str) -> None:
    response = create(marketer, **changes)
    assert response.status_code == 422
    assert "The campaign was not saved" in response.text
    assert field_error(response.text, field) == message
    assert shop.execute("SELECT COUNT(*) FROM campaigns WHERE slug = 'summer-2026'").fetchone()[0] == 0
    # What was typed is kept, so the marketer only fixes the field at fault.
    assert 'value="Summer offer"' in response.text or changes.get("name") == " "


def test_edits_are_audited_field_by_field_and_stale_edits_are_refused(marketer: TestClient, shop: sqlite3.Connection) -> None:
    create(marketer)
    form = marketer.get("/console/campaigns/summer-2026/edit").text
    assert 'value="Summer offer"' in form and re.search(r'value="DK"\s+checked', form)
    updated_at = re.search(r'name="updated_at" value="([^"]+)"', form)
    assert updated_at
    saved = post_form(marketer, "/console/campaigns/summer-2026/edit",
                      {**SUMMER, "countries": ["DK", "NO", "SE"], "reward.name": "Xbox Game Pass", "total_cap": "500",
                       "updated_at": updated_at.group(1), "action": "save"})
    assert saved.status_code == 303
    changes = audit_changes(shop, "campaign:definition:changed")[-1]["changes"]
    assert changes == {"countries": [["DK", "NO"], ["DK", "NO", "SE"]], "reward.name": ["Xbox Live Gold 12 months", "Xbox Game Pass"],
                       "total_cap": [None, 500]}
    event = shop.execute("SELECT actor FROM audit_events WHERE tag = 'campaign:definition:changed'").fetchone()
    assert event[0] == "staff:marketer@example.com"
    # Someone saved meanwhile: the old form's version no longer matches, nothing is overwritten.
    stale = post_form(marketer, "/console/campaigns/summer-2026/edit",
                      {**SUMMER, "updated_at": updated_at.group(1), "action": "save"})
    assert stale.status_code == 409 and "was changed by someone else" in stale.text
    assert get_campaign(shop, "summer-2026").campaign.reward.name == "Xbox Game Pass"


def test_clone_copies_everything_but_the_address(marketer: TestClient, shop: sqlite3.Connection) -> None:
    form = marketer.get("/console/campaigns/new?from=open-today").text
    assert 'value="open-today-copy"' in form and "(copy)" in form
    values = {k: v for k, v in form_values(form).items() if k != "csrf"}
    assert values["clone_of"] == "open-today"
    values["timezone"] = "UTC"
    assert post_form(marketer, "/console/campaigns/new", values).status_code == 303
    original, copy = get_campaign(shop, "open-today").campaign, get_campaign(shop, "open-today-copy").campaign
    assert copy.countries == original.countries and copy.products == original.products
    assert copy.sponsors == original.sponsors  # carried over, not on the form
    assert copy.support == original.support and copy.terms == original.terms  # on the form (R-X16, R-X22)
    assert copy.reward == original.reward and copy.name == original.name + " (copy)"


def test_pause_and_resume_stop_and_restart_redemptions(marketer: TestClient, shop: sqlite3.Connection,
                                                       smtp: MailServer) -> None:
    assert 'status-live">live<' in marketer.get("/console/campaigns/open-today").text
    assert post_confirmed(marketer, "/console/campaigns/open-today/state", {"action": "pause"}).status_code == 303
    assert 'status-paused">paused<' in marketer.get("/console/campaigns/open-today").text
    staff_cookies = dict(marketer.cookies)
    marketer.cookies.clear()
    follow_link(marketer, sign_in(marketer, smtp))
    refused = submit(marketer, redeem_form(marketer), product_key(1))
    assert refused.status_code == 422 and "This offer is paused for the moment" in refused.text and "CAMPAIGN" in refused.text
    marketer.cookies.update(staff_cookies)
    assert post_form(marketer, "/console/campaigns/open-today/state", {"action": "resume"}).status_code == 303
    assert post_form(marketer, "/console/campaigns/open-today/state", {"action": "resume"}).status_code == 400  # not paused
    marketer.cookies.clear()
    follow_link(marketer, sign_in(marketer, smtp))
    assert submit(marketer, redeem_form(marketer), product_key(1)).status_code == 303  # redeemed
    states = [c["changes"]["status"] for tag in ("campaign:state:pause", "campaign:state:resume") for c in audit_changes(shop, tag)]
    assert states == [["live", "paused"], ["paused", "live"]]


def test_publishing_a_draft_makes_it_scheduled_live_or_ended_by_its_window(marketer: TestClient, shop: sqlite3.Connection) -> None:
    create(marketer)  # redemption 2026-06-01 .. 2026-09-30 Copenhagen; today is later
    assert post_confirmed(marketer, "/console/campaigns/summer-2026/state", {"action": "publish"}).status_code == 303
    page = marketer.get("/console/campaigns/summer-2026").text
    assert 'status-ended">ended<' in page  # published, but its window has closed
    assert audit_changes(shop, "campaign:state:publish")[-1]["changes"]["status"] == ["draft", "ended"]
    assert post_form(marketer, "/console/campaigns/summer-2026/state", {"action": "publish"}).status_code == 400


def test_export_and_import_use_the_cli_campaign_file(marketer: TestClient, shop: sqlite3.Connection) -> None:
    exported = marketer.get("/console/campaigns/open-today/export.toml")
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("application/toml")
    assert exported.text == render_campaign_file(get_campaign(shop, "open-today").campaign)
    renamed = exported.text.replace('slug = "open-today"', 'slug = "open-again"')
    token = csrf(marketer, "/console/")
    imported = marketer.post("/console/campaigns/import", data={"csrf": token},
                             files={"file": ("open-again.toml", renamed.encode(), "application/toml")})
    assert imported.status_code == 303 and imported.headers["location"] == "/console/campaigns/open-again"
    again = get_campaign(shop, "open-again")
    assert not again.published and render_campaign_file(again.campaign) == renamed
    created = audit_changes(shop, "campaign:definition:created")[-1]
    assert created["state"] == "draft" and created["changes"]["slug"] == [None, "open-again"]
    broken = marketer.post("/console/campaigns/import", data={"csrf": token},
                           files={"file": ("bad.toml", renamed.replace("limit_per_account = 1", "limit_per_account = 0").encode())})
    assert broken.status_code == 422 and "limit_per_account: must be a whole number of at least 1 (R-X6)" in broken.text
    garbage = marketer.post("/console/campaigns/import", data={"csrf": token}, files={"file": ("x.toml", b"\xff\xfe[")})
    assert garbage.status_code == 422 and "file: is not UTF-8 text" in garbage.text


def test_preview_shows_the_decision_with_every_failing_rule(marketer: TestClient) -> None:
    def preview(**query: str) -> str:
        page = marketer.get("/console/campaigns/open-today", params=query)
        assert page.status_code == 200
        return page.text

    day = get_day()
    ok = preview(sku="O365-HOME-ESD", country="DK", purchased_at=day, activated_at=day)
    assert "<strong>Qualifies</strong>" in ok
    refused = preview(sku="O365-HOME-MONTHLY", country="US", purchased_at="2001-01-01", activated_at="2001-01-02")
    assert "<strong>Does not qualify</strong>" in refused
    rules = re.findall(r'<span class="rule">(R-X\d+)</span>', refused)
    assert rules == ["R-X4", "R-X2", "R-X1", "R-X1"]
    bad = preview(sku="O365-HOME-ESD", country="Narnia", purchased_at=day, activated_at="yesterday")
    assert "is not an ISO 3166-1 country code" in bad and "Qualifies" not in bad


def test_preview_orders_bare_days_in_the_campaigns_zone_and_takes_two_countries(marketer: TestClient) -> None:
    def preview(**query: str) -> str:
        page = marketer.get("/console/campaigns/office365-xbox-gold-2013", params={"sku": "O365-HOME-ESD", **query})
        assert page.status_code == 200
        return page.text

    # 2013-08-01T23:30:00Z is 01:30 on 2013-08-02 in Copenhagen, the day of purchase: in order.
    same_day = preview(country="DK", purchased_at="2013-08-02", activated_at="2013-08-01T23:30:00Z")
    assert "Does not qualify" in same_day and "R-X7" in same_day  # only because the 2013 offer has closed
    assert "before purchase" not in same_day and "R-X1" not in same_day
    before = preview(country="DK", purchased_at="2013-08-01T23:30:00Z", activated_at="2013-08-01")
    assert ('<p class="error">activation (2013-08-01) is before purchase (2013-08-01T23:30:00Z) in the '
            "campaign&#39;s zone (Europe/Copenhagen)</p>") in before
    abroad = preview(country="DK", activation_country="US", purchased_at="2013-08-01", activated_at="2013-08-02")
    assert "the product was activated in United States (US)" in abroad and "bought in" not in abroad
    assert 'name="activation_country" value="US"' in abroad


def test_allowing_unbound_keys_is_a_checkbox_on_the_form(marketer: TestClient, shop: sqlite3.Connection) -> None:
    assert "Allow keys whose activation record names no account" in marketer.get("/console/campaigns/new").text
    assert create(marketer, allow_unbound_keys="yes").status_code == 303
    assert get_campaign(shop, "summer-2026").campaign.allow_unbound_keys is True
    form = marketer.get("/console/campaigns/summer-2026/edit").text
    assert re.search(r'name="allow_unbound_keys" value="yes"[^>]*\s+checked', form)
    values = values_of(get_campaign(shop, "summer-2026").campaign)
    del values["allow_unbound_keys"]  # unticked
    updated_at = re.search(r'name="updated_at" value="([^"]+)"', form).group(1)  # type: ignore[union-attr]
    assert post_form(marketer, "/console/campaigns/summer-2026/edit",
                     {**values, "updated_at": updated_at, "action": "save"}).status_code == 303
    assert get_campaign(shop, "summer-2026").campaign.allow_unbound_keys is False
    assert audit_changes(shop, "campaign:definition:changed")[-1]["changes"] == {"allow_unbound_keys": [True, None]}
    odd = create(marketer, slug="odd-2026", allow_unbound_keys="maybe")
    assert odd.status_code == 422 and field_error(odd.text, "allow_unbound_keys").startswith("must be true or false")


def get_day() -> str:
    from datetime import UTC, datetime
    return datetime.now(UTC).date().isoformat()


def test_replay_counts_changed_decisions_on_recorded_claims_without_saving(marketer: TestClient, shop: sqlite3.Connection,
                                                                          smtp: MailServer) -> None:
    staff_cookies = dict(marketer.cookies)
    marketer.cookies.clear()
    follow_link(marketer, sign_in(marketer, smtp))
    assert submit(marketer, redeem_form(marketer), product_key(1)).status_code == 303  # DK, qualifies: redeemed
    assert "R-X4" in submit(marketer, redeem_form(marketer), product_key(2)).text  # a trial: refused
    assert "R-X11" in submit(marketer, redeem_form(marketer), "ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ-ZZZZZ").text  # no evidence
    marketer.cookies.clear()
    marketer.cookies.update(staff_cookies)
    form = marketer.get("/console/campaigns/open-today/edit").text
    current = get_campaign(shop, "open-today")
    values = values_of(current.campaign)

    same = post_form(marketer, "/console/campaigns/open-today/edit", {**values, "action": "replay"})
    assert same.status_code == 200 and "<strong>0</strong> of 2 recorded decisions would change" in same.text
    assert "1 attempt(s) had no activation record" in " ".join(same.text.split())

    without_dk = post_form(marketer, "/console/campaigns/open-today/edit",
                           {**values, "countries": [c for c in values["countries"] if c != "DK"], "action": "replay"})
    text = " ".join(without_dk.text.split())
    assert "<strong>2</strong> of 2 recorded decisions would change (1 would now be refused, 0 would now pass)" in text
    assert "would now be refused" in text and "fails other rules" in text
    assert "PK000000000000000000000001" not in text  # keys are masked
    assert get_campaign(shop, "open-today").updated_at == current.updated_at  # nothing saved
    assert not audit_changes(shop, "campaign:definition:changed")
    assert "updated_at" in form


def test_names_and_descriptions_per_language_reach_the_offer_page(marketer: TestClient, shop: sqlite3.Connection) -> None:
    values = values_of(get_campaign(shop, "open-today").campaign)
    saved = post_form(marketer, "/console/campaigns/open-today/edit", {
        **values, "names.da": "Gratis Xbox-medlemskab", "descriptions.en": "Twelve months of Xbox Live Gold, on us.",
        "descriptions.da": "Tolv måneders Xbox Live Gold, gratis.", "action": "save"})
    assert saved.status_code == 303
    changes = audit_changes(shop, "campaign:definition:changed")[-1]["changes"]
    assert changes["descriptions.da"] == [None, "Tolv måneders Xbox Live Gold, gratis."]
    marketer.cookies.clear()
    english = marketer.get("/offers/open-today").text
    assert '<p id="description">Twelve months of Xbox Live Gold, on us.</p>' in english
    marketer.get("/language?lang=da&next=/")
    danish = marketer.get("/offers/open-today").text
    assert "<h1>Gratis Xbox-medlemskab</h1>" in danish and "Tolv måneders Xbox Live Gold, gratis." in danish
    marketer.get("/language?lang=nb&next=/")
    assert "Twelve months of Xbox Live Gold, on us." in marketer.get("/offers/open-today").text  # no nb text: English
