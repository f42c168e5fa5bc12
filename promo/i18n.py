"""Languages: gettext catalogs (Babel .po files, compiled in memory at start-up, so adding a
language is adding promo/locale/<lang>/LC_MESSAGES/messages.po), negotiation, and
locale-aware dates and country names from Babel's CLDR data."""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, lru_cache
from importlib import resources
from zoneinfo import ZoneInfo

from babel import Locale, dates
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

DEFAULT = "en"


def N_(message: str) -> str:
    """Mark a string for extraction; it is translated where it is shown."""
    return message


class Phrase(str):
    """A message with values, composed where the reader's language is not known: the English
    text itself (what logs, tests and the CLI read), and the catalog's message with its values
    for a page to say in its reader's language (`_(p.message, **p.values)` in a template,
    `in_language` in a view)."""

    message: str
    values: dict[str, object]

    def __new__(cls, message: str, **values: object) -> Phrase:
        phrase = super().__new__(cls, message % values if values else message)
        phrase.message, phrase.values = message, values
        return phrase


def in_language(message: str, gettext: Callable[[str], str]) -> str:
    """`message` as the reader's catalog has it: a Phrase with its values filled in again, a
    plain marked message translated, any other text unchanged (a catalog without it)."""
    if isinstance(message, Phrase):
        return gettext(message.message) % message.values if message.values else gettext(message.message)
    return gettext(message)


@lru_cache(maxsize=1)
def languages() -> tuple[str, ...]:
    """English (the source language) plus every catalog under promo/locale."""
    found = [entry.name for entry in resources.files("promo.locale").iterdir()
             if entry.is_dir() and entry.joinpath("LC_MESSAGES", "messages.po").is_file()]
    return (DEFAULT, *sorted(found))


@cache
def translations(lang: str) -> NullTranslations:
    if lang == DEFAULT:
        return NullTranslations()
    po = resources.files("promo.locale").joinpath(lang, "LC_MESSAGES", "messages.po")
    with po.open("rb") as handle:
        catalog = read_po(handle, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer)


def negotiate(choice: str | None, accept_language: str | None) -> str:
    """The user's explicit choice, else the best Accept-Language match, else English."""
    available = languages()
    if choice in available:
        return str(choice)
    for tag, _quality in _parse_accept(accept_language or ""):
        primary = tag.split("-")[0]
        # Norwegian: "no" and "nn" readers are served Bokmål, the catalog we have.
        for candidate in (tag, primary, "nb" if primary in ("no", "nn") else None):
            if candidate in available:
                return candidate
    return DEFAULT


def region_of(accept_language: str | None) -> str | None:
    """The region the reader's most preferred language names (da-DK -> DK, en-GB -> GB), or
    None when it names none ("da", "en"): a bare language says nothing of where one lives,
    and later, less preferred tags (a Danish reader's "en-US;q=0.7") are not a place either."""
    preferred = _parse_accept(accept_language or "")
    if not preferred:
        return None
    subtags = preferred[0][0].replace("_", "-").split("-")
    return next((sub.upper() for sub in subtags[1:] if len(sub) == 2 and sub.isascii() and sub.isalpha()), None)


_CACHED_HEADER_LENGTH = 200  # a browser's Accept-Language is far shorter; longer ones are parsed each time


def _parse_accept(header: str) -> tuple[tuple[str, float], ...]:
    """The header's language tags, most preferred first. Every page reads it twice (the
    language and the region), and browsers send few distinct values: short ones are parsed once
    per process (issue 18: per-request overhead)."""
    if not header:
        return ()
    return _parse_accept_cached(header) if len(header) <= _CACHED_HEADER_LENGTH else _parse_accept_text(header)


def _parse_accept_text(header: str) -> tuple[tuple[str, float], ...]:
    out = []
    for part in header.split(","):
        pieces = part.strip().split(";")
        tag = pieces[0].strip().lower()
        if not tag or tag == "*":
            continue
        quality = 1.0
        for param in pieces[1:]:
            if param.strip().startswith("q="):
                try:
                    quality = float(param.strip()[2:])
                except ValueError:
                    quality = 0.0
        out.append((tag, quality))
    return tuple(sorted((t for t in out if t[1] > 0), key=lambda t: -t[1]))


_parse_accept_cached = lru_cache(maxsize=512)(_parse_accept_text)


@cache
def _locale(lang: str) -> Locale:
    return Locale.parse(lang)


@dataclass(frozen=True)
class Localizer:
    """What a page or email needs to speak the user's language."""

    lang: str

    def gettext(self, message: str) -> str:
        return translations(self.lang).gettext(message)

    def date(self, value: date) -> str:
        return _long_date(self.lang, value)

    def datetime(self, value: datetime, tz: ZoneInfo) -> str:
        """The instant in zone tz, with the zone's name at that instant (CEST in summer, CET in winter)."""
        local = value.astimezone(tz)
        return dates.format_datetime(local, format="medium", tzinfo=tz, locale=self.lang) + \
            " " + dates.get_timezone_name(local, width="short", locale=self.lang)

    def country(self, code: str) -> str:
        return _country_name(self.lang, code)

    def zone_name(self, tz: ZoneInfo) -> str:
        """A time zone as its readers know it: its city in their language and its IANA name
        ("København (Europe/Copenhagen)"), or the name alone where it has no city (UTC)."""
        return _zone_name(self.lang, tz.key)

    def language_name(self, lang: str) -> str:
        return _language_name(lang)

    def countries(self, codes: tuple[str, ...] | frozenset[str]) -> tuple[tuple[str, str], ...]:
        """(code, name) pairs sorted by name in this language, for a form's country list."""
        return _countries_by_name(self.lang, tuple(codes))


# Pages show the same few dates and names over and over (a form lists 38 countries, a
# refusal names the windows' days); Babel takes tens of microseconds for each.
@lru_cache(maxsize=4096)
def _long_date(lang: str, value: date) -> str:
    return dates.format_date(value, format="long", locale=lang)


@lru_cache(maxsize=4096)
def _country_name(lang: str, code: str) -> str:
    return str(_locale(lang).territories.get(code, code))  # Babel's locale data is untyped


@lru_cache(maxsize=256)
def _zone_name(lang: str, key: str) -> str:
    city = dates.get_timezone_location(ZoneInfo(key), locale=lang, return_city=True)
    return key if not city or city == key or key.startswith("Etc/") else f"{city} ({key})"


@lru_cache(maxsize=256)
def _countries_by_name(lang: str, codes: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(((code, _country_name(lang, code)) for code in codes), key=lambda pair: pair[1]))


@cache
def _language_name(lang: str) -> str:
    return _locale(lang).get_display_name(lang) or lang
