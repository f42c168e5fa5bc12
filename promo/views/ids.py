"""Ids in URL paths: written in ASCII digits, canonical (no sign, no leading zero, no
spaces), and within SQLite's signed 64-bit integers. Anything else (`-1`, `+1`, `0x10`,
`1e3`, `²`, `٣`, an id past 64 bits) names nothing: a path with it matches no route (404).
`str.isdigit()` and `int()` accept Unicode digits and any length, and a bind of a number
past 64 bits raised OverflowError: a 500. Ids in a query string (cursors, look-ups) are read
by promo.paging.parse_id, a 400 naming the parameter.

Routes declare their ids as `{name:int64}`; the convertor is registered when promo.views
is imported, before any view module builds its routes.
"""

from __future__ import annotations

from starlette.convertors import Convertor, register_url_convertor

from promo.paging import MAX_ID as INT64_MAX


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


class Int64Convertor(Convertor[int]):
    regex = ID_PATTERN

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        if not 0 <= value <= INT64_MAX:
            raise ValueError(f"{value} is not an id")
        return str(value)


register_url_convertor("int64", Int64Convertor())

