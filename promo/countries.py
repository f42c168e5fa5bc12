"""ISO 3166-1 alpha-2 country codes and their names, from Babel's CLDR data."""

from __future__ import annotations

from functools import lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

from babel import Locale

from promo.errors import InputError

# CLDR territory codes that are two letters but not countries.
_NOT_COUNTRIES = {"EU", "EZ", "UN", "QO", "XA", "XB", "ZZ"}


@lru_cache(maxsize=1)
def country_codes() -> frozenset[str]:
    return frozenset(
        code
        for code in Locale("en").territories
        if isinstance(code, str) and len(code) == 2 and code.isalpha() and code.isupper() and code not in _NOT_COUNTRIES
    )


def country_name(code: str, locale: str = "en") -> str:
    return str(Locale.parse(locale).territories.get(code, code))  # Babel's locale data is untyped


def normalize_country(value: str, field: str = "country") -> str:
    """'dk' -> 'DK'; anything that is not an ISO 3166-1 alpha-2 code is an input error."""
    code = (value or "").strip().upper()
    if not code:
        raise InputError.one(field, "is required (a two-letter ISO country code such as DK)")
    if code not in country_codes():
        raise InputError.one(field, f"{value!r} is not an ISO 3166-1 country code (such as DK, NO, GB)")
    return code


# Territories CLDR counts as countries that zone.tab files under another code; the rest
# without a zone (Bouvet Island, Heard Island, Clipperton) have nobody to show a date to.
_OTHER_ZONES = {"XK": "Europe/Belgrade", "IC": "Atlantic/Canary", "EA": "Africa/Ceuta", "AC": "Atlantic/St_Helena",
                "TA": "Atlantic/St_Helena", "DG": "Indian/Chagos", "CQ": "Europe/Guernsey"}
# Where zone.tab's first zone is not where most people live.
_MAIN_ZONE = {"AU": "Australia/Sydney", "BR": "America/Sao_Paulo", "CA": "America/Toronto", "MX": "America/Mexico_City",
              "RU": "Europe/Moscow", "US": "America/New_York", "CL": "America/Santiago", "ES": "Europe/Madrid",
              "PT": "Europe/Lisbon", "NZ": "Pacific/Auckland"}


@lru_cache(maxsize=1)
def _zones_by_country() -> dict[str, str]:
    table = resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text(encoding="utf-8")
    first: dict[str, str] = {}
    for line in table.splitlines():
        if line and not line.startswith("#"):
            parts = line.split("\t")
            first.setdefault(parts[0], parts[2])
    return {**first, **_OTHER_ZONES, **_MAIN_ZONE}


def country_zone(country: str | None) -> ZoneInfo | None:
    """The zone most people of `country` live in (dates shown to them), if it has one."""
    name = _zones_by_country().get(country or "")
    return ZoneInfo(name) if name else None
