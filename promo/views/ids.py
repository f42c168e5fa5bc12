"""Ids in URLs: one strict parser for every id in a path or a query string.

An id is a row id of SQLite: written in ASCII digits, canonical (no sign, no leading zero,
no spaces), and within SQLite's signed 64-bit integers. Anything else (`-1`, `+1`, `0x10`,
`1e3`, `²`, `٣`, an id past 64 bits) names nothing: a path with it matches no route (404),
and a query parameter with it is an InputError naming the parameter (400). `str.isdigit()`
and `int()` accept Unicode digits and any length, and a bind of a number past 64 bits
raised OverflowError: a 500.

Routes declare their ids as `{name:int64}`; the convertor is registered when promo.views
is imported, before any view module builds its routes.
"""

from __future__ import annotations

import re

from starlette.convertors import Convertor, register_url_convertor

from promo.errors import InputError

INT64_MAX = 2**63 - 1


def _at_most(bound: str) -> str:
    """A regular expression for the canonical decimals with as many digits as `bound`, up to it."""
    alternatives = []
    for i, digit in enumerate(bound):
        low = 1 if i == 0 else 0
        if int(digit) > low:
            alternatives.append(f"{bound[:i]}[{low}-{int(digit) - 1}][0-9]{{{len(bound) - i - 1}}}")
    return "|".join([*alternatives, bound])


_LONGEST = len(str(INT64_MAX))
ID_PATTERN = f"0|[1-9][0-9]{{0,{_LONGEST - 2}}}|{_at_most(str(INT64_MAX))}"
_ID = re.compile(ID_PATTERN)


class Int64Convertor(Convertor[int]):
    regex = ID_PATTERN

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 0 <= value <= INT64_MAX:
            raise ValueError(f"{value} is not an id")
        return str(value)


register_url_convertor("int64", Int64Convertor())


def parse_id(text: str, field: str) -> int:
    """An id from a query string or a form; InputError naming `field` otherwise."""
    if not _ID.fullmatch(text):
        raise InputError.one(field, f"must be an id: digits 0-9 only, at most {INT64_MAX}")
    return int(text)
