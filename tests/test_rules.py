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
from promo.errors import InputError
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
COUNTRIES = "AR AU AT BE BR CA CL CO CZ DK FI FR DE GR HK HU IE IL IT KR MX NL NZ NO PL PT RU SA SG SK ZA ES SE CH TW TR AE GB".split()


def claim(sku: str = "O365-HOME-ESD", country: str = "DK", purchased: Moment = date(2013, 8, 1),
          activated: Moment | None = None, **extra: object) -> Claim:
    return Claim(account="a@example.com", product_key="K" * 25, sku=CATALOG[sku], country=country,
                 purchased_at=purchased, activated_at=activated if activated is not None else purchased, **extra)


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


@pytest.mark.parametrize(("country", "expected"), [("DE", []), ("GB", []), ("DK", ["R-X3"]), ("NO", ["R-X3"])])
def test_per_country_availability(country: str, expected: list[str]) -> None:
    # The military edition is sold only in some countries (catalog), so it qualifies only there.
    decision = OFFER.evaluate(claim(sku="O365-HOME-MIL", country=country), DURING)
    assert decision.rules == expected
    if expected:
        assert decision.failures[0].reason == "product_not_available_in_country"


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


def test_activation_before_purchase_is_an_input_error_not_a_refusal() -> None:
    with pytest.raises(InputError, match="activated_at: activation .* is before purchase"):
        claim(purchased=date(2013, 8, 2), activated=date(2013, 8, 1))


# ---- R-X6 / R-X9 data the engine relies on

def test_one_reward_per_account_and_the_stated_code_expiry() -> None:
    assert OFFER.limit_per_account == 1
    assert OFFER.reward.code_expires_on == date(2014, 10, 31)
    assert OFFER.code_expires_at == datetime(2014, 10, 31, 22, 59, 59, 999999, tzinfo=UTC)  # end of day, CET
