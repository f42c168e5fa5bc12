"""The history of decided review claims (R-X11, R-X12), for support and admins: filtered by
decision, reviewer, campaign and the day it was decided, newest claim first, a page at a time
(paging.Keyset on the claim id, as the decision log pages)."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from promo.errors import FieldError, InputError
from promo.i18n import N_
from promo.paging import Keyset, Page
from promo.reviews import CLAIM_SELECT, Claim, claim_of_row
from promo.timeutil import db_time, query_day_range

DECIDED = ("approved", "rejected")


@dataclass(frozen=True)
class DecidedFilter:
    decision: str | None = None  # approved or rejected
    reviewer: str | None = None  # a staff email, as stored (lower case)
    campaign: str | None = None  # a campaign slug
    since: date | None = None  # inclusive UTC days of the decision
    until: date | None = None

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> DecidedFilter:
        """Validate filters from a query string; InputError names every bad field."""
        errors: list[FieldError] = []

        def get(name: str) -> str | None:
            return (query.get(name) or "").strip() or None

        decision = get("decision")
        if decision and decision not in DECIDED:
            errors.append(FieldError("decision", N_("must be approved or rejected")))
        since, until = query_day_range(dict(query), errors, first=date(2000, 1, 1), last=date(9998, 12, 31),
                                       example="2013-10-01")
        if errors:
            raise InputError(errors)
        reviewer = get("reviewer")
        return cls(decision=decision, reviewer=reviewer.lower() if reviewer else None, campaign=get("campaign"),
                   since=since, until=until)

    def as_query(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items() if v}

    def where(self) -> tuple[str, dict[str, Any]]:
        """Fixed clauses for the filters given; every value is a parameter."""
        clauses, params = ["r.status IN ('approved', 'rejected')"], {}
        if self.decision:
            clauses.append("r.status = :decision")
            params["decision"] = self.decision
        if self.reviewer:
            clauses.append("r.reviewer_email = :reviewer")
            params["reviewer"] = self.reviewer
        if self.campaign:
            clauses.append("c.slug = :campaign")
            params["campaign"] = self.campaign
        if self.since:
            clauses.append("r.decided_at >= :since")
            params["since"] = db_time(datetime.combine(self.since, time(0), tzinfo=UTC))
        if self.until:
            clauses.append("r.decided_at < :until")
            params["until"] = db_time(datetime.combine(self.until + timedelta(days=1), time(0), tzinfo=UTC))
        return " AND ".join(clauses), params


def decided_claims(conn: sqlite3.Connection, flt: DecidedFilter, keyset: Keyset | None = None) -> Page[Claim]:
    """Decided claims matching `flt`, newest claim first, a page at a time."""
    keyset = keyset or Keyset()
    where, params = flt.where()
    condition, order, paging = keyset.sql("r.id")
    sql = CLAIM_SELECT + f" WHERE {where} AND {condition} ORDER BY {order} LIMIT :keyset_limit"  # fixed clauses; values are parameters
    rows = conn.execute(sql, {**params, **paging}).fetchall()
    return keyset.page([claim_of_row(r) for r in rows], lambda claim: claim.id)


@dataclass(frozen=True)
class FilterChoices:
    reviewers: list[str]  # everyone who decided a claim
    campaigns: list[str]  # the slugs of campaigns with a decided claim


def filter_choices(conn: sqlite3.Connection) -> FilterChoices:
    """The values the reviewer and campaign filters offer."""
    people = conn.execute("SELECT DISTINCT reviewer_email FROM review_claims WHERE status IN ('approved', 'rejected')"
                          " AND reviewer_email IS NOT NULL ORDER BY reviewer_email").fetchall()
    campaigns = conn.execute("SELECT slug FROM campaigns WHERE id IN (SELECT campaign_id FROM review_claims"
                             " WHERE status IN ('approved', 'rejected')) ORDER BY slug").fetchall()
    return FilterChoices([r["reviewer_email"] for r in people], [r["slug"] for r in campaigns])
