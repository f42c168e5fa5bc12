"""Campaign kind "purchase offer": buy and activate a qualifying product within a window
in an eligible country, then redeem within the redemption window for one reward code
per account. The Office 365 -> Xbox Live Gold offer (R-X1 … R-X9) is one of these.

This module is the offer's rules; its parts (products, reward, sponsors, support) are in
purchase_offer_parts.py and its campaign file is read and written in purchase_offer_file.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import cached_property
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from promo.campaigns.kind import Issuance
from promo.campaigns.purchase_offer_file import offer_to_dict, read_offer
from promo.campaigns.purchase_offer_parts import DEFAULT_CODE_PATTERN, KIND, OfferReward, ProductRules, Sponsor, Support, SupportContact
from promo.campaigns.rules import Decision, Failure
from promo.campaigns.terms import Terms
from promo.catalog import Sku
from promo.countries import country_name
from promo.errors import FieldError, InputError
from promo.timeutil import DayWindow, Moment, moment_not_before, moment_text

# The parts are importable from here, as they were before they had a module of their own.
__all__ = ["DEFAULT_CODE_PATTERN", "KIND", "Claim", "OfferReward", "ProductRules", "PurchaseOffer", "Sponsor", "Support",
           "SupportContact"]


@dataclass(frozen=True)
class Claim:
    """What a redemption asks for, resolved against the purchase evidence."""

    account: str
    product_key: str
    sku: Sku
    purchase_country: str  # R-X2: where the product was bought (from the evidence)
    activation_country: str  # R-X2: where it was activated (from the evidence)
    purchased_at: Moment
    activated_at: Moment
    declared_country: str | None = None  # what the consumer typed, if asked
    terms_accepted: bool | None = None  # None: not asked (dry run)


@dataclass(frozen=True)
class PurchaseOffer:
    slug: str
    name: str
    timezone: str
    eligibility: DayWindow  # R-X1: purchase *and* activation
    redemption: DayWindow  # R-X1 / R-X7
    countries: tuple[str, ...]  # R-X2
    products: ProductRules  # R-X3 / R-X4
    limit_per_account: int  # R-X6
    reward: OfferReward  # R-X9
    names: Mapping[str, str] = field(default_factory=dict)  # the offer's name per language
    descriptions: Mapping[str, str] = field(default_factory=dict)  # a short text per language, shown on the offer page
    sponsors: tuple[Sponsor, ...] = ()  # R-X13
    support: Support | None = None  # R-X16
    terms: Terms | None = None  # R-X17 … R-X22: the offer's own terms, per language
    total_cap: int | None = None  # at most this many rewards in all (None: the pool is the limit)
    low_stock_threshold: int | None = None  # marketers are emailed once when available codes fall below
    # R-X5: a key whose activation record names no account goes to manual review, unless
    # the campaign says otherwise (the demo, where any address may redeem a demo key).
    allow_unbound_keys: bool = False
    kind: str = KIND
    issuance: ClassVar[Issuance] = Issuance.REDEMPTION  # one code per accepted redemption (R-X6)

    def name_in(self, lang: str) -> str:
        return self.names.get(lang, self.name)

    def redemption_window(self) -> DayWindow:
        return self.redemption

    def schedule(self) -> str:
        return f"redeem {self.redemption.first_day}..{self.redemption.last_day}"

    @property
    def console_path(self) -> str:
        return f"/console/campaigns/{self.slug}"

    def description_in(self, lang: str) -> str:
        return self.descriptions.get(lang) or self.descriptions.get("en", "")

    def sponsor_for(self, country: str) -> Sponsor | None:
        return next((s for s in self.sponsors if country in s.countries), None)

    def support_route(self, country: str) -> SupportContact | None:
        """R-X16: customer service for customers in `country` (the general contact, said as
        such, where it has none of its own); None when the campaign names no support."""
        return self.support.route_for(country) if self.support else None

    @cached_property
    def residence_countries(self) -> tuple[str, ...] | None:
        """R-X13: where a customer may live for this offer: the countries its sponsors cover
        (None: no sponsor mapping, so any country)."""
        if not self.sponsors:
            return None
        return tuple(sorted({c for s in self.sponsors for c in s.countries}))

    def sponsor_for_residence(self, country: str) -> Sponsor | None:
        """R-X13: the sponsor (and law) for a customer who lives in `country`. The terms map
        regions, not countries; when this campaign's mapping has no sponsor for the country,
        Promo does not guess one: an InputError names the residence_country field."""
        sponsor = self.sponsor_for(country)
        if sponsor is None and self.sponsors:
            raise InputError(FieldError(
                "residence_country", f"the offer's terms name no sponsor or governing law for customers who live in "
                f"{country_name(country)} ({country}); they do for {', '.join(self.residence_countries or ())}",
                rule="R-X13"))
        return sponsor

    def is_open(self, now: datetime) -> bool:
        return self.redemption.contains(now)

    def in_order(self, purchased_at: Moment, activated_at: Moment) -> bool:
        """Activation at or after purchase, a bare day being that whole day in the campaign's zone."""
        return moment_not_before(activated_at, purchased_at, self.tz)

    @property
    def tz(self) -> ZoneInfo:
        return self.eligibility.tz

    @property
    def code_pattern(self) -> str:
        return self.reward.code_pattern

    @property
    def code_products(self) -> tuple[str, ...]:
        """One pool for the whole offer: code files name no product."""
        return ()

    @cached_property  # frozen: computed once per parsed offer
    def code_expires_at(self) -> datetime:
        """The last instant a code may be activated (end of code_expires_on, campaign zone)."""
        day_after = datetime.combine(self.reward.code_expires_on + timedelta(days=1), time(0), tzinfo=self.tz)
        return day_after.astimezone(UTC) - timedelta(microseconds=1)

    def evaluate(self, claim: Claim, now: datetime) -> Decision:
        """Every rule of the offer that this claim fails, at instant `now` (aware)."""
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        failures = self._product(claim) + self._country(claim) + self._eligibility_window(claim)
        return Decision(tuple(failures + self.request_failures(now, claim.terms_accepted)))

    def request_failures(self, now: datetime, terms_accepted: bool | None) -> list[Failure]:
        """The rules about the request itself, which hold even without purchase evidence."""
        return self._redemption_window(now) + self._terms(terms_accepted)

    def _product(self, claim: Claim) -> list[Failure]:
        sku, rules = claim.sku, self.products
        if rules.is_excluded(sku):
            return [Failure("R-X4", "product_excluded", f"{sku.name} ({sku.sku}) is excluded from this offer", {"sku": sku.sku})]
        if not rules.is_qualifying(sku):
            return [Failure("R-X3", "product_not_qualifying", f"{sku.name} ({sku.sku}) is not a qualifying product", {"sku": sku.sku})]
        country = claim.purchase_country  # availability is where the product is sold
        if not rules.available_in(sku, country):
            return [
                Failure(
                    "R-X3",
                    "product_not_available_in_country",
                    f"{sku.sku} is not part of this offer in {country_name(country)} ({country}) "
                    "(the campaign's per-country availability)",
                    {"sku": sku.sku, "country": country},
                )
            ]
        return []

    def _country(self, claim: Claim) -> list[Failure]:
        """R-X2: bought *and* activated in an eligible country, each checked on its own."""
        failures = []
        bought, activated = claim.purchase_country, claim.activation_country
        of_the_offer = f"which is not one of the offer's {len(self.countries)} countries"
        if bought == activated and bought not in self.countries:  # one place: one refusal that names both facts
            failures.append(Failure("R-X2", "country_not_eligible",
                                    f"the product was bought and activated in {country_name(bought)} ({bought}), "
                                    f"{of_the_offer}", {"country": bought}))
        else:
            for what, reason, country in (("bought", "purchase_country_not_eligible", bought),
                                          ("activated", "activation_country_not_eligible", activated)):
                if country not in self.countries:
                    failures.append(Failure("R-X2", reason, f"the product was {what} in {country_name(country)} "
                                            f"({country}), {of_the_offer}", {"country": country}))
        if claim.declared_country and claim.declared_country != bought:
            failures.append(
                Failure(
                    "R-X17",
                    "declared_country_mismatch",
                    f"the country of purchase given ({claim.declared_country}) does not match the "
                    f"activation record for this product key ({bought})",
                    {"declared": claim.declared_country, "recorded": bought},
                )
            )
        return failures

    def _eligibility_window(self, claim: Claim) -> list[Failure]:
        window, failures = self.eligibility, []
        if not self.in_order(claim.purchased_at, claim.activated_at):
            failures.append(
                Failure(
                    "R-X1",
                    "activation_before_purchase",
                    f"the activation ({moment_text(claim.activated_at)}) is before the purchase "
                    f"({moment_text(claim.purchased_at)}) in the campaign's zone ({self.timezone})",
                    {"purchased": moment_text(claim.purchased_at), "activated": moment_text(claim.activated_at)},
                )
            )
        for what, moment in (("purchase", claim.purchased_at), ("activation", claim.activated_at)):
            if not window.contains(moment):
                failures.append(
                    Failure(
                        "R-X1",
                        f"{what}_outside_window",
                        f"the {what} ({moment_text(moment)}) is outside the eligibility window, "
                        f"{window.first_day} to {window.last_day} inclusive ({self.timezone})",
                        {"moment": moment_text(moment)},
                    )
                )
        return failures

    def _redemption_window(self, now: datetime) -> list[Failure]:
        window = self.redemption
        if window.is_before(now):
            return [Failure("R-X1", "redemption_not_open", f"redemption opens on {window.first_day} ({self.timezone})")]
        if not window.contains(now):
            return [Failure("R-X7", "redemption_closed", f"the redemption window closed at the end of {window.last_day} ({self.timezone})")]
        return []

    def _terms(self, terms_accepted: bool | None) -> list[Failure]:
        if terms_accepted is False:
            return [Failure("R-X8", "terms_not_accepted", "the reward's terms of use must be accepted before redeeming")]
        return []

    # ---- the campaign file (purchase_offer_file.py reads and writes it) -------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], catalog: Mapping[str, Sku]) -> PurchaseOffer:
        return read_offer(cls, data, catalog)

    def to_dict(self) -> dict[str, Any]:
        """The campaign file's content, in its canonical order (export writes this)."""
        return offer_to_dict(self)
