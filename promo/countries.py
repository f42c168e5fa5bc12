"""ISO 3166-1 alpha-2 country codes and their names, from Babel's CLDR data."""

from __future__ import annotations

from functools import lru_cache

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
    return Locale.parse(locale).territories.get(code, code)


def normalize_country(value: str, field: str = "country") -> str:
    """'dk' -> 'DK'; anything that is not an ISO 3166-1 alpha-2 code is an input error."""
    code = (value or "").strip().upper()
    if not code:
        raise InputError.one(field, "is required (a two-letter ISO country code such as DK)")
    if code not in country_codes():
        raise InputError.one(field, f"{value!r} is not an ISO 3166-1 country code (such as DK, NO, GB)")
    return code
