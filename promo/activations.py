"""Purchase evidence: activation records, imported from CSV and looked up by product key."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

from promo.audit import append_event
from promo.catalog import Sku, normalize_sku
from promo.countries import normalize_country
from promo.csvfile import ErrorList, open_text, rows
from promo.db import insert_each, larger_cache, transaction
from promo.errors import FieldError, InputError
from promo.identifiers import normalize_email, normalize_product_key
from promo.timeutil import Moment, db_time, moment_from_db, moment_not_before, moment_text, moment_to_db, parse_moment

COLUMNS = ("product_key", "sku", "country", "purchased_at", "activated_at")
OPTIONAL = ("account_email",)


@dataclass(frozen=True)
class Activation:
    product_key: str
    sku: str
    country: str
    purchased_at: Moment
    activated_at: Moment
    account_email: str | None


def parse_activation(row: Mapping[str, str], catalog: Mapping[str, Sku]) -> Activation:
    """Validate one record; raises InputError listing every bad field."""
    errors: list[FieldError] = []
    values: dict[str, object] = {}
    checks = {
        "product_key": lambda v: normalize_product_key(v, "product_key"),
        "sku": lambda v: normalize_sku(v, dict(catalog), "sku").sku,
        "country": lambda v: normalize_country(v, "country"),
        "purchased_at": lambda v: parse_moment(v, "purchased_at"),
        "activated_at": lambda v: parse_moment(v, "activated_at"),
        "account_email": lambda v: normalize_email(v, "account_email") if v else None,
    }
    for name, check in checks.items():
        try:
            values[name] = check(row.get(name, ""))
        except InputError as exc:
            errors.extend(exc.errors)
    if not errors and not moment_not_before(values["activated_at"], values["purchased_at"], UTC):  # type: ignore[arg-type]
        errors.append(
            FieldError(
                "activated_at",
                f"activation ({moment_text(values['activated_at'])}) is before purchase ({moment_text(values['purchased_at'])})",  # type: ignore[arg-type]
            )
        )
    if errors:
        raise InputError(errors)
    return Activation(**values)  # type: ignore[arg-type]


def import_activations(
    conn: sqlite3.Connection, *, source: IO[bytes] | str, catalog: Mapping[str, Sku], now: datetime, actor: str = "cli"
) -> int:
    """All or nothing: any bad or duplicate row rolls the file back, reported by line."""
    errors = ErrorList()
    imported_at = db_time(now)
    batch = secrets.token_hex(8)  # tells this file's rows from earlier ones

    def valid(stream: IO[str]) -> Iterator[dict[str, object]]:
        for line, row in rows(stream, COLUMNS, OPTIONAL):
            if "__error__" in row:
                errors.add(FieldError("row", row["__error__"], line=line))
                continue
            try:
                record = parse_activation(row, catalog)
            except InputError as exc:
                errors.extend(exc.errors, line)
                continue
            yield {
                "product_key": record.product_key,
                "sku": record.sku,
                "country": record.country,
                "purchased_at": moment_to_db(record.purchased_at),
                "activated_at": moment_to_db(record.activated_at),
                "account_email": record.account_email,
                "imported_at": imported_at,
                "batch": batch,
                "line": line,
            }

    def refused(record: dict[str, Any]) -> bool:
        """A key the primary key refused: earlier in this file, or recorded before."""
        row = conn.execute("SELECT import_batch, source_line FROM activations WHERE product_key = :k",
                           {"k": record["product_key"]}).fetchone()
        if row is None:
            return False
        message = f"duplicate of line {row['source_line']}" if row["import_batch"] == batch else "already has an activation record"
        errors.add(FieldError("product_key", message, line=record["line"]))
        return True

    with larger_cache(conn), transaction(conn):  # all or nothing: any error below rolls the file back
        with open_text(source) as stream:
            imported = insert_each(
                conn, "INSERT INTO activations (product_key, sku, country, purchased_at, activated_at, account_email,"
                " imported_at, import_batch, source_line) VALUES (:product_key, :sku, :country, :purchased_at,"
                " :activated_at, :account_email, :imported_at, :batch, :line)", valid(stream), refused)
        if not imported and not errors.total:
            errors.add(FieldError("file", "holds no activation records"))
        errors.raise_if_any()
        append_event(conn, tag="activations:batch:imported", actor=actor, subject="activations", at=now,
                     data={"batch": batch, "records": imported})
    return imported


def get_activation(conn: sqlite3.Connection, product_key: str) -> Activation | None:
    row = conn.execute(
        "SELECT product_key, sku, country, purchased_at, activated_at, account_email FROM activations"
        " WHERE product_key = :key",
        {"key": product_key},
    ).fetchone()
    if row is None:
        return None
    return Activation(
        product_key=row["product_key"],
        sku=row["sku"],
        country=row["country"],
        purchased_at=moment_from_db(row["purchased_at"]),
        activated_at=moment_from_db(row["activated_at"]),
        account_email=row["account_email"],
    )
