"""Reward code pools: import (all or nothing), claiming one code, stock by status."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import IO, Any
from zoneinfo import ZoneInfo

from promo.audit import append_event
from promo.backends import ask, dialect_of
from promo.backends.bulk import insert_each  # the store's own way: COPY and a staging table on PostgreSQL
from promo.campaigns.kind import CampaignKind
from promo.csvfile import ErrorList, open_text, records
from promo.db import larger_cache, transaction
from promo.errors import FieldError, InputError
from promo.identifiers import normalize_code
from promo.paging import Keyset, Page
from promo.timeutil import db_time, from_db_time, parse_moment


@dataclass(frozen=True)
class ImportReport:
    batch_id: int
    imported: int


@dataclass(frozen=True)
class ClaimedCode:
    id: int
    code: str
    expires_at: datetime


@dataclass(frozen=True)
class WantedCode:
    """What a claim asks for: a free code of the campaign still valid at `not_expiring_before`
    (R-X9), issued at `now`."""
    campaign_id: int
    not_expiring_before: datetime
    now: datetime


_CodeRow = tuple[int, int, str, str, str | None, int]  # campaign, batch, code, expires_at, sku, source line


def import_codes(
    conn: sqlite3.Connection,
    *,
    campaign_id: int,
    campaign: CampaignKind,
    source: IO[bytes] | str,
    source_name: str,
    now: datetime,
    actor: str = "cli",
) -> ImportReport:
    """Import a CSV (header `code`, optional `expires_at`) into the campaign's pool.

    Everything is checked while rows stream into one transaction; any error (format,
    duplicate in the file or in the database) rolls the whole file back and is reported
    with its line number. Call on a connection outside any transaction.
    """
    pattern = re.compile(campaign.code_pattern)
    fullmatch = pattern.fullmatch
    products = set(campaign.code_products)  # empty: one pool for the campaign
    per_product = bool(products)
    default_expiry = db_time(campaign.code_expires_at)
    tz = campaign.tz
    errors = ErrorList()

    def valid_rows(stream: IO[str], batch_id: int) -> Iterator[_CodeRow]:
        # The hot loop of a million-row import: tuples, not dicts, all the way to SQLite,
        # and nothing kept per row (duplicates are found by the unique index, below).
        required = ("code", "sku") if per_product else ("code",)
        for line, values in records(stream, ("code", "expires_at", "sku"), required, ("expires_at",)):
            if isinstance(values, str):
                errors.add(FieldError("row", values, line=line))
                continue
            raw_code, raw_expiry, raw_sku = values
            code = normalize_code(raw_code)
            if not fullmatch(code):
                errors.add(FieldError("code", f"does not match the pool's pattern {pattern.pattern}", line=line))
                continue
            expires = default_expiry
            if raw_expiry:
                try:
                    expires = _expiry(raw_expiry, tz)
                except InputError as exc:
                    errors.extend(exc.errors, line)
                    continue
            sku = raw_sku.upper() or None
            if per_product and sku not in products:
                errors.add(FieldError("sku", f"{raw_sku!r} is not one of the program's products", line=line))
                continue
            yield campaign_id, batch_id, code, expires, sku, line

    with larger_cache(conn), transaction(conn):  # all or nothing: any error below rolls the file back
        batch_id = conn.execute(
            "INSERT INTO code_batches (campaign_id, source, code_count, imported_at) VALUES (:c, :s, 0, :t)",
            {"c": campaign_id, "s": source_name, "t": db_time(now)},
        ).lastrowid
        assert batch_id is not None

        def refused(row: _CodeRow) -> bool:
            _campaign, _batch, code, _expires, _sku, line = row
            error = _duplicate(conn, code, line=line, batch_id=batch_id)
            if error is not None:
                errors.add(error)
            return error is not None

        with open_text(source) as stream:
            imported = insert_each(conn, "INSERT INTO reward_codes (campaign_id, batch_id, code, expires_at, sku, source_line)"
                                   " VALUES (?, ?, ?, ?, ?, ?)", valid_rows(stream, batch_id), refused)
        if not imported and not errors.total:
            errors.add(FieldError("file", "holds no codes"))
        errors.raise_if_any()
        conn.execute("UPDATE code_batches SET code_count = :n WHERE id = :b", {"n": imported, "b": batch_id})
        append_event(conn, tag="codes:batch:imported", actor=actor, subject=f"campaign:{campaign.slug}", at=now,
                     data={"batch": batch_id, "source": source_name, "codes": imported})
    return ImportReport(batch_id=batch_id, imported=imported)


def _duplicate(conn: sqlite3.Connection, code: str, *, line: int, batch_id: int) -> FieldError | None:
    """The error for a code the unique index refused: earlier in this file, or already
    pooled. None: the code is not stored, so the refusal was not about it."""
    row = conn.execute("SELECT batch_id, source_line FROM reward_codes WHERE code = :code", {"code": code}).fetchone()
    if row is None:
        return None
    if row["batch_id"] == batch_id:
        return FieldError("code", f"duplicate of line {row['source_line']}", line=line)
    return FieldError("code", "already in a code pool", line=line)


def _expiry(value: str, tz: ZoneInfo) -> str:
    moment = parse_moment(value, "expires_at")
    if isinstance(moment, datetime):
        return db_time(moment)
    # A bare day: the code is valid through that whole day in the campaign's zone.
    end = datetime.combine(moment + timedelta(days=1), time(0), tzinfo=tz)
    return db_time(end.astimezone(UTC) - timedelta(microseconds=1))



# The codes issuable now, earliest-expiring first; written once for the three statements below.
_FREE = ("FROM reward_codes WHERE campaign_id = :campaign AND issued_at IS NULL AND voided_at IS NULL"
         " AND expires_at >= :min_expiry")
_FIRST = " ORDER BY expires_at, id LIMIT 1"
_FREE_CODE = "SELECT id, code, expires_at " + _FREE + _FIRST
# The claim and the mark in one statement (one round trip on PostgreSQL, issue 18): the
# subquery takes the free code (skipping those other transactions hold), the UPDATE issues it.
_TAKE_FREE_CODE = ("UPDATE reward_codes SET issued_at = :now WHERE issued_at IS NULL AND id = (SELECT id " + _FREE + _FIRST
                   + "{skip_locked}) RETURNING id, code, expires_at")
_ANY_FREE_CODE = "SELECT EXISTS (SELECT 1 " + _FREE + ")"


def claim_code(conn: sqlite3.Connection, *, campaign_id: int, not_expiring_before: datetime, now: datetime) -> ClaimedCode | None:
    """Take the earliest-expiring code that is still valid at `not_expiring_before`
    (the campaign's stated expiry, R-X9). Call inside the redemption's transaction."""
    wanted = WantedCode(campaign_id, not_expiring_before, now)
    return claimed(conn, ask_claim(conn, wanted), wanted)


def ask_claim(conn: sqlite3.Connection, wanted: WantedCode) -> Any:
    """claim_code's common case, asked now and read later (claimed): a free code taken and
    marked issued in one statement. PostgreSQL: no two claims wait for one code (SKIP LOCKED)."""
    params = _free_params(wanted) | {"now": db_time(wanted.now)}
    return ask(conn, lambda: conn.execute(_TAKE_FREE_CODE.format(skip_locked=dialect_of(conn).skip_locked), params))


def _free_params(wanted: WantedCode) -> dict[str, object]:
    """The parameters of _FREE: the campaign, and the earliest expiry a code may have (R-X9)."""
    return {"campaign": wanted.campaign_id, "min_expiry": db_time(max(wanted.not_expiring_before, wanted.now))}


def claimed(conn: sqlite3.Connection, asked: Any, wanted: WantedCode) -> ClaimedCode | None:
    """claim_code's answer from what ask_claim(conn, wanted) asked."""
    dialect, now, params = dialect_of(conn), wanted.now, _free_params(wanted)
    taken = asked.fetchone()
    if taken is not None:
        return ClaimedCode(id=taken["id"], code=taken["code"], expires_at=from_db_time(taken["expires_at"]))
    row = None
    while row is None and dialect.skip_locked:
        # Every free code may be held by transactions still deciding, which may yet roll back
        # (a key race's losers do): wait for the first rather than answer "no codes left"
        # while codes remain. If its holder took it, the wait finds none (READ COMMITTED
        # re-checks the row), and the next free code is claimed the same way; each turn,
        # another transaction has taken a code, so this ends.
        row = conn.execute(_FREE_CODE + dialect.row_lock, params).fetchone()
        if row is None and conn.execute(_ANY_FREE_CODE, params).fetchone()[0]:
            row = conn.execute(_FREE_CODE + dialect.skip_locked, params).fetchone()
            continue
        break
    if row is None:
        return None
    take_code(conn, row["id"], now=now)
    return ClaimedCode(id=row["id"], code=row["code"], expires_at=from_db_time(row["expires_at"]))


def next_product_key(conn: sqlite3.Connection, *, campaign_id: int, sku: str) -> int | None:
    """The id of the earliest-expiring free key of one product's pool (a program with one
    pool per product, `code_products`); not taken yet: see take_code."""
    row = conn.execute(
        "SELECT id FROM reward_codes WHERE campaign_id = :c AND sku = :s AND issued_at IS NULL AND voided_at IS NULL"
        " ORDER BY expires_at, id LIMIT 1", {"c": campaign_id, "s": sku}).fetchone()
    return int(row["id"]) if row else None


def take_code(conn: sqlite3.Connection, code_id: int, *, now: datetime) -> None:
    """Mark a free code issued (inside the transaction that found it free)."""
    updated = conn.execute(
        "UPDATE reward_codes SET issued_at = :now WHERE id = :id AND issued_at IS NULL",
        {"now": db_time(now), "id": code_id},
    ).rowcount
    if updated != 1:  # cannot happen under the write lock; never hand out a taken code
        raise RuntimeError(f"reward code {code_id} was claimed concurrently")


def stock(conn: sqlite3.Connection, *, campaign_id: int, not_expiring_before: datetime, now: datetime) -> dict[str, int]:
    """Codes by status: available (issuable), issued, expired (too early to issue), voided."""
    row = conn.execute(
        "SELECT"
        " SUM(CASE WHEN issued_at IS NULL AND voided_at IS NULL AND expires_at >= :min THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN issued_at IS NOT NULL THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN issued_at IS NULL AND voided_at IS NULL AND expires_at < :min THEN 1 ELSE 0 END),"
        " SUM(CASE WHEN issued_at IS NULL AND voided_at IS NOT NULL THEN 1 ELSE 0 END)"
        " FROM reward_codes WHERE campaign_id = :campaign",
        {"campaign": campaign_id, "min": db_time(max(not_expiring_before, now))},
    ).fetchone()
    return dict(zip(("available", "issued", "expired", "voided"), (v or 0 for v in row), strict=True))


@dataclass(frozen=True)
class Batch:
    id: int
    source: str
    code_count: int
    imported_at: str
    issued: int
    voided: int

    @property
    def voidable(self) -> int:
        return self.code_count - self.issued - self.voided


_BATCH_SELECT = (
    "SELECT b.id, b.source, b.code_count, b.imported_at,"
    " (SELECT COUNT(*) FROM reward_codes c WHERE c.batch_id = b.id AND c.issued_at IS NOT NULL),"
    " (SELECT COUNT(*) FROM reward_codes c WHERE c.batch_id = b.id AND c.issued_at IS NULL AND c.voided_at IS NOT NULL)"
    " FROM code_batches b WHERE b.campaign_id = :c"
)


def batches(conn: sqlite3.Connection, campaign_id: int, keyset: Keyset | None = None) -> Page[Batch]:
    """The campaign's code batches, newest first, one page at a time."""
    keyset = keyset or Keyset()
    condition, order, params = keyset.sql("b.id")
    rows = conn.execute(_BATCH_SELECT + f" AND {condition} ORDER BY {order} LIMIT :keyset_limit",  # fixed clauses
                        {"c": campaign_id, **params}).fetchall()
    return keyset.page([Batch(*row) for row in rows], lambda batch: batch.id)


def batch_of(conn: sqlite3.Connection, campaign_id: int, batch_id: int) -> Batch | None:
    row = conn.execute(_BATCH_SELECT + " AND b.id = :b", {"c": campaign_id, "b": batch_id}).fetchone()
    return Batch(*row) if row else None


def void_batch(conn: sqlite3.Connection, *, campaign_id: int, slug: str, batch_id: int, actor: str, now: datetime,
               ip: str | None = None) -> int:
    """Void the batch's codes that were not issued (inside a transaction); issued codes
    stay with their owners (R-X10: codes are not taken back). Returns how many."""
    if conn.execute("SELECT 1 FROM code_batches WHERE id = :b AND campaign_id = :c",
                    {"b": batch_id, "c": campaign_id}).fetchone() is None:
        raise InputError.one("batch", f"batch {batch_id} is not one of this campaign's code batches")
    voided = conn.execute(
        "UPDATE reward_codes SET voided_at = :now WHERE batch_id = :b AND issued_at IS NULL AND voided_at IS NULL",
        {"now": db_time(now), "b": batch_id},
    ).rowcount
    # Kept beside the batch, so stock is counted without reading the pool (promo/stock.py).
    conn.execute("UPDATE code_batches SET voided = voided + :n WHERE id = :b", {"n": voided, "b": batch_id})
    append_event(conn, tag="codes:batch:voided", actor=actor, subject=f"campaign:{slug}", at=now, ip=ip,
                 data={"batch": batch_id, "voided": voided})
    return voided
