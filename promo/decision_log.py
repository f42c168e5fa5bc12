"""The decision log for auditors: every redemption attempt with its rules, code (masked),
email state; filtered, paged by key (so exports of any size stream in bounded chunks)."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from promo.errors import FieldError, InputError
from promo.identifiers import mask_code, mask_product_key, normalize_email
from promo.timeutil import db_time, from_db_time, query_day_range

RULE_ID = re.compile(r"^(R-[A-Z]{1,2}\d{1,2}|STOCK)$")
OUTCOMES = ("redeemed", "refused")


def _account(typed: str) -> str:
    """An account as it is stored (bob@bücher.example is bob@xn--bcher-kva.example); a search
    for something outside the grammar simply finds nothing."""
    try:
        return normalize_email(typed, "account")
    except InputError:
        return typed.lower()


@dataclass(frozen=True)
class AttemptFilter:
    campaign: str | None = None
    outcome: str | None = None
    rule: str | None = None
    country: str | None = None
    account: str | None = None
    since: date | None = None  # inclusive UTC days
    until: date | None = None

    @classmethod
    def from_query(cls, query: dict[str, str]) -> AttemptFilter:
        """Validate filters from a query string; InputError names every bad field."""
        errors: list[FieldError] = []

        def get(name: str) -> str | None:
            return (query.get(name) or "").strip() or None

        outcome, rule, country = get("outcome"), get("rule"), get("country")
        if outcome and outcome not in OUTCOMES:
            errors.append(FieldError("outcome", "must be redeemed or refused"))
        if rule and not RULE_ID.match(rule.upper()):
            errors.append(FieldError("rule", "must be a rule id such as R-X2 (or STOCK)"))
        if country and not re.fullmatch(r"[A-Za-z]{2}", country):
            errors.append(FieldError("country", "must be a two-letter country code"))
        # The day after `until` must exist: no 9999-12-31. Days given out of order simply match nothing.
        since, until = query_day_range(query, errors, first=date.min, last=date.max - timedelta(days=1),
                                       example="2013-10-01", in_order=False)
        if errors:
            raise InputError(errors)
        account = get("account")
        return cls(campaign=get("campaign"), outcome=outcome, rule=rule.upper() if rule else None,
                   country=country.upper() if country else None, account=_account(account) if account else None,
                   since=since, until=until)

    def as_query(self) -> dict[str, str]:
        return {k: str(v) for k, v in self.__dict__.items() if v}

    def where(self) -> tuple[str, dict[str, Any]]:
        clauses, params = [], {}
        if self.campaign:
            clauses.append("c.slug = :campaign")
            params["campaign"] = self.campaign
        if self.outcome:
            clauses.append("a.outcome = :outcome")
            params["outcome"] = self.outcome
        if self.rule:
            clauses.append("a.failed_rules LIKE :rule")
            params["rule"] = f"% {self.rule} %"
        if self.country:
            clauses.append("a.country = :country")
            params["country"] = self.country
        if self.account:
            clauses.append("a.account_email = :account")
            params["account"] = self.account
        if self.since:
            clauses.append("a.attempted_at >= :since")
            params["since"] = db_time(datetime.combine(self.since, time(0), tzinfo=UTC))
        if self.until:
            clauses.append("a.attempted_at < :until")
            params["until"] = db_time(datetime.combine(self.until + timedelta(days=1), time(0), tzinfo=UTC))
        return " AND ".join(clauses) or "1 = 1", params


@dataclass(frozen=True)
class AttemptRow:
    id: int
    attempted_at: datetime
    campaign: str
    account: str
    product_key: str  # masked
    sku: str | None
    country: str | None
    outcome: str
    rules: list[str]
    code: str | None  # masked
    email_status: str | None
    email_error: str | None
    client_ip: str | None

    def as_dict(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        out["attempted_at"] = self.attempted_at.isoformat().replace("+00:00", "Z")
        return out


_SELECT = (
    "SELECT a.id, a.attempted_at, c.slug, a.account_email, a.product_key, a.sku, a.country, a.outcome, a.failed_rules,"
    " k.code, o.status, o.last_error, a.client_ip"
    " FROM redemption_attempts a JOIN campaigns c ON c.id = a.campaign_id"
    " LEFT JOIN redemptions r ON r.id = a.redemption_id LEFT JOIN reward_codes k ON k.id = r.code_id"
    " LEFT JOIN outbox o ON o.id = (SELECT MIN(id) FROM outbox WHERE subject_ref = 'redemption:' || r.id)"
)


def _row(r: sqlite3.Row) -> AttemptRow:
    return AttemptRow(r[0], from_db_time(r[1]), r[2], r[3], mask_product_key(r[4]), r[5], r[6], r[7], r[8].split(),
                      mask_code(r[9]) if r[9] else None, r[10], r[11], r[12])


def query_attempts(conn: sqlite3.Connection, flt: AttemptFilter, *, before_id: int | None = None,
                   after_id: int | None = None, limit: int = 100) -> list[AttemptRow]:
    """Newest first; pass the last id seen as before_id for the next page. With after_id,
    the attempts just newer than it, oldest first (the way back, see paging.Keyset)."""
    where, params = flt.where()
    order = "DESC"
    if after_id is not None:
        where += " AND a.id > :after"
        params["after"], order = after_id, "ASC"
    elif before_id is not None:
        where += " AND a.id < :before"
        params["before"] = before_id
    sql = _SELECT + " WHERE " + where + f" ORDER BY a.id {order} LIMIT :limit"  # where: fixed clauses, values are parameters
    return [_row(r) for r in conn.execute(sql, {**params, "limit": limit})]


def count_attempts(conn: sqlite3.Connection, flt: AttemptFilter) -> int:
    where, params = flt.where()
    sql = "SELECT COUNT(*) FROM redemption_attempts a JOIN campaigns c ON c.id = a.campaign_id WHERE " + where
    return int(conn.execute(sql, params).fetchone()[0])


def attempt_detail(conn: sqlite3.Connection, attempt_id: int) -> dict[str, Any] | None:
    row = conn.execute(_SELECT + " WHERE a.id = :id", {"id": attempt_id}).fetchone()
    if row is None:
        return None
    attempt = _row(row)
    raw = conn.execute("SELECT product_key, redemption_id, result FROM redemption_attempts WHERE id = :id", {"id": attempt_id}).fetchone()
    activation = conn.execute(
        "SELECT sku, country AS purchase_country, COALESCE(activation_country, country) AS activation_country, purchased_at,"
        " activated_at, account_email, imported_at FROM activations WHERE product_key = :k",
        {"k": raw["product_key"]}).fetchone()
    emails = conn.execute(
        "SELECT message_id, template, status, attempts, last_error, created_at, sent_at FROM outbox WHERE subject_ref = :s ORDER BY id",
        {"s": f"redemption:{raw['redemption_id']}"}).fetchall() if raw["redemption_id"] else []
    events = conn.execute(
        "SELECT seq, tag, actor, created_at, data FROM audit_events WHERE subject = :s OR (subject = :c AND created_at = :t) ORDER BY seq",
        {"s": f"redemption:{raw['redemption_id']}", "c": f"campaign:{attempt.campaign}",
         "t": db_time(attempt.attempted_at)}).fetchall()
    # R-X13 / R-X22: where the customer said they live, and the version of the terms accepted.
    accepted = conn.execute(
        "SELECT residence_country, terms_version, terms_accepted_at FROM redemptions WHERE id = :id",
        {"id": raw["redemption_id"]}).fetchone() if raw["redemption_id"] else None
    return {"attempt": attempt, "failures": json.loads(raw["result"]).get("failures", []),
            "activation": dict(activation) if activation else None, "accepted": dict(accepted) if accepted else None,
            "emails": [dict(e) for e in emails], "events": [dict(e) for e in events]}
