"""Campaign kind "purchase offer": buy and activate a qualifying product within a window
in an eligible country, then redeem within the redemption window for one reward code
per account. The Office 365 -> Xbox Live Gold offer (R-X1 … R-X9) is one of these."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from promo.campaigns.kind import Issuance
from promo.campaigns.rules import Decision, Failure, matches_any
from promo.campaigns.terms import Terms, parse_terms
from promo.catalog import ATTRIBUTES, CHANNELS, TERMS, Sku
from promo.countries import country_name, normalize_country
from promo.errors import FieldError, InputError
from promo.i18n import languages
from promo.timeutil import DayWindow, Moment, moment_not_before, moment_text, zone

KIND = "purchase_offer"
DEFAULT_CODE_PATTERN = r"^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$"
_RULE_AT_END = re.compile(r" \((R-[A-Z]+\d+)\)$")
# R-X16: a support contact is a web page or a phone number (the documents give phone numbers).
_PHONE = re.compile(r"\+?[0-9][0-9 ()./-]{4,30}")


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
class Reward:
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
    reward: Reward  # R-X9
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

    # ---- the campaign file ---------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], catalog: Mapping[str, Sku]) -> PurchaseOffer:
        return _Parser(data, catalog).parse()

    def to_dict(self) -> dict[str, Any]:
        """The campaign file's content, in its canonical order (export writes this)."""
        products: dict[str, Any] = {
            "qualifying_skus": list(self.products.qualifying_skus),
            "excluded_skus": list(self.products.excluded_skus),
        }
        if self.products.qualifying:
            products["qualifying"] = [{k: list(v) for k, v in m.items()} for m in self.products.qualifying]
        if self.products.excluded:
            products["excluded"] = [{k: list(v) for k, v in m.items()} for m in self.products.excluded]
        data: dict[str, Any] = {
            "slug": self.slug,
            "kind": self.kind,
            "name": self.name,
            "timezone": self.timezone,
            "limit_per_account": self.limit_per_account,
        }
        if self.total_cap is not None:
            data["total_cap"] = self.total_cap
        if self.low_stock_threshold is not None:
            data["low_stock_threshold"] = self.low_stock_threshold
        if self.allow_unbound_keys:
            data["allow_unbound_keys"] = True
        data |= {
            "countries": list(self.countries),
            "eligibility_window": {"first_day": self.eligibility.first_day, "last_day": self.eligibility.last_day},
            "redemption_window": {"first_day": self.redemption.first_day, "last_day": self.redemption.last_day},
            "products": products,
        }
        if self.products.availability:
            data["availability"] = {sku: sorted(c) for sku, c in sorted(self.products.availability.items())}
        data["reward"] = {
            "name": self.reward.name,
            "terms_url": self.reward.terms_url,
            "code_expires_on": self.reward.code_expires_on,
            "code_pattern": self.reward.code_pattern,
        }
        if self.reward.names:
            data["reward"]["names"] = dict(sorted(self.reward.names.items()))
        if self.names:
            data["names"] = dict(sorted(self.names.items()))
        if self.descriptions:
            data["descriptions"] = dict(sorted(self.descriptions.items()))
        if self.sponsors:
            data["sponsors"] = [_sponsor_dict(s) for s in self.sponsors]
        if self.support:
            data["support"] = {"default": self.support.default}
            for route in ("product", "reward"):
                if getattr(self.support, route):
                    data["support"][route] = getattr(self.support, route)
            data["support"]["countries"] = dict(sorted(self.support.countries.items()))
        if self.terms:
            data["terms"] = self.terms.as_list()
        return data


def _sponsor_dict(sponsor: Sponsor) -> dict[str, Any]:
    data: dict[str, Any] = {"region": sponsor.region, "name": sponsor.name, "law": sponsor.law,
                            "countries": list(sponsor.countries)}
    for key, texts in (("names", sponsor.names), ("laws", sponsor.laws)):
        if texts:
            data[key] = dict(sorted(texts.items()))
    return data


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


def _attrs(sku: Sku) -> dict[str, str]:
    return {name: sku.attribute(name) for name in ATTRIBUTES}


class _Parser:
    """Validates a campaign file, collecting every field error before giving up."""

    def __init__(self, data: Mapping[str, Any], catalog: Mapping[str, Sku]):
        self.data, self.catalog = data, catalog
        self.errors: list[FieldError] = []

    def fail(self, field: str, message: str) -> None:
        # "… (R-X6)" at the end of a message is the rule: kept apart for the API's problem details.
        found = _RULE_AT_END.search(message)
        rule = found.group(1) if found else None
        self.errors.append(FieldError(field, message[: found.start()] if found else message, rule=rule))

    def text(self, field: str, source: Mapping[str, Any] | None = None, key: str | None = None) -> str:
        value = (self.data if source is None else source).get(key or field)
        if not isinstance(value, str) or not value.strip():
            self.fail(field, "is required")
            return ""
        return value.strip()

    def day(self, field: str, section: Mapping[str, Any], key: str) -> date | None:
        value = section.get(key)
        if isinstance(value, date) and not isinstance(value, datetime):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        self.fail(field, "must be a date such as 2013-07-18 (an inclusive day in the campaign's time zone)")
        return None

    def table(self, field: str) -> Mapping[str, Any]:
        value = self.data.get(field)
        if not isinstance(value, Mapping):
            self.fail(field, "is required (a table)")
            return {}
        return value

    def window(self, field: str, tz: ZoneInfo | None) -> DayWindow | None:
        section = self.table(field)
        first = self.day(f"{field}.first_day", section, "first_day")
        last = self.day(f"{field}.last_day", section, "last_day")
        if first and last and last < first:
            self.fail(f"{field}.last_day", f"the window ends ({last}) before it starts ({first})")
            return None
        return DayWindow(first, last, tz) if first and last and tz else None

    def sku_list(self, field: str, section: Mapping[str, Any], key: str) -> tuple[str, ...]:
        values = section.get(key, [])
        if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
            self.fail(field, "must be a list of SKU ids")
            return ()
        unknown = [v for v in values if v.upper() not in self.catalog]
        if unknown:
            self.fail(field, f"unknown SKU {', '.join(unknown)}: not in the product catalog")
        return tuple(v.upper() for v in values)

    def matchers(self, field: str, section: Mapping[str, Any], key: str) -> tuple[Mapping[str, tuple[str, ...]], ...]:
        known = {"channel": CHANNELS, "term": TERMS}
        out = []
        for i, matcher in enumerate(section.get(key, [])):
            where = f"{field}[{i}]"
            if not isinstance(matcher, Mapping) or not matcher:
                self.fail(where, "must be a table of attributes, e.g. { channel = [\"trial\"] }")
                continue
            parsed = {}
            for name, values in matcher.items():
                if name not in ATTRIBUTES:
                    self.fail(f"{where}.{name}", f"unknown attribute; use {', '.join(ATTRIBUTES)}")
                    continue
                values = [values] if isinstance(values, str) else values
                if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
                    self.fail(f"{where}.{name}", "must be a non-empty list of values")
                    continue
                bad = [v for v in values if name in known and v not in known[name]]
                if bad:
                    self.fail(f"{where}.{name}", f"unknown {name} {', '.join(bad)}; use {', '.join(known[name])}")
                parsed[name] = tuple(values)
            out.append(parsed)
        return tuple(out)

    def parse(self) -> PurchaseOffer:
        d = self.data
        if d.get("kind", KIND) != KIND:
            self.fail("kind", f"must be {KIND!r} for this campaign kind")
        slug = self.text("slug")
        if slug and not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", slug):
            self.fail("slug", "must be lower-case letters, digits and single dashes")
        name = self.text("name")
        tz_name = self.text("timezone")
        tz = None
        if tz_name:
            try:
                tz = zone(tz_name)
            except InputError as exc:
                self.errors.extend(exc.errors)
        eligibility = self.window("eligibility_window", tz)
        redemption = self.window("redemption_window", tz)
        if eligibility and redemption and redemption.last_day < eligibility.first_day:
            self.fail("redemption_window.last_day", "the redemption window closes before the eligibility window opens")

        countries: list[str] = []
        raw_countries = d.get("countries")
        if not isinstance(raw_countries, list) or not raw_countries:
            self.fail("countries", "must list at least one ISO country code (R-X2)")
        else:
            for value in raw_countries:
                try:
                    countries.append(normalize_country(str(value), "countries"))
                except InputError as exc:
                    self.errors.extend(exc.errors)

        limit = d.get("limit_per_account", 1)
        if not _whole(limit):
            self.fail("limit_per_account", "must be a whole number of at least 1 (R-X6)")
            limit = 1
        total_cap, threshold = d.get("total_cap"), d.get("low_stock_threshold")
        if total_cap is not None and not _whole(total_cap):
            self.fail("total_cap", "must be a whole number of at least 1, or left out for no cap")
            total_cap = None
        if threshold is not None and not _whole(threshold):
            self.fail("low_stock_threshold", "must be a whole number of at least 1, or left out for no alert")
            threshold = None
        allow_unbound_keys = d.get("allow_unbound_keys", False)
        if not isinstance(allow_unbound_keys, bool):
            self.fail("allow_unbound_keys", "must be true or false: false sends a key whose activation record names no account "
                      "to manual review (R-X5)")
            allow_unbound_keys = False

        raw_products = d.get("products")
        section: Mapping[str, Any] = raw_products if isinstance(raw_products, Mapping) else {}
        if not section:
            self.fail("products", "is required: qualifying_skus and/or qualifying attribute rules (R-X3)")
        products = ProductRules(
            qualifying_skus=self.sku_list("products.qualifying_skus", section, "qualifying_skus"),
            qualifying=self.matchers("products.qualifying", section, "qualifying"),
            excluded_skus=self.sku_list("products.excluded_skus", section, "excluded_skus"),
            excluded=self.matchers("products.excluded", section, "excluded"),
            availability=self.availability(),
        )
        if section and not products.qualifying_skus and not products.qualifying:
            self.fail("products", "names no qualifying product (R-X3)")

        reward_section = self.table("reward")
        pattern = reward_section.get("code_pattern", DEFAULT_CODE_PATTERN)
        try:
            re.compile(pattern)
        except (re.error, TypeError):
            self.fail("reward.code_pattern", "is not a valid regular expression")
        terms_url = self.text("reward.terms_url", reward_section, "terms_url")
        if terms_url and not terms_url.startswith(("https://", "http://")):
            self.fail("reward.terms_url", "must be an http(s) link")
        reward = Reward(
            name=self.text("reward.name", reward_section, "name"),
            terms_url=terms_url,
            code_expires_on=self.day("reward.code_expires_on", reward_section, "code_expires_on") or date.min,
            code_pattern=pattern if isinstance(pattern, str) else DEFAULT_CODE_PATTERN,
            names=self.names("reward.names", reward_section, "names"),
        )
        if redemption and reward.code_expires_on != date.min and reward.code_expires_on < redemption.last_day:
            self.fail("reward.code_expires_on", "codes would expire before the redemption window closes (R-X9)")

        unknown = set(d) - {"slug", "kind", "name", "timezone", "limit_per_account", "total_cap",
                            "low_stock_threshold", "allow_unbound_keys", "countries",
                            "eligibility_window", "redemption_window", "products", "availability", "reward",
                            "names", "descriptions", "sponsors", "support", "terms"}
        names = self.names()
        descriptions = self.names("descriptions")
        sponsors = self.sponsors()
        support = self.support()
        terms = parse_terms(d.get("terms"), names, languages(), self.fail)
        for key in sorted(unknown):
            self.fail(key, "unknown setting for a purchase offer")

        if self.errors or eligibility is None or redemption is None:
            raise InputError(self.errors or [FieldError("campaign", "is incomplete")])
        return PurchaseOffer(
            slug=slug,
            name=name,
            timezone=tz_name,
            eligibility=eligibility,
            redemption=redemption,
            countries=tuple(sorted(set(countries))),
            products=products,
            limit_per_account=limit,
            reward=reward,
            names=names,
            descriptions=descriptions,
            sponsors=sponsors,
            support=support,
            terms=terms,
            total_cap=total_cap,
            low_stock_threshold=threshold,
            allow_unbound_keys=allow_unbound_keys,
        )

    def names(self, field: str = "names", source: Mapping[str, Any] | None = None, key: str | None = None) -> Mapping[str, str]:
        """A text per language (names, descriptions): language = "text"."""
        section = (self.data if source is None else source).get(key or field, {})
        if not isinstance(section, Mapping) or not all(isinstance(v, str) and v.strip() for v in section.values()):
            self.fail(field, "must be a table of language = \"text\"")
            return {}
        return dict(section)

    def sponsors(self) -> tuple[Sponsor, ...]:
        entries = self.data.get("sponsors", [])
        out: list[Sponsor] = []
        seen: dict[str, int] = {}
        for i, entry in enumerate(entries if isinstance(entries, list) else []):
            where = f"sponsors[{i}]"
            if not isinstance(entry, Mapping):
                self.fail(where, "must be a table with region, name, law and countries")
                continue
            region, name, law = (self.text(f"{where}.{k}", entry, k) for k in ("region", "name", "law"))
            countries = []
            for value in entry.get("countries", []):
                try:
                    code = normalize_country(str(value), f"{where}.countries")
                except InputError as exc:
                    self.errors.extend(exc.errors)
                    continue
                if code in seen:
                    self.fail(f"{where}.countries", f"{code} already has a sponsor (sponsors[{seen[code]}])")
                seen[code] = i
                countries.append(code)
            out.append(Sponsor(region, name, law, tuple(countries), names=self.names(f"{where}.names", entry, "names"),
                               laws=self.names(f"{where}.laws", entry, "laws")))
        if not isinstance(entries, list):
            self.fail("sponsors", "must be a list of tables ([[sponsors]])")
        return tuple(out)

    def support(self) -> Support | None:
        """R-X16: the three routes; every contact a web page or a phone number."""
        section = self.data.get("support")
        if section is None:
            return None
        if not isinstance(section, Mapping):
            self.fail("support", "must be a table with default, product, reward and countries")
            return None
        for key in sorted(set(section) - {"default", "product", "reward", "countries"}):
            self.fail(f"support.{key}", "unknown setting; use default, product, reward and countries (R-X16)")
        routes = {
            "default": "the general customer service for questions about the redemption",
            "product": "the support for the product bought and its subscription",
            "reward": "the reward's own (limited) customer support",
        }
        contacts = {key: self.contact(f"support.{key}", section.get(key), f"is required: {what} (R-X16)")
                    for key, what in routes.items()}
        countries = {}
        raw_countries = section.get("countries") or {}
        if not isinstance(raw_countries, Mapping):
            self.fail("support.countries", "must be a table of country = \"contact\" (R-X16)")
            raw_countries = {}
        for code, contact in raw_countries.items():
            try:
                country = normalize_country(code, f"support.countries.{code}")
            except InputError as exc:
                self.errors.extend(exc.errors)
                continue
            countries[country] = self.contact(f"support.countries.{code}", contact, "is required (R-X16)")
        return Support(contacts["default"], countries, contacts["product"], contacts["reward"])

    def contact(self, field: str, value: object, missing: str) -> str:
        if not isinstance(value, str) or not value.strip():
            self.fail(field, missing)
            return ""
        value = value.strip()
        is_link = value.startswith(("https://", "http://")) and not any(c.isspace() for c in value)
        if not (is_link or _PHONE.fullmatch(value)):
            self.fail(field, "must be an http(s) link or a phone number such as +45 43 31 60 00 (R-X16)")
        return value

    def availability(self) -> Mapping[str, frozenset[str]]:
        section = self.data.get("availability", {})
        if not isinstance(section, Mapping):
            self.fail("availability", "must be a table of SKU = [countries]")
            return {}
        out = {}
        for sku, countries in section.items():
            field = f"availability.{sku}"
            if sku.upper() not in self.catalog:
                self.fail(field, f"unknown SKU {sku}: not in the product catalog")
            if not isinstance(countries, list) or not countries:
                self.fail(field, "must be a non-empty list of country codes")
                continue
            try:
                out[sku.upper()] = frozenset(normalize_country(str(c), field) for c in countries)
            except InputError as exc:
                self.errors.extend(exc.errors)
        return out
