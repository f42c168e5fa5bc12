"""The SKU catalog: products and their attributes (family, edition, channel, term, and
where they are sold). Campaigns qualify or exclude products by SKU id or by attribute."""

from __future__ import annotations

import sqlite3
import tomllib
from dataclasses import dataclass, replace
from importlib import resources
from typing import Any

from promo.backends import ask
from promo.countries import normalize_country
from promo.errors import FieldError, InputError, NotFound

CHANNELS = ("fpp", "posa", "esd", "subscription", "military", "trial", "nfr", "volume")
TERMS = ("annual", "monthly", "perpetual")
ATTRIBUTES = ("family", "edition", "channel", "term")
PRODUCT_CLASSES = ("desktop", "cal", "windows_server_standard", "server")  # donation limits (R-N2)


@dataclass(frozen=True)
class Sku:
    sku: str
    name: str
    family: str
    edition: str
    channel: str
    term: str
    countries: frozenset[str] | None = None  # None: sold everywhere
    product_class: str | None = None  # donation products only (R-N2)
    names: tuple[tuple[str, str], ...] = ()  # (language, name) besides the English `name` (R-X15)

    def attribute(self, name: str) -> str:
        return str(getattr(self, name))

    def name_in(self, lang: str) -> str:
        """The product's name for a reader of `lang`; the English name where it has none."""
        return next((text for code, text in self.names if code == lang), self.name)

    def sold_in(self, country: str) -> bool:
        return self.countries is None or country in self.countries


def sku_from_dict(data: dict[str, Any], where: str = "sku") -> Sku:
    errors = []
    for key in ("sku", "name", *ATTRIBUTES):
        if not isinstance(data.get(key), str) or not data[key].strip():
            errors.append(FieldError(f"{where}.{key}", "is required"))
    if errors:
        raise InputError(errors)
    if data["channel"] not in CHANNELS:
        errors.append(FieldError(f"{where}.channel", f"must be one of {', '.join(CHANNELS)}"))
    if data["term"] not in TERMS:
        errors.append(FieldError(f"{where}.term", f"must be one of {', '.join(TERMS)}"))
    product_class = data.get("product_class")
    if product_class is not None and product_class not in PRODUCT_CLASSES:
        errors.append(FieldError(f"{where}.product_class", f"must be one of {', '.join(PRODUCT_CLASSES)}"))
    if errors:
        raise InputError(errors)
    countries = data.get("countries")
    names = data.get("names", {})
    if not isinstance(names, dict) or not all(isinstance(v, str) and v.strip() for v in names.values()):
        raise InputError.one(f"{where}.names", "must be a table of language = \"name\"")
    return Sku(
        sku=data["sku"].strip().upper(),
        name=data["name"],
        family=data["family"],
        edition=data["edition"],
        channel=data["channel"],
        term=data["term"],
        countries=None
        if countries is None
        else frozenset(normalize_country(c, f"{where}.countries") for c in countries),
        product_class=product_class,
        names=tuple(sorted(names.items())),
    )


def shipped_catalog() -> list[Sku]:
    text = resources.files("promo.data").joinpath("catalog.toml").read_text(encoding="utf-8")
    return [sku_from_dict(entry, f"sku[{i}]") for i, entry in enumerate(tomllib.loads(text)["sku"])]


# ---- storage ----------------------------------------------------------------------------


def upsert_skus(conn: sqlite3.Connection, skus: list[Sku]) -> None:
    """Insert or update (call inside a transaction)."""
    for sku in skus:
        params = {a: getattr(sku, a) for a in ("sku", "name", *ATTRIBUTES, "product_class")}
        conn.execute(
            "INSERT INTO skus (sku, name, family, edition, channel, term, product_class)"
            " VALUES (:sku, :name, :family, :edition, :channel, :term, :product_class)"
            " ON CONFLICT (sku) DO UPDATE SET name = excluded.name, family = excluded.family,"
            " edition = excluded.edition, channel = excluded.channel, term = excluded.term,"
            " product_class = excluded.product_class",
            params,
        )
        conn.execute("DELETE FROM sku_countries WHERE sku = :sku", {"sku": sku.sku})
        for country in sorted(sku.countries or ()):
            conn.execute(
                "INSERT INTO sku_countries (sku, country) VALUES (:sku, :country)",
                {"sku": sku.sku, "country": country},
            )
        conn.execute("DELETE FROM sku_names WHERE sku = :sku", {"sku": sku.sku})
        for lang, name in sku.names:
            conn.execute("INSERT INTO sku_names (sku, lang, name) VALUES (:sku, :lang, :name)",
                         {"sku": sku.sku, "lang": lang, "name": name})


def load_catalog(conn: sqlite3.Connection) -> dict[str, Sku]:
    countries: dict[str, set[str]] = {}
    for row in conn.execute("SELECT sku, country FROM sku_countries"):
        countries.setdefault(row["sku"], set()).add(row["country"])
    names = _names(conn)
    return {
        row["sku"]: Sku(
            sku=row["sku"],
            name=row["name"],
            family=row["family"],
            edition=row["edition"],
            channel=row["channel"],
            term=row["term"],
            countries=frozenset(countries[row["sku"]]) if row["sku"] in countries else None,
            product_class=row["product_class"],
            names=names.get(row["sku"], ()),
        )
        for row in conn.execute("SELECT sku, name, family, edition, channel, term, product_class FROM skus ORDER BY sku")
    }


def _names(conn: sqlite3.Connection, sku: str | None = None) -> dict[str, tuple[tuple[str, str], ...]]:
    """Names per language, of every SKU or of one."""
    out: dict[str, list[tuple[str, str]]] = {}
    # :sku compared first, then tested for NULL: PostgreSQL infers its type from the comparison.
    rows = conn.execute("SELECT sku, lang, name FROM sku_names WHERE sku = :sku OR :sku IS NULL ORDER BY sku, lang",
                        {"sku": sku})
    for row in rows:
        out.setdefault(row[0], []).append((row[1], row[2]))
    return {code: tuple(pairs) for code, pairs in out.items()}


def normalize_sku(value: str, catalog: dict[str, Sku], field: str = "sku") -> Sku:
    code = (value or "").strip().upper()
    if not code:
        raise InputError.one(field, "is required (a SKU id such as O365-HOME-ESD)")
    if code not in catalog:
        raise InputError.one(field, f"unknown SKU {value!r}: not in the product catalog")
    return catalog[code]


def get_sku(conn: sqlite3.Connection, sku: str, *, with_names: bool = False) -> Sku:
    """One SKU with its countries (the redemption needs only the claimed one); with its
    names per language when a page is to show it (the rules never read names)."""
    rows = conn.execute(  # one statement: a row per country (one row, country NULL: sold everywhere)
        "SELECT s.sku, s.name, s.family, s.edition, s.channel, s.term, s.product_class, c.country"
        " FROM skus s LEFT JOIN sku_countries c ON c.sku = s.sku WHERE s.sku = :sku", {"sku": sku}
    ).fetchall()
    found = _sku_of(rows, sku)
    return replace(found, names=_names(conn, found.sku).get(found.sku, ())) if with_names else found


def ask_sku_of_key(conn: sqlite3.Connection, product_key: str) -> Any:
    """Ask for the SKU a product key's activation record names, before that record is read (a
    pipelined write on PostgreSQL sends both together); read with sku_of_key."""
    return ask(conn, lambda: conn.execute(
        "SELECT s.sku, s.name, s.family, s.edition, s.channel, s.term, s.product_class, c.country FROM activations a"
        " JOIN skus s ON s.sku = a.sku LEFT JOIN sku_countries c ON c.sku = s.sku WHERE a.product_key = :key",
        {"key": product_key}))


def sku_of_key(conn: sqlite3.Connection, asked: Any, sku: str) -> Sku:
    """The SKU `sku` of the activation record read beside ask_sku_of_key: what that asked, or,
    should the record have been re-imported with another SKU between the two statements, read
    again (as get_sku(conn, sku))."""
    rows = asked.fetchall()
    return _sku_of(rows, sku) if rows and rows[0][0] == sku else get_sku(conn, sku)


def _sku_of(rows: list[Any], sku: str) -> Sku:
    if not rows:
        raise NotFound("SKU", sku)
    first = rows[0]
    countries = frozenset(r[7] for r in rows if r[7] is not None)
    return Sku(sku=first[0], name=first[1], family=first[2], edition=first[3], channel=first[4], term=first[5],
               product_class=first[6], countries=countries or None)
