"""Keyset paging for staff lists that can grow: `?before=<id>` and `?after=<id>` cursors
instead of page numbers, so a page costs one index range however deep it is, and a row
added meanwhile never shifts the next page.

A cursor is an id from the list itself, read strictly: ASCII digits only, within SQLite's
64-bit integers. Anything else is a 400 naming the parameter, never a 500 ("²".isdigit()
is True in Python, and int() of a 30-digit string overflows SQLite)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from promo.errors import FieldError, InputError

MAX_ID = 2**63 - 1
PAGE_SIZE = 50
T = TypeVar("T")


def parse_id(raw: str | None, name: str) -> int | None:
    """A row id from a query string or form: None when absent, else digits within 64 bits."""
    if raw is None or raw == "":
        return None
    if len(raw) > 19 or not raw.isascii() or not raw.isdigit():
        raise InputError.one(name, "must be a whole number written with the digits 0-9")
    value = int(raw)
    if value > MAX_ID:
        raise InputError.one(name, f"must be at most {MAX_ID}")
    return value


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a list, in list order, with the query parameters of its neighbours
    (None where there is none)."""

    items: list[T]
    next_query: dict[str, str] | None = None
    prev_query: dict[str, str] | None = None
    prefix: str = ""  # parameter prefix, for a page with more than one paged list

    @property
    def names(self) -> tuple[str, str]:
        return f"{self.prefix}before", f"{self.prefix}after"


@dataclass(frozen=True)
class Keyset:
    """Where a page starts: after or before a row (by its id), or at the list's start.

    `descending`: the list shows the largest ids first (newest first), so its next page
    is `before` the last id shown; an ascending list (oldest first) pages `after` it."""

    before: int | None = None
    after: int | None = None
    size: int = PAGE_SIZE
    descending: bool = True
    prefix: str = ""

    @classmethod
    def from_query(cls, query: Mapping[str, str], *, size: int = PAGE_SIZE, descending: bool = True,
                   prefix: str = "") -> Keyset:
        errors: list[FieldError] = []
        values: dict[str, int | None] = {}
        for name in ("before", "after"):
            try:
                values[name] = parse_id(query.get(prefix + name), prefix + name)
            except InputError as exc:
                errors.extend(exc.errors)
                values[name] = None
        if values["before"] is not None and values["after"] is not None:
            errors.append(FieldError(prefix + "after", f"give either {prefix}before or {prefix}after, not both"))
        if errors:
            raise InputError(errors)
        return cls(values["before"], values["after"], size, descending, prefix)

    @property
    def backward(self) -> bool:
        """Walking towards the start of the list (fetched in the opposite order)."""
        return (self.after is not None) if self.descending else (self.before is not None)

    def sql(self, column: str) -> tuple[str, str, dict[str, Any]]:
        """(condition, ORDER BY, parameters) to fetch this page plus one row, in fetch
        order. `column` is a fixed column name from the caller, never user input."""
        if self.after is not None:
            return f"{column} > :keyset_after", f"{column} ASC", {"keyset_after": self.after, "keyset_limit": self.size + 1}
        if self.before is not None:
            return f"{column} < :keyset_before", f"{column} DESC", {"keyset_before": self.before, "keyset_limit": self.size + 1}
        return "1 = 1", f"{column} {'DESC' if self.descending else 'ASC'}", {"keyset_limit": self.size + 1}

    def page(self, fetched: Sequence[T], key: Callable[[T], int]) -> Page[T]:
        """The page from rows fetched with `sql` (up to size + 1, in fetch order)."""
        more = len(fetched) > self.size
        rows = list(fetched[: self.size])
        started_at_cursor = self.before is not None or self.after is not None
        forward, back = ("before", "after") if self.descending else ("after", "before")
        if self.backward:
            rows.reverse()
            has_prev, has_next = more, bool(rows)
        else:
            has_prev, has_next = started_at_cursor and bool(rows), more
        return Page(rows,
                    {self.prefix + forward: str(key(rows[-1]))} if has_next else None,
                    {self.prefix + back: str(key(rows[0]))} if has_prev else None,
                    self.prefix)

    def page_of_sorted(self, rows: Sequence[T], key: Callable[[T], int],
                       position: Callable[[int], tuple[int, bool] | None]) -> Page[T]:
        """A page of a short list sorted in memory by any column (campaigns). Its next page is
        `after` the last id shown, its previous one `before` the first. `position(id)` says
        where the row with that id falls in `rows`: (index, listed), where an unlisted row
        (filtered out since) gives the index it would take; None if no such row exists."""
        cursor = self.after if self.after is not None else self.before
        start, end = 0, self.size
        if cursor is not None:
            found = position(cursor)
            if found is None:
                name = self.prefix + ("after" if self.after is not None else "before")
                raise InputError.one(name, "names no row of this list; start again from the first page")
            index, listed = found
            if self.after is not None:
                start = index + int(listed)
                end = start + self.size
            else:
                end = index
                start = max(0, end - self.size)
        chunk = list(rows[start:end])
        return Page(chunk,
                    {self.prefix + "after": str(key(chunk[-1]))} if chunk and end < len(rows) else None,
                    {self.prefix + "before": str(key(chunk[0]))} if chunk and start > 0 else None,
                    self.prefix)
