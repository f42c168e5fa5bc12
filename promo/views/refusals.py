"""Refusals in plain words, in the user's language: what was wrong and what to do next.
The rule id stays with each refusal as a reference for customer service (the page shows it
in a details element, and the decision log records it), never as the message itself."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promo.campaigns.rules import Failure
from promo.catalog import Sku
from promo.i18n import N_, Localizer
from promo.timeutil import moment_from_db

# What was wrong, per reason (a Failure's stable key). Products by name, never by SKU id.
MESSAGES = {
    "product_excluded": N_("Your product key is for %(product)s, which is not part of this offer."),
    "product_not_qualifying": N_("Your product key is for %(product)s, which is not one of the products in this offer."),
    "product_not_available_in_country": N_("%(product)s bought in %(country)s is not part of this offer."),
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
    "key_not_bound": N_(
        "Our record of this product key does not say which account it belongs to, so we cannot send the code straight "
        "away. Ask for a manual review with your dated receipt: a person checks it and emails you the outcome."),
    "already_redeemed": N_("This account or product key has already redeemed this offer."),
    "key_bound_to_other_account": N_("This product key is tied to another account than the one you are signed in with."),
    "key_already_redeemed": N_("This product key has already been used to redeem this offer."),
    "no_activation_record": N_("We have no record of a purchase and activation for this product key."),
    "no_codes_left": N_("No codes left: every reward code of this offer has been given out."),
    "total_cap_reached": N_("No codes left: every reward of this offer has been given out."),
    "campaign_not_published": N_("This offer has not started."),
    "campaign_paused": N_("This offer is paused for the moment."),
    "held_for_review": N_(
        "An address of the same mailbox has already received this offer's reward, so this request waits for a manual "
        "review. We will email you the decision."),
    "too_many_attempts": N_("There have been too many attempts with product keys that could not be used."),
}

# Links a next step can point to; the page draws each (offer page, manual review, My rewards).
OFFER, REVIEW, REWARDS = "offer", "review", "rewards"
_OTHER_KEY = N_("If you also bought one of the qualifying products, enter its product key instead.")
_OUTSIDE = N_("Only products bought and activated in the offer period qualify. If you think our record is wrong, "
              "contact customer service.")
_ONE_CODE = N_("Each account receives one code: you find yours under My rewards.")
_NO_CODES = N_("Contact customer service if you have questions.")
# What the customer can do next, per reason, and the link that helps them do it.
NEXT_STEPS: dict[str, tuple[str, str | None]] = {
    "product_excluded": (_OTHER_KEY, OFFER),
    "product_not_qualifying": (_OTHER_KEY, OFFER),
    "product_not_available_in_country": (_OTHER_KEY, OFFER),
    "country_not_eligible": (N_("If you have a product bought and activated in one of the offer's countries, "
                                "enter its product key instead."), OFFER),
    "purchase_country_not_eligible": (N_("If you have a product bought and activated in one of the offer's countries, "
                                         "enter its product key instead."), OFFER),
    "activation_country_not_eligible": (N_("If you have a product bought and activated in one of the offer's countries, "
                                           "enter its product key instead."), OFFER),
    "activation_before_purchase": (N_("Customer service can check our record for this product key with you."), None),
    "declared_country_mismatch": (N_("Choose the country where you bought the product and send the form again. "
                                     "If our record is wrong, contact customer service."), None),
    "purchase_outside_window": (_OUTSIDE, None),
    "activation_outside_window": (_OUTSIDE, None),
    "redemption_not_open": (N_("Come back when redemption opens."), OFFER),
    "redemption_closed": (N_("Requests after the redemption period cannot be accepted. If you have questions, "
                             "contact customer service."), None),
    "terms_not_accepted": (N_("Read the terms, tick the box that accepts them and send the form again."), None),
    "account_limit_reached": (_ONE_CODE, REWARDS),
    "already_redeemed": (_ONE_CODE, REWARDS),
    "key_bound_to_other_account": (N_("Sign out, then sign in with the account your Office 365 subscription is tied to."), None),
    "key_already_redeemed": (N_("Each product key can be used once. If you did not use it yourself, contact customer service."),
                             None),
    "no_activation_record": (N_("Check the key for typing errors and try again. If it is right, ask for a manual review "
                                "with your dated receipt."), REVIEW),
    "no_codes_left": (_NO_CODES, None),
    "total_cap_reached": (_NO_CODES, None),
    "campaign_not_published": (N_("See the offer page for when it starts."), OFFER),
    "campaign_paused": (N_("Please try again later."), None),
    "too_many_attempts": (N_("Wait an hour before you try again, or contact customer service."), None),
    "key_not_bound": (N_("Ask for a manual review with your dated receipt: a person checks that the key is yours."), REVIEW),
    "held_for_review": (N_("There is nothing more to do now: a person looks at the request and emails you the decision."),
                        None),
}
# A reason this module does not know yet (a new rule) still reads in the customer's language.
UNKNOWN = (N_("Your request does not meet the rules of this offer."),
           N_("Contact customer service and give them the reference below."))


@dataclass(frozen=True)
class Explained:
    rule: str
    text: str
    next_step: str = ""
    action: str | None = None  # OFFER, REVIEW, REWARDS: the link the page shows with the next step
    reason: str = ""


def explain(failures: tuple[Failure, ...], campaign: Any, l10n: Localizer,
            products: Mapping[str, Sku] | None = None) -> list[Explained]:
    """Each refusal of a purchase offer in the reader's language; `products` names the SKUs
    the failures mention (a product's name in this language, not its SKU id)."""
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
        if "sku" in params:
            sku = (products or {}).get(str(params["sku"]))
            params["product"] = sku.name_in(l10n.lang) if sku else str(params["sku"])
        template = MESSAGES.get(failure.reason)
        next_step, action = NEXT_STEPS.get(failure.reason, (UNKNOWN[1], None))
        text = l10n.gettext(template) % {**values, **params} if template else l10n.gettext(UNKNOWN[0])
        out.append(Explained(failure.rule, text, l10n.gettext(next_step), action, failure.reason))
    return out


def in_words(failure: Failure, messages: Mapping[str, str], l10n: Localizer, params: Mapping[str, Any]) -> Explained:
    """One refusal in the reader's language: its reason's message, translated and filled in
    with `params`; the rule's own (English) message for a reason that has none."""
    template = messages.get(failure.reason)
    return Explained(failure.rule, l10n.gettext(template) % params if template else failure.message)
