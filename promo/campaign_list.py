"""The console's campaign list: search by name or slug, filter by state, sort by a column,
one page at a time (issue 19, item 8).

A campaign's state depends on the clock and its redemption window in its own zone, so it
is not a column to filter on in SQL. The list reads a light projection of every offer
(a few fields pulled out of the stored JSON, nothing parsed into campaign objects),
decides states, filters and sorts in memory, and loads in full only the campaigns of the
page shown. Campaigns number in the hundreds, not millions; the expensive part of the old
list (a stock count and a parse per campaign) now happens per page only."""

from __future__ import annotations

import functools
import sqlite3
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from promo.backends import dialect_of
from promo.campaign_store import STATES, StoredCampaign, get_campaign
from promo.errors import FieldError, InputError
from promo.paging import Keyset, Page
from promo.timeutil import DayWindow

SORTS = ("slug", "name", "status", "opens")
MAX_SEARCH = 100


@dataclass(frozen=True)
class CampaignQuery:
    q: str = ""
    state: str = ""
    sort: str = "slug"
    descending: bool = False

    @classmethod
    def from_query(cls, query: dict[str, str]) -> CampaignQuery:
        errors = []
        q = (query.get("q") or "").strip()
        state = (query.get("state") or "").strip()
        sort = (query.get("sort") or "slug").strip()
        direction = (query.get("dir") or "asc").strip()
        if len(q) > MAX_SEARCH:
            errors.append(FieldError("q", f"search for at most {MAX_SEARCH} characters"))
        if state and state not in STATES:
            errors.append(FieldError("state", f"must be one of {', '.join(STATES)}"))
        if sort not in SORTS:
            errors.append(FieldError("sort", f"must be one of {', '.join(SORTS)}"))
        if direction not in ("asc", "desc"):
            errors.append(FieldError("dir", "must be asc or desc"))
        if errors:
            raise InputError(errors)
        return cls(q, state, sort, direction == "desc")

    def as_query(self) -> dict[str, str]:
        """The query string that shows this list again (defaults left out)."""
        out = {"q": self.q, "state": self.state}
        if self.sort != "slug" or self.descending:
            out.update(sort=self.sort, dir="desc" if self.descending else "asc")
        return {k: v for k, v in out.items() if v}


@dataclass(frozen=True)
class _Row:
    id: int
    slug: str
    name: str
    names: str  # the names in every language, for the search
    status: str
    opens: str

    def key(self, sort: str) -> tuple[Any, ...]:
        value = {"slug": self.slug, "name": self.name.casefold(), "status": STATES.index(self.status),
                 "opens": self.opens}[sort]
        return (value, self.slug, self.id)


def _status(published_at: str | None, paused_at: str | None, first: str | None, last: str | None, zone: str | None,
            now: datetime) -> str:
    """StoredCampaign.status, from the stored fields alone."""
    if published_at is None:
        return "draft"
    if not (first and last and zone):  # a donation program has no redemption window
        return "paused" if paused_at else "live"
    window = DayWindow(date.fromisoformat(first), date.fromisoformat(last), ZoneInfo(zone))
    if window.is_before(now):
        return "scheduled"
    if not window.contains(now):
        return "ended"
    return "paused" if paused_at else "live"


def _rows(conn: sqlite3.Connection, kind: str, now: datetime) -> list[_Row]:
    member = functools.partial(dialect_of(conn).json_text, "definition")
    members = ", ".join(member(path) for path in ("name", "names", "timezone", "redemption_window.first_day",
                                                  "redemption_window.last_day"))
    rows = conn.execute(f"SELECT id, slug, {members}, published_at, paused_at FROM campaigns WHERE kind = :kind",  # fixed
                        {"kind": kind}).fetchall()
    return [_Row(r[0], r[1], r[2] or r[1], r[3] or "", _status(r[7], r[8], r[5], r[6], r[4], now), r[5] or "")
            for r in rows]


def list_page(conn: sqlite3.Connection, query: CampaignQuery, keyset: Keyset, *, kind: str,
              now: datetime) -> tuple[Page[StoredCampaign], int]:
    """The page of campaigns of `kind` that `query` finds, and how many it finds in all."""
    every = sorted(_rows(conn, kind, now), key=lambda r: r.key(query.sort), reverse=query.descending)
    needle = query.q.casefold()
    found = [r for r in every
             if (not needle or needle in r.slug.casefold() or needle in r.name.casefold() or needle in r.names.casefold())
             and (not query.state or r.status == query.state)]
    by_id = {r.id: r for r in every}

    def position(row_id: int) -> tuple[int, bool] | None:
        cursor = by_id.get(row_id)
        if cursor is None:
            return None
        for index, row in enumerate(found):
            if row.id == row_id:
                return index, True
            if (row.key(query.sort) > cursor.key(query.sort)) != query.descending:
                return index, False  # filtered out since: the next row after where it was
        return len(found), False

    page = keyset.page_of_sorted(found, lambda r: r.id, position)
    stored = [get_campaign(conn, r.slug) for r in page.items]
    return Page(stored, page.next_query, page.prev_query, page.prefix), len(found)
