"""Purchase evidence: activation records, imported from CSV and looked up by product key.

A record names where the product was bought and where it was activated (R-X2:
purchase_country, activation_country); an older file's single `country` column means
both. Its dates are checked against each other only as far as no zone can make them right:
a record belongs to no campaign, and each campaign orders a bare day in its own zone."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import IO, Any, TypeVar

from promo.audit import append_event
from promo.backends import ask
from promo.backends.bulk import insert_each  # the store's own way: COPY and a staging table on PostgreSQL
from promo.catalog import Sku, normalize_sku
from promo.countries import normalize_country
from promo.csvfile import ErrorList, open_text, rows
from promo.db import larger_cache, transaction
from promo.errors import FieldError, InputError
from promo.identifiers import normalize_email, normalize_product_key
from promo.timeutil import Moment, db_time, moment_from_db, moment_text, moment_to_db, order_possible, parse_moment

COLUMNS = ("product_key", "sku", "purchased_at", "activated_at")
COUNTRY_COLUMNS = ("purchase_country", "activation_country")
LEGACY_COUNTRY = "country"  # files from before R-X2's two countries: one column for both
OPTIONAL = (*COUNTRY_COLUMNS, LEGACY_COUNTRY, "account_email")
T = TypeVar("T")
HEADER = "product_key,sku,purchase_country,activation_country,purchased_at,activated_at[,account_email]"


@dataclass(frozen=True)
class Activation:
    product_key: str
    sku: str
    purchase_country: str
    activation_country: str
    purchased_at: Moment
    activated_at: Moment
    account_email: str | None


def header_problem(header: list[str]) -> str | None:
    """The file must name both countries, or the one legacy column that means both."""
    named = [c for c in COUNTRY_COLUMNS if c in header]
    if LEGACY_COUNTRY in header:
        return f"column {LEGACY_COUNTRY} means both countries: leave out {', '.join(named)}" if named else None
    missing = [c for c in COUNTRY_COLUMNS if c not in header]
    return f"missing column {', '.join(missing)}; expected {HEADER} (or one column `country` for both)" if missing else None


def parse_activation(row: Mapping[str, str], catalog: Mapping[str, Sku]) -> Activation:
    """Validate one record; raises InputError listing every bad field."""
    errors: list[FieldError] = []

    def check(name: str, parse: Callable[[str, str], T]) -> T | None:
        """parse(the column's text, its name), or None with its errors noted (each field's, in column order)."""
        try:
            return parse(row.get(name, ""), name)
        except InputError as exc:
            errors.extend(exc.errors)
            return None

    product_key = check("product_key", normalize_product_key)
    sku = check("sku", lambda v, name: normalize_sku(v, dict(catalog), name).sku)
    if LEGACY_COUNTRY in row:  # one column for both
        purchase_country = activation_country = check(LEGACY_COUNTRY, normalize_country)
    else:
        purchase_country = check("purchase_country", normalize_country)
        activation_country = check("activation_country", normalize_country)
    purchased_at = check("purchased_at", parse_moment)
    activated_at = check("activated_at", parse_moment)
    account_email = check("account_email", lambda v, name: normalize_email(v, name) if v else None)
    if errors:
        raise InputError(errors)
    # No errors: every field parsed (only account_email may be None).
    assert product_key is not None and sku is not None and purchased_at is not None and activated_at is not None
    assert purchase_country is not None and activation_country is not None
    if not order_possible(activated_at, purchased_at):
        raise InputError([FieldError(
            "activated_at",
            f"activation ({moment_text(activated_at)}) is before purchase ({moment_text(purchased_at)}) in every time zone",
        )])
    return Activation(product_key, sku, purchase_country, activation_country, purchased_at, activated_at, account_email)


def import_activations(
    conn: sqlite3.Connection, *, source: IO[bytes] | str, catalog: Mapping[str, Sku], now: datetime, actor: str = "cli"
) -> int:
    """All or nothing: any bad or duplicate row rolls the file back, reported by line."""
    errors = ErrorList()
    imported_at = db_time(now)
    batch = secrets.token_hex(8)  # tells this file's rows from earlier ones

    def valid(stream: IO[str]) -> Iterator[dict[str, object]]:
        for line, row in rows(stream, COLUMNS, OPTIONAL, header_problem):
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
                "purchase_country": record.purchase_country,
                "activation_country": record.activation_country,
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
                conn, "INSERT INTO activations (product_key, sku, country, activation_country, purchased_at, activated_at,"
                " account_email, imported_at, import_batch, source_line) VALUES (:product_key, :sku, :purchase_country,"
                " :activation_country, :purchased_at, :activated_at, :account_email, :imported_at, :batch, :line)",
                valid(stream), refused)
        if not imported and not errors.total:
            errors.add(FieldError("file", "holds no activation records"))
        errors.raise_if_any()
        append_event(conn, tag="activations:batch:imported", actor=actor, subject="activations", at=now,
                     data={"batch": batch, "records": imported})
    return imported


def get_activation(conn: sqlite3.Connection, product_key: str) -> Activation | None:
    return activation_of(ask_activation(conn, product_key))


def ask_activation(conn: sqlite3.Connection, product_key: str) -> Any:
    """Ask for the key's activation record now, read it later (activation_of): in a pipelined
    write on PostgreSQL, it goes out with the statements asked beside it."""
    return ask(conn, lambda: conn.execute(  # activations.country is the purchase country (migration 0012)
        "SELECT product_key, sku, country, COALESCE(activation_country, country) AS activation_country, purchased_at,"
        " activated_at, account_email FROM activations WHERE product_key = :key",
        {"key": product_key},
    ))


def activation_of(asked: Any) -> Activation | None:
    row = asked.fetchone()
    if row is None:
        return None
    return Activation(
        product_key=row["product_key"],
        sku=row["sku"],
        purchase_country=row["country"],
        activation_country=row["activation_country"],
        purchased_at=moment_from_db(row["purchased_at"]),
        activated_at=moment_from_db(row["activated_at"]),
        account_email=row["account_email"],
    )
