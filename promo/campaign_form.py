"""The console's campaign form <-> a campaign definition (the same dict a campaign file holds).

The form only turns text into the definition's shape; every rule about what a valid
campaign is lives in the campaign kind's parser, so the console, the CLI and the API
give the same field-level messages. Fields the form does not edit (sponsors) are carried
over from the campaign being edited. The offer's terms (R-X17 … R-X22) are edited section by
section, `terms[i].title.<lang>` and so on, with one empty section to add a new one."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from promo.campaigns.purchase_offer import PurchaseOffer
from promo.catalog import ATTRIBUTES
from promo.errors import FieldError, InputError
from promo.form_sentences import sentence

TEXTAREAS = ("products.qualifying", "products.excluded", "availability")
OPTIONAL_NUMBERS = ("total_cap", "low_stock_threshold")
# Where each field of the definition is edited on the form (errors are shown there).
FORM_FIELDS = ("slug", "name", "names", "descriptions", "timezone", "eligibility_window.first_day", "eligibility_window.last_day",
               "redemption_window.first_day", "redemption_window.last_day", "countries", "products.qualifying_skus",
               "products.excluded_skus", *TEXTAREAS, "products", "limit_per_account", *OPTIONAL_NUMBERS, "allow_unbound_keys",
               "reward.names", "reward.name", "reward.terms_url", "reward.code_expires_on", "reward.code_pattern",
               *(f"support.{route}" for route in ("default", "product", "reward", "countries")))
SUPPORT_ROUTES = ("default", "product", "reward")  # R-X16: redemption (general), product, reward
TERMS_TEXTS = ("title", "text", "summary")
_TERMS_KEY = re.compile(r"terms\[(\d+)\]\.")
_TERMS_FIELD = re.compile(r"terms\[\d+\]\.(id|rules|(title|text|summary)\.[a-z]{2,3})")


def definition_from_form(form: Mapping[str, Any], base: Mapping[str, Any] | None, languages: tuple[str, ...]) -> dict[str, Any]:
    """The definition a submitted form describes; InputError for text the form cannot read
    (a malformed attribute line), before the campaign's own validation runs."""
    def get(name: str) -> str:
        return str(form.get(name) or "").strip()

    getlist: Callable[[str], list[Any]] = form.getlist if hasattr(form, "getlist") else lambda name: list(form.get(name) or [])
    errors: list[FieldError] = []
    data: dict[str, Any] = {
        "slug": get("slug") or (base or {}).get("slug", ""),
        "kind": (base or {}).get("kind", PurchaseOffer.kind),  # the form edits purchase offers
        "name": get("name"),
        "timezone": get("timezone"),
        "limit_per_account": _number(get("limit_per_account")) if get("limit_per_account") else 1,
        "countries": [str(c) for c in getlist("countries")],
        "eligibility_window": {"first_day": get("eligibility_window.first_day"), "last_day": get("eligibility_window.last_day")},
        "redemption_window": {"first_day": get("redemption_window.first_day"), "last_day": get("redemption_window.last_day")},
        "products": {
            "qualifying_skus": _in_base_order(getlist("products.qualifying_skus"), base, "qualifying_skus"),
            "excluded_skus": _in_base_order(getlist("products.excluded_skus"), base, "excluded_skus"),
            "qualifying": _matchers(get("products.qualifying"), "products.qualifying", errors),
            "excluded": _matchers(get("products.excluded"), "products.excluded", errors),
        },
        "reward": {"name": get("reward.name"), "terms_url": get("reward.terms_url"),
                   "code_expires_on": get("reward.code_expires_on"), "code_pattern": get("reward.code_pattern")},
    }
    for name in OPTIONAL_NUMBERS:
        if get(name):
            data[name] = _number(get(name))
    if checked := get("allow_unbound_keys"):  # a checkbox, "yes"; unticked is the default, false (R-X5)
        data["allow_unbound_keys"] = True if checked == "yes" else checked  # anything else: the parser names the field
    availability = _availability(get("availability"), errors)
    if availability:
        data["availability"] = availability
    for key in ("names", "descriptions"):
        texts = {lang: get(f"{key}.{lang}") for lang in languages if get(f"{key}.{lang}")}
        if texts:
            data[key] = texts
    reward_names = {lang: get(f"reward.names.{lang}") for lang in languages if get(f"reward.names.{lang}")}
    if reward_names:
        data["reward"]["names"] = reward_names
    if not data["reward"]["code_pattern"]:
        del data["reward"]["code_pattern"]  # the kind's default (Xbox: XXXXX-XXXXX-XXXXX-XXXXX-XXXXX)
    support = _support(get, errors)
    if support:
        data["support"] = support
    terms = terms_from_form(form, languages)
    if terms:
        data["terms"] = terms
    if base and "sponsors" in base:
        data["sponsors"] = base["sponsors"]
    if errors:
        raise InputError(errors)
    return data


def form_from_definition(data: Mapping[str, Any], languages: tuple[str, ...]) -> dict[str, Any]:
    """Values to fill the form with (lists stay lists, for checkboxes)."""
    products = data.get("products", {})
    reward = data.get("reward", {})
    values: dict[str, Any] = {
        "slug": data.get("slug", ""), "name": data.get("name", ""), "timezone": data.get("timezone", ""),
        "limit_per_account": str(data.get("limit_per_account", 1)),
        "countries": list(data.get("countries", [])),
        "products.qualifying_skus": list(products.get("qualifying_skus", [])),
        "products.excluded_skus": list(products.get("excluded_skus", [])),
        "products.qualifying": _matcher_text(products.get("qualifying", [])),
        "products.excluded": _matcher_text(products.get("excluded", [])),
        "availability": "\n".join(f"{sku}: {', '.join(c)}" for sku, c in data.get("availability", {}).items()),
        "reward.name": reward.get("name", ""), "reward.terms_url": reward.get("terms_url", ""),
        "reward.code_expires_on": str(reward.get("code_expires_on", "")), "reward.code_pattern": reward.get("code_pattern", ""),
    }
    for window in ("eligibility_window", "redemption_window"):
        for end in ("first_day", "last_day"):
            values[f"{window}.{end}"] = str(data.get(window, {}).get(end, ""))
    for name in OPTIONAL_NUMBERS:
        values[name] = str(data[name]) if name in data else ""
    values["allow_unbound_keys"] = "yes" if data.get("allow_unbound_keys") is True else ""
    for lang in languages:
        values[f"names.{lang}"] = data.get("names", {}).get(lang, "")
        values[f"descriptions.{lang}"] = data.get("descriptions", {}).get(lang, "")
        values[f"reward.names.{lang}"] = reward.get("names", {}).get(lang, "")
    support = data.get("support", {})
    for route in SUPPORT_ROUTES:
        values[f"support.{route}"] = support.get(route, "")
    values["support.countries"] = "\n".join(f"{c}: {contact}" for c, contact in support.get("countries", {}).items())
    return values | terms_values(data.get("terms", []), languages)


def terms_values(sections: list[Mapping[str, Any]], languages: tuple[str, ...]) -> dict[str, str]:
    """Form values for the terms, section i as terms[i].…, and no others."""
    values = {}
    for i, section in enumerate(sections):
        values[f"terms[{i}].id"] = str(section.get("id", ""))
        values[f"terms[{i}].rules"] = ", ".join(section.get("rules", []))
        for key in TERMS_TEXTS:
            for lang in languages:
                values[f"terms[{i}].{key}.{lang}"] = section.get(key, {}).get(lang, "")
    return values


def with_terms_of(values: dict[str, Any], data: Mapping[str, Any] | None, languages: tuple[str, ...]) -> dict[str, Any]:
    """The posted values with the terms as the definition holds them: sections removed or left
    empty are gone, so section i on the form is terms[i] in the errors."""
    if data is None:
        return values
    kept = {k: v for k, v in values.items() if not _TERMS_KEY.match(k)}
    return kept | terms_values(data.get("terms", []), languages)


def terms_slots(values: Mapping[str, Any]) -> range:
    """The sections the form shows: every section with a value, then one empty to add a section."""
    used = [int(m.group(1)) for k, v in values.items() if (m := _TERMS_KEY.match(k)) and str(v).strip()]
    return range(max(used, default=-1) + 2)


def terms_from_form(form: Mapping[str, Any], languages: tuple[str, ...]) -> list[dict[str, Any]]:
    """The sections in form order; one marked for removal, or left empty, is left out."""
    def get(name: str) -> str:
        return str(form.get(name) or "").replace("\r\n", "\n").strip()

    indices = sorted({int(m.group(1)) for k in form.keys() if (m := _TERMS_KEY.match(k))})
    sections = []
    for i in indices:
        if get(f"terms[{i}].remove"):
            continue
        section: dict[str, Any] = {"id": get(f"terms[{i}].id")}
        rules = [r for r in re.split(r"[\s,]+", get(f"terms[{i}].rules")) if r]
        if rules:
            section["rules"] = rules
        for key in TERMS_TEXTS:
            texts = {lang: get(f"terms[{i}].{key}.{lang}") for lang in languages if get(f"terms[{i}].{key}.{lang}")}
            if texts or key != "summary":
                section[key] = texts
        if section["id"] or any(section.get(key) for key in TERMS_TEXTS) or rules:
            sections.append(section)
    return sections


def _support(get: Any, errors: list[FieldError]) -> dict[str, Any]:
    """R-X16: the three routes and the per-country contacts (`DK: https://…` per line)."""
    support: dict[str, Any] = {route: get(f"support.{route}") for route in SUPPORT_ROUTES if get(f"support.{route}")}
    countries: dict[str, str] = {}
    for number, line in enumerate(get("support.countries").splitlines(), start=1):
        if not line.strip():
            continue
        country, sep, contact = line.partition(":")
        if not sep or not country.strip() or not contact.strip():
            errors.append(FieldError("support.countries", "write each line as country: contact, e.g. DK: https://…",
                                     line=number))
            continue
        countries[country.strip().upper()] = contact.strip()
    if countries:
        support["countries"] = countries
    return support


def errors_by_field(errors: list[FieldError], gettext: Callable[[str], str] = str) -> dict[str, list[str]]:
    """Each error under the form field it belongs to ('products.qualifying[0].channel' is
    shown at 'products.qualifying'); anything else under '' (top of the form). The common
    ones read as sentences in the reader's language (promo/form_sentences.py)."""
    out: dict[str, list[str]] = {}
    for error in errors:
        if (said := sentence(error, gettext)) is not None:
            out.setdefault(error.field, []).append(f"{said[:-1]} ({error.rule})." if error.rule else said)
            continue
        where = error.field.split("[")[0]
        target = next((f for f in FORM_FIELDS if where == f or where.startswith(f + ".")), "")
        if where.startswith("availability"):
            target = "availability"
        elif where == "terms":  # at its section's field when the form has one, else atop the terms
            target = error.field if _TERMS_FIELD.fullmatch(error.field) else "terms"
        line = f"line {error.line}: " if error.line is not None else ""
        detail = f"{error.field}: " if target and error.field != target else ""
        rule = f" ({error.rule})" if error.rule else ""
        out.setdefault(target, []).append(f"{line}{detail}{error.message}{rule}")
    return out


def _in_base_order(checked: list[Any], base: Mapping[str, Any] | None, key: str) -> list[str]:
    """Checkboxes come back in catalog order; keep the campaign's own order for SKUs it
    already listed, so saving an unchanged form records no change."""
    before = list((base or {}).get("products", {}).get(key, []))
    chosen = [str(s) for s in checked]
    return [s for s in before if s in chosen] + [s for s in chosen if s not in before]


def _number(text: str) -> int | str:
    # Digits become a number; anything else goes to the parser as is, which names the field.
    digits = text.removeprefix("-")
    return int(text) if digits.isascii() and digits.isdigit() else text  # "²".isdigit() is True; int("²") fails


def _matchers(text: str, field: str, errors: list[FieldError]) -> list[dict[str, list[str]]]:
    """One rule per line: `channel=trial,nfr; term=monthly` (every attribute must match)."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        matcher: dict[str, list[str]] = {}
        for part in line.split(";"):
            name, sep, values = part.partition("=")
            name = name.strip().lower()
            if not sep or not name:
                errors.append(FieldError(field, f"write each rule as attribute=value[,value] joined by ';' "
                                         f"(attributes: {', '.join(ATTRIBUTES)})", line=number))
                break
            matcher[name] = [v.strip() for v in values.split(",") if v.strip()]
        else:
            out.append(matcher)
    return out


def _matcher_text(matchers: list[Mapping[str, list[str]]]) -> str:
    return "\n".join("; ".join(f"{name}={','.join(values)}" for name, values in m.items()) for m in matchers)


def _availability(text: str, errors: list[FieldError]) -> dict[str, list[str]]:
    """One SKU per line: `O365-HOME-MIL: US, GB`."""
    out: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        sku, sep, countries = line.partition(":")
        if not sep or not sku.strip():
            errors.append(FieldError("availability", "write each line as SKU: country, country", line=number))
            continue
        out[sku.strip().upper()] = [c.strip() for c in countries.split(",") if c.strip()]
    return out
