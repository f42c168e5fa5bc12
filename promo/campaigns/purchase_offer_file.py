"""Reading and writing a purchase offer's campaign file (TOML, or the JSON the store keeps):
every field checked, every error collected with its field and rule before giving up, and the
canonical file written back in a fixed order so that export and import are each other's inverse.
The offer's rules are in purchase_offer.py."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from promo.campaigns.purchase_offer_parts import DEFAULT_CODE_PATTERN, KIND, OfferReward, ProductRules, Sponsor, Support
from promo.campaigns.terms import parse_terms
from promo.catalog import ATTRIBUTES, CHANNELS, TERMS, Sku
from promo.countries import normalize_country
from promo.errors import FieldError, InputError
from promo.i18n import languages
from promo.timeutil import DayWindow, zone

if TYPE_CHECKING:  # for annotations only: purchase_offer.py imports this module
    from promo.campaigns.purchase_offer import PurchaseOffer

_RULE_AT_END = re.compile(r" \((R-[A-Z]+\d+)\)$")
# R-X16: a support contact is a web page or a phone number (the documents give phone numbers).
_PHONE = re.compile(r"\+?[0-9][0-9 ()./-]{4,30}")


def read_offer(build: type[PurchaseOffer], data: Mapping[str, Any], catalog: Mapping[str, Sku]) -> PurchaseOffer:
    """The offer a campaign file describes, built with `build`; an InputError lists every bad field."""
    return _Parser(data, catalog).parse(build)


def offer_to_dict(offer: PurchaseOffer) -> dict[str, Any]:
    """The campaign file's content, in its canonical order (export writes this)."""
    products: dict[str, Any] = {
        "qualifying_skus": list(offer.products.qualifying_skus),
        "excluded_skus": list(offer.products.excluded_skus),
    }
    if offer.products.qualifying:
        products["qualifying"] = [{k: list(v) for k, v in m.items()} for m in offer.products.qualifying]
    if offer.products.excluded:
        products["excluded"] = [{k: list(v) for k, v in m.items()} for m in offer.products.excluded]
    data: dict[str, Any] = {
        "slug": offer.slug,
        "kind": offer.kind,
        "name": offer.name,
        "timezone": offer.timezone,
        "limit_per_account": offer.limit_per_account,
    }
    if offer.total_cap is not None:
        data["total_cap"] = offer.total_cap
    if offer.low_stock_threshold is not None:
        data["low_stock_threshold"] = offer.low_stock_threshold
    if offer.allow_unbound_keys:
        data["allow_unbound_keys"] = True
    data |= {
        "countries": list(offer.countries),
        "eligibility_window": {"first_day": offer.eligibility.first_day, "last_day": offer.eligibility.last_day},
        "redemption_window": {"first_day": offer.redemption.first_day, "last_day": offer.redemption.last_day},
        "products": products,
    }
    if offer.products.availability:
        data["availability"] = {sku: sorted(c) for sku, c in sorted(offer.products.availability.items())}
    data["reward"] = {
        "name": offer.reward.name,
        "terms_url": offer.reward.terms_url,
        "code_expires_on": offer.reward.code_expires_on,
        "code_pattern": offer.reward.code_pattern,
    }
    if offer.reward.names:
        data["reward"]["names"] = dict(sorted(offer.reward.names.items()))
    if offer.names:
        data["names"] = dict(sorted(offer.names.items()))
    if offer.descriptions:
        data["descriptions"] = dict(sorted(offer.descriptions.items()))
    if offer.sponsors:
        data["sponsors"] = [_sponsor_dict(s) for s in offer.sponsors]
    if offer.support:
        data["support"] = {"default": offer.support.default}
        for route in ("product", "reward"):
            if getattr(offer.support, route):
                data["support"][route] = getattr(offer.support, route)
        data["support"]["countries"] = dict(sorted(offer.support.countries.items()))
    if offer.terms:
        data["terms"] = offer.terms.as_list()
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

    def parse(self, build: type[PurchaseOffer]) -> PurchaseOffer:
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
        reward = OfferReward(
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
        return build(
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
