"""Every R-X rule of the shipped offer, at its exact edges, as pure functions."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promo.campaigns import parse_campaign_file, shipped_campaign_text
from promo.campaigns.purchase_offer import Claim, PurchaseOffer
from promo.catalog import shipped_catalog
from promo.timeutil import Moment

CPH = ZoneInfo("Europe/Copenhagen")  # the campaign's stated zone (R-X1)
BUENOS_AIRES = ZoneInfo("America/Argentina/Buenos_Aires")
SECOND = timedelta(seconds=1)
CATALOG = {s.sku: s for s in shipped_catalog()}
OFFER: PurchaseOffer = parse_campaign_file(shipped_campaign_text("office365-xbox-gold-2013"), CATALOG)
DURING = datetime(2013, 9, 1, 12, 0, tzinfo=UTC)

QUALIFYING = ["O365-HOME-FPP", "O365-HOME-POSA", "O365-HOME-ESD", "O365-HOME-ANNUAL", "O365-HOME-MIL",
              "O365-UNI-FPP", "O365-UNI-POSA", "O365-UNI-ESD"]
EXCLUDED = ["O365-HOME-MONTHLY", "O365-SBP", "OFFICE2013-HS", "OFFICE2013-HB", "OFFICE2013-PRO", "WORD2013",
            "OFFICEMAC2011-HS", "OFFICEMAC2011-HB", "OFFICE2010-PRO", "OFFICE2007-STD", "OFFICE2003-STD",
            "O365-HOME-TRIAL", "O365-HOME-NFR", "O365-HOME-VL"]
# R-X2's 38 countries/regions as the document names them (seeds/003), with their ISO codes.
R_X2 = {
    "Argentina": "AR", "Australia": "AU", "Austria": "AT", "Belgium": "BE", "Brazil": "BR", "Canada": "CA",
    "Chile": "CL", "Colombia": "CO", "Czech Republic": "CZ", "Denmark": "DK", "Finland": "FI", "France": "FR",
    "Germany": "DE", "Greece": "GR", "Hong Kong SAR": "HK", "Hungary": "HU", "Ireland": "IE", "Israel": "IL",
    "Italy": "IT", "Korea": "KR", "Mexico": "MX", "Netherlands": "NL", "New Zealand": "NZ", "Norway": "NO",
    "Poland": "PL", "Portugal": "PT", "Russia": "RU", "Saudi Arabia": "SA", "Singapore": "SG", "Slovakia": "SK",
    "South Africa": "ZA", "Spain": "ES", "Sweden": "SE", "Switzerland": "CH", "Taiwan": "TW", "Turkey": "TR",
    "United Arab Emirates": "AE", "United Kingdom": "GB",
}
COUNTRIES = list(R_X2.values())


def claim(sku: str = "O365-HOME-ESD", country: str = "DK", purchased: Moment = date(2013, 8, 1),
          activated: Moment | None = None, **extra: object) -> Claim:
    """`country`: bought and activated there, unless purchase_country/activation_country say otherwise."""
    countries = {"purchase_country": country, "activation_country": country}
    return Claim(account="a@example.com", product_key="K" * 25, sku=CATALOG[sku], purchased_at=purchased,
                 activated_at=activated if activated is not None else purchased, **(countries | extra))  # type: ignore[arg-type]


def rules(c: Claim, now: datetime = DURING) -> list[str]:
    return OFFER.evaluate(c, now).rules


def test_an_eligible_claim_has_no_failures() -> None:
    decision = OFFER.evaluate(claim(), DURING)
    assert decision.eligible and decision.failures == ()


# ---- R-X1: the eligibility window, purchase and activation, inclusive days in Europe/Copenhagen

ELIGIBILITY_OPENS = datetime(2013, 7, 18, 0, 0, 0, tzinfo=CPH)  # = 2013-07-17T22:00:00Z (CEST)
ELIGIBILITY_CLOSES = datetime(2013, 9, 29, 0, 0, 0, tzinfo=CPH)  # first instant after 2013-09-28


def test_window_bounds_are_the_campaign_zones_midnights() -> None:
    assert OFFER.eligibility.start == datetime(2013, 7, 17, 22, 0, tzinfo=UTC)
    assert OFFER.eligibility.end == datetime(2013, 9, 28, 22, 0, tzinfo=UTC)


@pytest.mark.parametrize(("instant", "inside"), [
    (ELIGIBILITY_OPENS - SECOND, False),
    (ELIGIBILITY_OPENS, True),
    (ELIGIBILITY_OPENS + SECOND, True),
    (ELIGIBILITY_CLOSES - SECOND, True),  # 2013-09-28 23:59:59 in Copenhagen: the last second
    (ELIGIBILITY_CLOSES, False),
    (ELIGIBILITY_CLOSES + SECOND, False),
])
@pytest.mark.parametrize("which", ["purchase", "activation"])
def test_eligibility_window_edges(instant: datetime, inside: bool, which: str) -> None:
    other = datetime(2013, 8, 1, 12, tzinfo=CPH)
    if which == "purchase":
        c = claim(purchased=instant, activated=max(instant, other))
    else:
        c = claim(purchased=min(instant, other), activated=instant)
    decision = OFFER.evaluate(c, DURING)
    reasons = [f.reason for f in decision.failures]
    assert (f"{which}_outside_window" not in reasons) is inside
    if not inside:
        assert "R-X1" in decision.rules


def test_edges_hold_when_the_instant_is_written_in_another_zone() -> None:
    # 2013-09-28 18:59:59 in Buenos Aires (-03:00) is 23:59:59 in Copenhagen: inside.
    assert rules(claim(purchased=datetime(2013, 9, 28, 18, 59, 59, tzinfo=BUENOS_AIRES))) == []
    # 19:00:00 there is already 2013-09-29 in the campaign's zone: outside (R-X1).
    assert rules(claim(purchased=datetime(2013, 9, 28, 19, 0, 0, tzinfo=BUENOS_AIRES))) == ["R-X1"]


@pytest.mark.parametrize(("day", "inside"), [
    (date(2013, 7, 17), False), (date(2013, 7, 18), True), (date(2013, 7, 19), True),
    (date(2013, 9, 27), True), (date(2013, 9, 28), True), (date(2013, 9, 29), False),
])
def test_eligibility_window_edges_for_bare_days(day: date, inside: bool) -> None:
    assert (rules(claim(purchased=day)) == []) is inside


def test_purchase_inside_but_activation_after_the_window_fails_r_x1() -> None:
    decision = OFFER.evaluate(claim(purchased=date(2013, 9, 28), activated=date(2013, 9, 29)), DURING)
    assert [f.reason for f in decision.failures] == ["activation_outside_window"]


# ---- R-X1 / R-X7: the redemption window; it closes after the DST change of 2013-10-27

REDEMPTION_OPENS = datetime(2013, 7, 18, 0, 0, 0, tzinfo=CPH)  # CEST, +02:00
REDEMPTION_CLOSES = datetime(2013, 11, 1, 0, 0, 0, tzinfo=CPH)  # CET, +01:00 after the change


def test_redemption_close_uses_the_winter_offset() -> None:
    assert OFFER.redemption.end == datetime(2013, 10, 31, 23, 0, tzinfo=UTC)  # not 22:00 (summer time)


@pytest.mark.parametrize(("now", "expected"), [
    (REDEMPTION_OPENS - SECOND, ["R-X1"]),
    (REDEMPTION_OPENS, []),
    (REDEMPTION_OPENS + SECOND, []),
    (REDEMPTION_CLOSES - SECOND, []),
    (datetime(2013, 10, 31, 22, 30, tzinfo=UTC), []),  # 23:30 CET: open; wrong if summer time were assumed
    (REDEMPTION_CLOSES, ["R-X7"]),
    (REDEMPTION_CLOSES + SECOND, ["R-X7"]),
])
def test_redemption_window_edges(now: datetime, expected: list[str]) -> None:
    assert rules(claim(), now.astimezone(UTC)) == expected


@pytest.mark.parametrize("now", [
    datetime(2013, 10, 27, 0, 59, 59, tzinfo=UTC),  # 02:59:59 CEST, just before clocks go back
    datetime(2013, 10, 27, 1, 0, 0, tzinfo=UTC),  # 02:00:00 CET, the repeated hour
    datetime(2013, 10, 27, 2, 0, 0, tzinfo=UTC),
])
def test_redemption_open_across_the_dst_change(now: datetime) -> None:
    assert rules(claim(), now) == []


def test_a_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        OFFER.evaluate(claim(), datetime(2013, 9, 1, 12))


@given(st.datetimes(min_value=datetime(2013, 6, 1), max_value=datetime(2013, 12, 31), timezones=st.just(UTC)))
def test_window_membership_is_the_local_day_in_the_campaign_zone(instant: datetime) -> None:
    local_day = instant.astimezone(CPH).date()
    assert OFFER.redemption.contains(instant) == (date(2013, 7, 18) <= local_day <= date(2013, 10, 31))
    assert OFFER.eligibility.contains(instant) == (date(2013, 7, 18) <= local_day <= date(2013, 9, 28))


# ---- R-X2: countries

def test_the_offer_lists_the_38_countries() -> None:
    assert sorted(OFFER.countries) == sorted(COUNTRIES) and len(OFFER.countries) == 38


@pytest.mark.parametrize("country", COUNTRIES)
def test_every_listed_country_qualifies(country: str) -> None:
    assert rules(claim(sku="O365-HOME-ESD", country=country)) == []


@pytest.mark.parametrize("country", ["US", "JP", "IS", "LU", "CN"])
def test_a_country_outside_the_list_fails_r_x2(country: str) -> None:
    decision = OFFER.evaluate(claim(country=country), DURING)
    assert decision.rules == ["R-X2"]
    assert country in decision.failures[0].message


def test_a_declared_country_that_contradicts_the_evidence_fails_r_x17() -> None:
    assert rules(claim(country="DK", declared_country="NO")) == ["R-X17"]
    assert rules(claim(country="DK", declared_country="DK")) == []


# ---- R-X3 / R-X4: products, by SKU list and by attribute

@pytest.mark.parametrize("sku", QUALIFYING)
def test_every_qualifying_sku_qualifies(sku: str) -> None:
    assert rules(claim(sku=sku, country="DE")) == []


@pytest.mark.parametrize("sku", EXCLUDED)
def test_every_excluded_sku_fails_r_x4(sku: str) -> None:
    decision = OFFER.evaluate(claim(sku=sku), DURING)
    assert decision.rules == ["R-X4"]
    assert sku in decision.failures[0].message


def test_attribute_rules_alone_decide_skus_not_in_any_list() -> None:
    from dataclasses import replace
    home_new = replace(CATALOG["O365-HOME-ESD"], sku="O365-HOME-NEW")
    monthly_new = replace(CATALOG["O365-HOME-ANNUAL"], sku="O365-HOME-M2", term="monthly")
    word_2010 = replace(CATALOG["WORD2013"], sku="WORD2010", family="office2010")
    business = replace(CATALOG["O365-HOME-ESD"], sku="O365-BIZ", edition="business")
    assert OFFER.evaluate(replace(claim(), sku=home_new), DURING).rules == []
    assert OFFER.evaluate(replace(claim(), sku=monthly_new), DURING).rules == ["R-X4"]
    assert OFFER.evaluate(replace(claim(), sku=word_2010), DURING).rules == ["R-X4"]
    assert [f.reason for f in OFFER.evaluate(replace(claim(), sku=business), DURING).failures] == ["product_not_qualifying"]


@pytest.mark.parametrize("country", COUNTRIES)
def test_the_military_edition_qualifies_in_every_r_x2_country(country: str) -> None:
    # R-X3 names the military appreciation edition and no country list: it qualifies wherever R-X2 does.
    assert CATALOG["O365-HOME-MIL"].countries is None
    assert rules(claim(sku="O365-HOME-MIL", country=country)) == []


def test_no_shipped_sku_is_limited_to_some_countries() -> None:
    # The documents give no per-country availability (R-X3): none may be assumed.
    assert [s.sku for s in CATALOG.values() if s.countries is not None] == []
    assert OFFER.products.availability == {}


def _with_availability(availability: dict[str, list[str]]) -> PurchaseOffer:
    import tomllib

    data = tomllib.loads(shipped_campaign_text("office365-xbox-gold-2013")) | {"availability": availability}
    return PurchaseOffer.from_dict(data, CATALOG)


@pytest.mark.parametrize(("country", "refused"), [("DE", False), ("GB", False), ("DK", True), ("NO", True)])
def test_a_marketer_set_availability_still_refuses_with_its_own_reason(country: str, refused: bool) -> None:
    offer = _with_availability({"O365-HOME-MIL": ["DE", "GB"]})  # a marketer's list from a real source
    decision = offer.evaluate(claim(sku="O365-HOME-MIL", country=country), DURING)
    assert decision.rules == (["R-X3"] if refused else [])
    if refused:
        assert [f.reason for f in decision.failures] == ["product_not_available_in_country"]
        assert "availability" in decision.failures[0].message and country in decision.failures[0].message
    assert offer.evaluate(claim(sku="O365-HOME-ESD", country=country), DURING).eligible  # other SKUs untouched


def test_availability_follows_the_country_of_purchase() -> None:
    offer = _with_availability({"O365-HOME-MIL": ["DE"]})
    assert offer.evaluate(claim(sku="O365-HOME-MIL", purchase_country="DE", activation_country="DK"), DURING).eligible
    assert offer.evaluate(claim(sku="O365-HOME-MIL", purchase_country="DK", activation_country="DE"), DURING).rules == ["R-X3"]


# ---- R-X8: terms; and all failures together

def test_terms_must_be_accepted_when_asked() -> None:
    assert rules(claim(terms_accepted=False)) == ["R-X8"]
    assert rules(claim(terms_accepted=True)) == []
    assert rules(claim(terms_accepted=None)) == []  # a dry run does not ask


def test_every_failing_rule_is_reported_at_once() -> None:
    c = claim(sku="O365-HOME-TRIAL", country="US", purchased=date(2013, 6, 1), activated=date(2013, 10, 1),
              terms_accepted=False)
    decision = OFFER.evaluate(c, REDEMPTION_CLOSES.astimezone(UTC))
    assert decision.rules == ["R-X1", "R-X2", "R-X4", "R-X7", "R-X8"]
    assert [f.reason for f in decision.failures] == [
        "product_excluded", "country_not_eligible", "purchase_outside_window", "activation_outside_window",
        "redemption_closed", "terms_not_accepted"]
    assert all(f.message for f in decision.failures)


# ---- R-X1: a bare day is that whole day in the campaign's zone, also when ordering purchase
# and activation. Copenhagen is UTC+2 in August: local midnight of 2013-08-02 is 2013-08-01T22:00:00Z.

LOCAL_MIDNIGHT = datetime(2013, 8, 2, 0, 0, 0, tzinfo=CPH)


def _order(c: Claim) -> list[str]:
    return [f.reason for f in OFFER.evaluate(c, DURING).failures if f.reason == "activation_before_purchase"]


def test_the_issue_example_activation_at_01_30_local_on_the_day_of_purchase_qualifies() -> None:
    # 2013-08-01T23:30:00Z is 01:30 on 2013-08-02 in Copenhagen: the day of purchase (issue 15).
    assert rules(claim(purchased=date(2013, 8, 2), activated=datetime(2013, 8, 1, 23, 30, tzinfo=UTC))) == []
    # The reverse: bought at 01:30 on 2013-08-02 local, "activated" on 2013-08-01 local: before.
    assert rules(claim(purchased=datetime(2013, 8, 1, 23, 30, tzinfo=UTC), activated=date(2013, 8, 1))) == ["R-X1"]


@pytest.mark.parametrize(("activated", "in_order"), [
    (LOCAL_MIDNIGHT - SECOND, False),  # 23:59:59 on 2013-08-01 local, the day before the purchase
    (LOCAL_MIDNIGHT, True),
    (LOCAL_MIDNIGHT + SECOND, True),
])
def test_activation_instant_against_a_bare_purchase_day(activated: datetime, in_order: bool) -> None:
    c = claim(purchased=date(2013, 8, 2), activated=activated.astimezone(UTC))
    assert (_order(c) == []) is in_order
    assert OFFER.evaluate(c, DURING).eligible is in_order


@pytest.mark.parametrize(("purchased", "in_order"), [
    (LOCAL_MIDNIGHT - SECOND, True),  # bought 23:59:59 on 2013-08-01 local, activated that day
    (LOCAL_MIDNIGHT, False),  # bought on 2013-08-02 local: a 2013-08-01 activation is before it
    (LOCAL_MIDNIGHT + SECOND, False),
])
def test_purchase_instant_against_a_bare_activation_day(purchased: datetime, in_order: bool) -> None:
    c = claim(purchased=purchased.astimezone(UTC), activated=date(2013, 8, 1))
    assert (_order(c) == []) is in_order
    if not in_order:
        assert OFFER.evaluate(c, DURING).rules == ["R-X1"]


@pytest.mark.parametrize(("purchased", "activated", "in_order"), [
    (date(2013, 8, 1), date(2013, 8, 1), True),
    (date(2013, 8, 2), date(2013, 8, 1), False),
    (LOCAL_MIDNIGHT, LOCAL_MIDNIGHT - SECOND, False),
    (LOCAL_MIDNIGHT, LOCAL_MIDNIGHT, True),
])
def test_order_of_two_days_or_two_instants(purchased: Moment, activated: Moment, in_order: bool) -> None:
    assert (_order(claim(purchased=purchased, activated=activated)) == []) is in_order


def test_activation_before_purchase_is_a_refusal_that_says_so() -> None:
    decision = OFFER.evaluate(claim(purchased=date(2013, 8, 2), activated=date(2013, 8, 1)), DURING)
    assert decision.rules == ["R-X1"]
    assert "activation (2013-08-01) is before the purchase (2013-08-02)" in decision.failures[0].message
    assert "Europe/Copenhagen" in decision.failures[0].message


def test_the_order_follows_the_campaigns_zone() -> None:
    # The same evidence in a campaign kept in UTC: 23:30Z is still 2013-08-01 there, before the purchase day.
    import tomllib

    data = tomllib.loads(shipped_campaign_text("office365-xbox-gold-2013")) | {"timezone": "UTC"}
    in_utc = PurchaseOffer.from_dict(data, CATALOG)
    c = claim(purchased=date(2013, 8, 2), activated=datetime(2013, 8, 1, 23, 30, tzinfo=UTC))
    assert OFFER.evaluate(c, DURING).eligible
    assert [f.reason for f in in_utc.evaluate(c, DURING).failures] == ["activation_before_purchase"]


# Window edges (R-X1) with one fact a bare day and the other an instant, in the campaign's zone.
@pytest.mark.parametrize(("purchased", "activated", "expected"), [
    (date(2013, 7, 18), ELIGIBILITY_OPENS, []),  # first day, activated at its first second
    (date(2013, 7, 17), ELIGIBILITY_OPENS, ["purchase_outside_window"]),
    (ELIGIBILITY_OPENS - SECOND, date(2013, 7, 18), ["purchase_outside_window"]),
    (ELIGIBILITY_OPENS, date(2013, 7, 18), []),
    (date(2013, 9, 28), ELIGIBILITY_CLOSES - SECOND, []),  # last day, activated at its last second
    (date(2013, 9, 28), ELIGIBILITY_CLOSES, ["activation_outside_window"]),
    (ELIGIBILITY_CLOSES - SECOND, date(2013, 9, 28), []),
    (ELIGIBILITY_CLOSES, date(2013, 9, 29), ["purchase_outside_window", "activation_outside_window"]),
    (ELIGIBILITY_CLOSES, date(2013, 9, 28), ["activation_before_purchase", "purchase_outside_window"]),
])
def test_window_edges_with_bare_days_and_instants(purchased: Moment, activated: Moment, expected: list[str]) -> None:
    def utc(m: Moment) -> Moment:
        return m.astimezone(UTC) if isinstance(m, datetime) else m

    decision = OFFER.evaluate(claim(purchased=utc(purchased), activated=utc(activated)), DURING)
    assert [f.reason for f in decision.failures] == expected


# ---- R-X2: bought *and* activated in an eligible country, each checked on its own

@pytest.mark.parametrize(("bought", "activated", "reasons"), [
    ("DK", "NO", []),
    ("DK", "US", ["activation_country_not_eligible"]),
    ("US", "DK", ["purchase_country_not_eligible"]),
    ("US", "US", ["country_not_eligible"]),
    ("US", "JP", ["purchase_country_not_eligible", "activation_country_not_eligible"]),
])
def test_purchase_and_activation_country_are_checked_apart(bought: str, activated: str, reasons: list[str]) -> None:
    decision = OFFER.evaluate(claim(purchase_country=bought, activation_country=activated), DURING)
    assert [f.reason for f in decision.failures] == reasons
    assert set(decision.rules) == ({"R-X2"} if reasons else set())
    for failure in decision.failures:
        assert failure.params["country"] in failure.message
        which = {"purchase_country_not_eligible": "bought in", "activation_country_not_eligible": "activated in",
                 "country_not_eligible": "bought and activated in"}[failure.reason]
        assert which in failure.message


def test_the_declared_country_is_the_country_of_purchase() -> None:
    assert rules(claim(purchase_country="DK", activation_country="NO", declared_country="DK")) == []
    assert rules(claim(purchase_country="DK", activation_country="NO", declared_country="NO")) == ["R-X17"]


# ---- R-X6 / R-X9 data the engine relies on

def test_one_reward_per_account_and_the_stated_code_expiry() -> None:
    assert OFFER.limit_per_account == 1
    assert OFFER.reward.code_expires_on == date(2014, 10, 31)
    assert OFFER.code_expires_at == datetime(2014, 10, 31, 22, 59, 59, 999999, tzinfo=UTC)  # end of day, CET
