"""The parts of a purchase offer that its campaign file describes: which products qualify
(R-X3, R-X4), the reward (R-X9, R-X15), the sponsors (R-X13) and the support routes (R-X16).
Values only; the offer's rules are in purchase_offer.py, its file in purchase_offer_file.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date

from promo.campaigns.rules import matches_any
from promo.catalog import ATTRIBUTES, Sku

KIND = "purchase_offer"
DEFAULT_CODE_PATTERN = r"^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$"


@dataclass(frozen=True)
class ProductRules:
    qualifying_skus: tuple[str, ...]
    qualifying: tuple[Mapping[str, tuple[str, ...]], ...]
    excluded_skus: tuple[str, ...]
    excluded: tuple[Mapping[str, tuple[str, ...]], ...]
    availability: Mapping[str, frozenset[str]]  # SKU -> the only countries it qualifies in

    def is_excluded(self, sku: Sku) -> bool:
        return sku.sku in self.excluded_skus or matches_any(_attrs(sku), self.excluded)

    def is_qualifying(self, sku: Sku) -> bool:
        return sku.sku in self.qualifying_skus or matches_any(_attrs(sku), self.qualifying)

    def available_in(self, sku: Sku, country: str) -> bool:
        allowed = self.availability.get(sku.sku)
        return sku.sold_in(country) and (allowed is None or country in allowed)


@dataclass(frozen=True)
class OfferReward:
    """The reward an offer promises (its [reward] table); what an account was issued is
    promo.rewards.Reward."""

    name: str  # in English
    terms_url: str
    code_expires_on: date  # R-X9: the code must be activated by this day
    code_pattern: str
    names: Mapping[str, str] = field(default_factory=dict)  # the name per language (R-X15)

    def name_in(self, lang: str) -> str:
        """The reward's name for a reader of `lang`; the English `name` where it has none."""
        return self.names.get(lang, self.name)


@dataclass(frozen=True)
class Sponsor:
    """R-X13: who sponsors the offer, and under which law, for customers in these countries."""

    region: str
    name: str
    law: str
    countries: tuple[str, ...]
    names: Mapping[str, str] = field(default_factory=dict, compare=False)  # name and address per language
    laws: Mapping[str, str] = field(default_factory=dict, compare=False)  # the law per language

    def name_in(self, lang: str) -> str:
        return self.names.get(lang, self.name)

    def law_in(self, lang: str) -> str:
        return self.laws.get(lang, self.law)


@dataclass(frozen=True)
class SupportContact:
    contact: str
    general: bool  # True: the country has no contact of its own; this is the default

    @property
    def is_link(self) -> bool:
        return self.contact.startswith(("https://", "http://"))


@dataclass(frozen=True)
class Support:
    """R-X16: three support routes: the redemption's customer service per country (with a
    general default), the purchased product's support, and the reward's own (limited) support."""

    default: str
    countries: Mapping[str, str]
    product: str = ""  # the Office 365 product and its subscription
    reward: str = ""  # Xbox Live Gold: limited customer support

    def route_for(self, country: str) -> SupportContact:
        """The redemption contact for customers in `country`; a country without its own is
        given the default, marked as general so pages and emails say so."""
        own = self.countries.get(country)
        return SupportContact(own, False) if own else SupportContact(self.default, True)


def _attrs(sku: Sku) -> dict[str, str]:
    return {name: sku.attribute(name) for name in ATTRIBUTES}
