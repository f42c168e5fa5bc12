"""One case for every refusal reason the redeem form can produce, and the refusal pages a served shop
shows for them in each language."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.support.offer_shop import Shop, account

LANGUAGES = ("en", "da", "nb")


@dataclass(frozen=True)
class Case:
    rule: str
    offer: str
    key: int | str
    account: str
    country: str = "DK"
    terms: bool = True
    sku: str | None = None  # a product refusal names this product


CASES = {
    "product_excluded": Case("R-X4", "open-today", 1, account("excluded"), sku="O365-HOME-TRIAL"),
    "product_not_qualifying": Case("R-X3", "narrow", 2, account("not-qualifying"), sku="O365-HOME-FPP"),
    "product_not_available_in_country": Case("R-X3", "narrow", 3, account("not-here"), "NO", sku="O365-UNI-FPP"),
    "country_not_eligible": Case("R-X2", "open-today", 4, account("elsewhere"), "US"),
    "declared_country_mismatch": Case("R-X17", "open-today", 5, account("mismatch"), "NO"),
    "purchase_outside_window": Case("R-X1", "open-today", 6, account("bought-early")),
    "activation_outside_window": Case("R-X1", "late", 7, account("activated-late")),
    "redemption_not_open": Case("R-X1", "not-yet", 8, account("too-early")),
    "redemption_closed": Case("R-X7", "closed", 9, account("too-late")),
    "terms_not_accepted": Case("R-X8", "open-today", 10, account("no-terms"), terms=False),
    "account_limit_reached": Case("R-X6", "open-today", 12, account("second")),
    "key_bound_to_other_account": Case("R-X5", "open-today", 13, account("not-the-owner")),
    "key_already_redeemed": Case("R-X5", "open-today", 14, account("used-again")),
    "no_activation_record": Case("R-X11", "open-today", "NOKEY-AAAAA-BBBBB-CCCCC-DDDDD", account("typo")),
    "no_codes_left": Case("STOCK", "empty", 15, account("no-codes")),
    "total_cap_reached": Case("STOCK", "capped", 16, account("capped")),
    "campaign_paused": Case("CAMPAIGN", "paused", 18, account("paused")),
    "too_many_attempts": Case("R-X12", "open-today", 10, account("guesser")),  # after guessing until refused
}


def refusal_pages(shop: Shop, languages: tuple[str, ...] = LANGUAGES) -> dict[tuple[str, str], tuple[int, str]]:
    """Each case's refusal page in each language: {(reason, lang): (status, html)}."""
    out = {}
    for reason, case in CASES.items():
        if reason == "too_many_attempts":
            continue
        for lang in languages:
            response = shop.redeem(case.offer, case.key, as_account=case.account, country=case.country, terms=case.terms,
                                   lang=lang)
            out[(reason, lang)] = (response.status_code, response.text)
    # Last, as it limits every account from this address for an hour (R-X12): guess until refused.
    guesser = CASES["too_many_attempts"]
    for n in range(50):
        if shop.redeem("open-today", f"GUESS{n:020d}", as_account=guesser.account).status_code == 429:
            break
    else:
        pytest.fail("guessing was never limited")
    for lang in languages:
        response = shop.redeem(guesser.offer, guesser.key, as_account=guesser.account, lang=lang)
        out[("too_many_attempts", lang)] = (response.status_code, response.text)
    return out
