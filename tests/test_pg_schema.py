"""The PostgreSQL schema (promo/migrations_pg) is the SQLite schema after every migration:
each table and column, each UNIQUE constraint (the invariants: one reward per account and
slot, one redemption per product key, one owner per code) and each named index, with the
same partial-index conditions (the claim's free-code index among them). Issue 17, item 3."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from promo.backends import pg_connection, pg_schema
from promo.db import connect
from promo.migrate import migrate

# Columns holding an instant (db_time text on SQLite): timestamptz on PostgreSQL. A purchase
# or activation "moment" may be a bare day, so those stay text.
MOMENTS = {("activations", "purchased_at"), ("activations", "activated_at"),
           ("review_claims", "purchased_at"), ("review_claims", "activated_at")}
TIME_COLUMN = re.compile(r"_at$|^hour$|^locked_until$|^under_review_since$")
# NULL on PostgreSQL until the sealer chains the event (issue 18); SQLite seals at append.
SEALED_LATER = {("audit_events", "prev_hash"), ("audit_events", "hash")}


@pytest.fixture
def sqlite_schema(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = connect(tmp_path / "schema.sqlite3")
    migrate(conn)
    yield conn
    conn.close()


@pytest.fixture
def pg(pg_url: str) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    conn = pg_connection.connect(pg_url)
    assert pg_schema.migrate(conn) == [name for _, name, _ in pg_schema.available_migrations()]
    assert pg_schema.migrate(conn) == []  # applied once
    yield conn.raw
    conn.close()


def sqlite_tables(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]


def sqlite_columns(conn: sqlite3.Connection, table: str) -> dict[str, tuple[str, bool]]:
    """{column: (declared type, NOT NULL)}; an INTEGER PRIMARY KEY is NOT NULL by nature."""
    return {r["name"]: (r["type"].upper(), bool(r["notnull"] or r["pk"])) for r in conn.execute(f"PRAGMA table_info({table})")}


def pg_columns(conn: psycopg.Connection[tuple[object, ...]], table: str) -> dict[str, tuple[str, bool]]:
    rows = conn.execute("SELECT column_name, data_type, is_nullable FROM information_schema.columns"
                        " WHERE table_schema = current_schema() AND table_name = %s", (table,)).fetchall()
    return {str(name): (str(kind), nullable == "NO") for name, kind, nullable in rows}


def sqlite_unique_sets(conn: sqlite3.Connection, table: str) -> set[tuple[tuple[str, ...], str | None]]:
    """Each UNIQUE key (constraint, unique index or primary key): (its columns, its WHERE or None)."""
    found = set()
    for index in conn.execute(f"PRAGMA index_list({table})"):
        if not index["unique"]:
            continue
        columns = tuple(r["name"] for r in conn.execute(f"PRAGMA index_info({index['name']})"))
        found.add((columns, partial_condition(conn, index["name"]) if index["partial"] else None))
    primary = tuple(r["name"] for r in sorted(conn.execute(f"PRAGMA table_info({table})"), key=lambda r: r["pk"]) if r["pk"])
    if primary:
        found.add((primary, None))
    return found


def partial_condition(conn: sqlite3.Connection, index: str) -> str:
    (sql,) = conn.execute("SELECT sql FROM sqlite_master WHERE type = 'index' AND name = ?", (index,)).fetchone()
    return normalized(sql.split(" WHERE ", 1)[1])


def normalized(condition: str) -> str:
    """A WHERE clause in one spelling: PostgreSQL's deparsed form and SQLite's source text."""
    text = condition.lower()
    text = re.sub(r"::text(\[\])?", "", text)
    text = re.sub(r"\barray\[(.*?)\]", r"(\1)", text)
    text = text.replace("= any (", "in (").replace("!~~", "not like").replace("~~", "like")
    text = re.sub(r"[()\s]", "", text)
    return text


def pg_indexes(conn: psycopg.Connection[tuple[object, ...]], table: str) -> dict[str, tuple[tuple[str, ...], bool, str | None]]:
    """{index name: (its columns, or its expression, whether unique, its WHERE or None)}."""
    rows = conn.execute(
        "SELECT i.relname, x.indisunique, pg_get_expr(x.indpred, x.indrelid),"
        " ARRAY(SELECT pg_get_indexdef(x.indexrelid, k + 1, true) FROM generate_subscripts(x.indkey, 1) AS k ORDER BY k)"
        " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class t ON t.oid = x.indrelid"
        " WHERE t.relname = %s AND t.relnamespace = current_schema()::regnamespace", (table,)).fetchall()
    return {str(name): (tuple(columns), bool(unique), normalized(str(where)) if where else None)
            for name, unique, where, columns in rows}


def test_every_table_and_column_is_on_postgresql_with_its_type_and_nullability(sqlite_schema: sqlite3.Connection,
                                                                                pg: psycopg.Connection[tuple[object, ...]]) -> None:
    tables = sqlite_tables(sqlite_schema)
    assert len(tables) >= 30
    for table in tables:
        on_pg = pg_columns(pg, table)
        assert on_pg, f"table {table} is missing on PostgreSQL"
        for column, (kind, not_null) in sqlite_columns(sqlite_schema, table).items():
            assert column in on_pg, f"{table}.{column} is missing on PostgreSQL"
            pg_kind, pg_not_null = on_pg[column]
            assert pg_not_null == (not_null and (table, column) not in SEALED_LATER), f"{table}.{column}: NOT NULL differs"
            if kind == "INTEGER":
                assert pg_kind in {"bigint", "integer", "smallint"}, f"{table}.{column} is {pg_kind}"
            elif TIME_COLUMN.search(column) and (table, column) not in MOMENTS:
                assert pg_kind == "timestamp with time zone", f"{table}.{column} holds an instant but is {pg_kind}"
            else:
                assert pg_kind in {"text", "jsonb"}, f"{table}.{column} is {pg_kind}"
        assert set(on_pg) == set(sqlite_columns(sqlite_schema, table)), f"{table}: PostgreSQL has extra columns"


def test_every_unique_key_and_every_named_index_has_its_counterpart(sqlite_schema: sqlite3.Connection,
                                                                      pg: psycopg.Connection[tuple[object, ...]]) -> None:
    for table in sqlite_tables(sqlite_schema):
        on_pg = pg_indexes(pg, table)
        pg_unique = {(columns, where) for columns, unique, where in on_pg.values() if unique}
        for key in sqlite_unique_sets(sqlite_schema, table):
            assert key in pg_unique, f"{table}: UNIQUE {key} has no counterpart on PostgreSQL"
        for index in sqlite_schema.execute(f"PRAGMA index_list({table})"):
            if index["origin"] != "c":  # constraints (u, pk) are checked above, by their columns
                continue
            name = index["name"]
            assert name in on_pg, f"index {name} is missing on PostgreSQL"
            columns, unique, where = on_pg[name]
            assert unique == bool(index["unique"]), f"index {name}: UNIQUE differs"
            assert where == (partial_condition(sqlite_schema, name) if index["partial"] else None), f"index {name}: WHERE differs"
            sqlite_columns_of = [r["name"] for r in sqlite_schema.execute(f"PRAGMA index_info({name})")]
            if None not in sqlite_columns_of:  # an expression index (a key's tail) is compared by hand below
                assert list(columns) == sqlite_columns_of, f"index {name}: columns differ"


def test_the_invariants_hold_on_postgresql(request: pytest.FixtureRequest, pg_url: str, pg: psycopg.Connection[tuple[object, ...]]) -> None:
    """The constraints refuse a second reward for an account's slot, a second redemption with
    one product key and a second owner of one code, as ConstraintViolation (an IntegrityError)."""
    conn = pg_connection.connect(pg_url)  # after the migration: it reads the identity columns
    request.addfinalizer(conn.close)
    t = "2013-09-01T12:00:00.000000Z"
    campaign = conn.execute("INSERT INTO campaigns (slug, kind, definition, created_at, updated_at)"
                            " VALUES ('c', 'purchase_offer', '{}', :t, :t)", {"t": t}).lastrowid
    batch = conn.execute("INSERT INTO code_batches (campaign_id, source, code_count, imported_at) VALUES (?, 's', 2, ?)",
                         (campaign, t)).lastrowid
    codes = [conn.execute("INSERT INTO reward_codes (campaign_id, batch_id, code, expires_at) VALUES (?, ?, ?, ?)",
                          (campaign, batch, f"CODE-{i}", t)).lastrowid for i in range(3)]
    insert = ("INSERT INTO redemptions (campaign_id, account_email, slot, product_key, code_id, terms_url,"
              " terms_accepted_at, redeemed_at) VALUES (:c, :a, 1, :k, :code, 'u', :t, :t)")
    conn.execute(insert, {"c": campaign, "a": "a@example.com", "k": "K1", "code": codes[0], "t": t})
    for clash, constraint in (({"a": "a@example.com", "k": "K2", "code": codes[1]}, "redemptions_campaign_id_account_email_slot_key"),
                              ({"a": "b@example.com", "k": "K1", "code": codes[1]}, "redemptions_campaign_id_product_key_key"),
                              ({"a": "b@example.com", "k": "K2", "code": codes[0]}, "redemptions_code_id_key")):
        with pytest.raises(sqlite3.IntegrityError) as refused:
            conn.execute(insert, {"c": campaign, "t": t, **clash})
        assert isinstance(refused.value, pg_connection.ConstraintViolation)
        assert refused.value.constraint == constraint
    # The tails of keys and codes are found by an index on PostgreSQL's spelling of substr(x, -5).
    assert pg_indexes(pg, "redemptions")["redemptions_key_tail"][0] == ("\"right\"(product_key, 5)",)
    assert pg_indexes(pg, "reward_codes")["reward_codes_issued_tail"][0] == ("\"right\"(replace(code, '-'::text, ''::text), 5)",)
    assert conn.execute("SELECT expires_at FROM reward_codes WHERE id = ?", (codes[0],)).fetchone()[0] == t
