"""Finding a redemption for support and auditors (issue 19, item 8): by the account, by the
last characters of the product key or of the reward code (what a customer can read out),
or by its id. Keys and codes are matched by their tails through indexes (migration 0021)
and only ever shown masked."""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from promo.backends import Dialect, dialect_of
from promo.backends.sqlite import SQLITE
from promo.errors import InputError
from promo.identifiers import PRODUCT_KEY_LENGTH, mask_code, mask_product_key, normalize_email
from promo.paging import Keyset, Page, parse_id
from promo.timeutil import from_db_time

LOOKUPS = {"account": "Account (email address)", "product_key": "Product key: its last characters",
           "code": "Reward code: its last characters", "id": "Redemption number"}
TAIL = 5  # the indexed tail; a search gives at least this many characters
MAX_CODE = 64
_SEPARATORS = re.compile(r"[\s\-]+")


@dataclass(frozen=True)
class Lookup:
    by: str
    value: str  # normalised: an address, upper-case letters and digits, or an id's digits

    @classmethod
    def from_query(cls, query: dict[str, str]) -> Lookup | None:
        """The search asked for, or None for the empty form; InputError names what is wrong."""
        by, text = (query.get("by") or "account").strip(), (query.get("q") or "").strip()
        if by not in LOOKUPS:
            raise InputError.one("by", f"must be one of {', '.join(LOOKUPS)}")
        if not text:
            return None
        if by == "account":
            return cls(by, normalize_email(text, "q"))
        if by == "id":
            return cls(by, str(parse_id(text, "q")))
        tail = _SEPARATORS.sub("", text).upper()
        longest = PRODUCT_KEY_LENGTH if by == "product_key" else MAX_CODE
        if not (tail.isascii() and tail.isalnum()) or not TAIL <= len(tail) <= longest:
            raise InputError.one("q", f"give the last {TAIL} to {longest} letters and digits (dashes and spaces are ignored)")
        return cls(by, tail)


@dataclass(frozen=True)
class FoundRedemption:
    id: int
    redeemed_at: datetime
    campaign: str
    account: str
    product_key: str  # masked
    code: str  # masked
    client_ip: str | None


_SELECT = {
    # The first table named is the one searched by index; CROSS JOIN keeps SQLite from
    # walking every redemption by id instead (for the ORDER BY) and probing each one.
    "code": "SELECT r.id, r.redeemed_at, c.slug, r.account_email, r.product_key, k.code, r.client_ip"
            " FROM reward_codes k {code_join} redemptions r ON r.code_id = k.id JOIN campaigns c ON c.id = r.campaign_id"
            " WHERE k.issued_at IS NOT NULL AND {code_tail} = :tail AND {code_value} = :value",
    "product_key": "SELECT r.id, r.redeemed_at, c.slug, r.account_email, r.product_key, k.code, r.client_ip"
                   " FROM redemptions r JOIN reward_codes k ON k.id = r.code_id JOIN campaigns c ON c.id = r.campaign_id"
                   " WHERE {key_tail} = :tail AND {key_value} = :value",
    "account": "SELECT r.id, r.redeemed_at, c.slug, r.account_email, r.product_key, k.code, r.client_ip"
               " FROM redemptions r JOIN reward_codes k ON k.id = r.code_id JOIN campaigns c ON c.id = r.campaign_id"
               " WHERE r.account_email = :value",
    "id": "SELECT r.id, r.redeemed_at, c.slug, r.account_email, r.product_key, k.code, r.client_ip"
          " FROM redemptions r JOIN reward_codes k ON k.id = r.code_id JOIN campaigns c ON c.id = r.campaign_id"
          " WHERE r.id = :value",
}


def lookup_sql(lookup: Lookup, keyset: Keyset, dialect: Dialect = SQLITE) -> tuple[str, dict[str, Any]]:
    condition, order, params = keyset.sql("r.id")
    # The tails spelled as the store's expression indexes are (SQLite substr(x, -5), PostgreSQL right(x, 5)).
    select = _SELECT[lookup.by].format(
        code_join="CROSS JOIN" if dialect.name == "sqlite" else "JOIN",  # SQLite's join order; PostgreSQL's needs no hint
        code_tail=dialect.suffix("replace(k.code, '-', '')", str(TAIL)), code_value=dialect.suffix("replace(k.code, '-', '')", ":n"),
        key_tail=dialect.suffix("r.product_key", str(TAIL)), key_value=dialect.suffix("r.product_key", ":n"))
    sql = select + f" AND {condition} ORDER BY {order} LIMIT :keyset_limit"  # fixed pieces only
    value: Any = int(lookup.value) if lookup.by == "id" else lookup.value
    return sql, {**params, "value": value, "tail": lookup.value[-TAIL:], "n": len(lookup.value)}


def find_redemptions(conn: sqlite3.Connection, lookup: Lookup, keyset: Keyset) -> Page[FoundRedemption]:
    sql, params = lookup_sql(lookup, keyset, dialect_of(conn))
    found = [FoundRedemption(r[0], from_db_time(r[1]), r[2], r[3], mask_product_key(r[4]), mask_code(r[5]), r[6])
             for r in conn.execute(sql, params)]
    return keyset.page(found, lambda row: row.id)
