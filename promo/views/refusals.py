"""Refusals in plain words, in the user's language, each citing its rule id."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promo.campaigns.rules import Failure
from promo.i18n import N_, Localizer
from promo.timeutil import moment_from_db

MESSAGES = {
    "product_excluded": N_("%(sku)s is excluded from this offer."),
    "product_not_qualifying": N_("%(sku)s is not a qualifying product for this offer."),
    "product_not_available_in_country": N_("%(sku)s is not part of this offer in %(country)s."),
    "country_not_eligible": N_("The product was bought and activated in %(country)s, which is not one of the offer's countries."),
    "purchase_country_not_eligible": N_("The product was bought in %(country)s, which is not one of the offer's countries."),
    "activation_country_not_eligible": N_(
        "The product was activated in %(country)s, which is not one of the offer's countries."),
    "activation_before_purchase": N_(
        "Our record for this product key shows it activated before it was bought, so it cannot qualify as it stands. "
        "Please contact customer service."),
    "declared_country_mismatch": N_(
        "The country of purchase you gave (%(declared)s) does not match our activation record for this product key (%(recorded)s)."),
    "purchase_outside_window": N_("The product was bought outside the offer period, %(first)s to %(last)s."),
    "activation_outside_window": N_("The product was activated outside the offer period, %(first)s to %(last)s."),
    "redemption_not_open": N_("Redemption opens on %(first_redeem)s."),
    "redemption_closed": N_("The redemption period ended on %(last_redeem)s."),
    "terms_not_accepted": N_("You must accept the terms of use of the reward before redeeming."),
    "account_limit_reached": N_("This account has already received its reward code for this offer."),
    "key_bound_to_other_account": N_(
        "This product key belongs to another account. Sign in with the account your subscription is tied to."),
    "key_already_redeemed": N_("This product key has already been used to redeem this offer."),
    "key_not_bound": N_(
        "Our record of this product key does not say which account it belongs to, so we cannot send the code straight "
        "away. Ask for a manual review with your dated receipt: a person checks it and emails you the outcome."),
    "no_activation_record": N_(
        "We have no record of a purchase and activation for this product key. Check the key, and keep your dated receipt."),
    "no_codes_left": N_("No codes left: every reward code of this offer has been given out."),
    "already_redeemed": N_("This account or product key has already redeemed this offer."),
    "campaign_not_published": N_("This offer has not started."),
    "campaign_paused": N_("This offer is paused for the moment. Please try again later."),
    "total_cap_reached": N_("No codes left: every reward of this offer has been given out."),
    "too_many_attempts": N_(
        "Too many attempts with product keys that could not be used. Try again in an hour, or contact customer service."),
}


@dataclass(frozen=True)
class Explained:
    rule: str
    text: str


def explain(failures: tuple[Failure, ...], campaign: Any, l10n: Localizer) -> list[Explained]:
    values = {
        "first": l10n.date(campaign.eligibility.first_day), "last": l10n.date(campaign.eligibility.last_day),
        "first_redeem": l10n.date(campaign.redemption.first_day), "last_redeem": l10n.date(campaign.redemption.last_day),
    }
    out = []
    for failure in failures:
        params = dict(failure.params)
        for key in ("country", "declared", "recorded"):
            if key in params:
                params[key] = l10n.country(str(params[key]))
        if "moment" in params:
            params["moment"] = l10n.date(moment_from_db(str(params["moment"])[:10]))
        out.append(in_words(failure, MESSAGES, l10n, {**values, **params}))
    return out


def in_words(failure: Failure, messages: Mapping[str, str], l10n: Localizer, params: Mapping[str, Any]) -> Explained:
    """One refusal in the reader's language: its reason's message, translated and filled in
    with `params`; the rule's own (English) message for a reason that has none."""
    template = messages.get(failure.reason)
    return Explained(failure.rule, l10n.gettext(template) % params if template else failure.message)
