"""Activation records and reward codes: CSV imports that are all or nothing."""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promo.activations import get_activation, import_activations
from promo.backends import dialect_of
from promo.campaign_store import StoredCampaign
from promo.catalog import load_catalog, shipped_catalog, upsert_skus
from promo.codes import claim_code, import_codes, stock
from promo.csvfile import records, rows
from promo.db import IMPORT_CACHE_MIB, connect, transaction
from promo.errors import FieldError, InputError
from promo.identifiers import normalize_product_key
from promo.migrate import migrate
from tests.support.database import csv_bytes, product_key, reward_code

NOW = datetime(2013, 7, 10, tzinfo=UTC)
HEADER = ["product_key", "sku", "country", "purchased_at", "activated_at", "account_email"]


def activations(conn: sqlite3.Connection, rows: list[list[str]], header: list[str] = HEADER) -> int:
    return import_activations(conn, source=csv_bytes(header, rows), catalog=load_catalog(conn), now=NOW)


def codes(conn: sqlite3.Connection, stored: StoredCampaign, rows: list[list[str]], header: list[str] | None = None) -> int:
    report = import_codes(conn, campaign_id=stored.id, campaign=stored.campaign,
                          source=csv_bytes(header or ["code"], rows), source_name="test.csv", now=NOW)
    return report.imported


def count(conn: sqlite3.Connection, table: str) -> int:
    return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


# ---- activations

def test_activation_import_normalises_keys_emails_and_times(conn: sqlite3.Connection) -> None:
    rows = [
        [product_key(1).lower(), "o365-home-esd", "dk", "2013-08-01", "2013-08-02T10:00:00+02:00", "Ann@Example.COM"],
        [product_key(2).replace("-", " "), "O365-UNI-FPP", "NO", "2013-08-01T09:00:00Z", "2013-08-01T09:30:00Z", ""],
    ]
    assert activations(conn, rows) == 2
    first = get_activation(conn, product_key(1).replace("-", ""))
    assert first is not None
    assert (first.sku, first.purchase_country, first.activation_country, first.account_email) == (
        "O365-HOME-ESD", "DK", "DK", "ann@example.com")
    assert first.purchased_at == date(2013, 8, 1)
    assert first.activated_at == datetime(2013, 8, 2, 8, 0, tzinfo=UTC)
    second = get_activation(conn, product_key(2).replace("-", ""))
    assert second is not None and second.account_email is None


def test_activation_import_reports_every_bad_row_and_imports_nothing(conn: sqlite3.Connection) -> None:
    rows = [
        [product_key(1), "O365-HOME-ESD", "DK", "2013-08-01", "2013-08-02", ""],
        [product_key(2), "NOT-A-SKU", "DK", "2013-08-01", "2013-08-02", ""],
        [product_key(3), "O365-HOME-ESD", "XX", "2013-08-01", "2013-08-02", ""],
        [product_key(4), "O365-HOME-ESD", "DK", "2013-08-05", "2013-08-02", ""],
        [product_key(5), "O365-HOME-ESD", "DK", "2013-08-01T10:00:00", "2013-08-02", ""],
        [product_key(1), "O365-HOME-ESD", "DK", "2013-08-01", "2013-08-02", ""],
        ["SHORT", "O365-HOME-ESD", "DK", "2013-08-01", "2013-08-02", "not-an-email"],
    ]
    with pytest.raises(InputError) as info:
        activations(conn, rows)
    found = {(e.line, e.field) for e in info.value.errors}
    assert found == {(3, "sku"), (4, "country"), (5, "activated_at"), (6, "purchased_at"), (7, "product_key"),
                     (8, "product_key"), (8, "account_email")}
    messages = {(e.line, e.field): e.message for e in info.value.errors}
    assert messages[(7, "product_key")] == "duplicate of line 2"
    assert "no time zone" in messages[(6, "purchased_at")]
    assert count(conn, "activations") == 0


def test_activation_already_recorded_is_reported_with_its_line(conn: sqlite3.Connection) -> None:
    activations(conn, [[product_key(1), "O365-HOME-ESD", "DK", "2013-08-01", "2013-08-02", ""]])
    with pytest.raises(InputError) as info:
        activations(conn, [[product_key(9), "O365-HOME-ESD", "DK", "2013-08-01", "2013-08-02", ""],
                           [product_key(1), "O365-HOME-ESD", "DK", "2013-08-01", "2013-08-02", ""]])
    assert [(e.line, e.message) for e in info.value.errors] == [(3, "already has an activation record")]
    assert count(conn, "activations") == 1


def refuse_row(conn: sqlite3.Connection, table: str, column: str, value: str) -> str:
    """Make the store refuse one row that is no duplicate (a constraint the import does not
    expect); what the refusal says. SQLite: a temporary trigger; PostgreSQL: a CHECK constraint."""
    if dialect_of(conn).name == "postgresql":
        conn.execute(f"ALTER TABLE {table} ADD CONSTRAINT refused_by_a_test CHECK ({column} <> '{value}')")
        return 'violates check constraint "refused_by_a_test"'
    conn.execute(f"CREATE TEMP TRIGGER refuse BEFORE INSERT ON {table} WHEN NEW.{column} = '{value}'"
                 " BEGIN SELECT RAISE(ABORT, 'refused by a trigger'); END")
    return "refused by a trigger"


def test_activations_keep_their_line_and_a_refusal_that_is_not_a_duplicate_is_raised(conn: sqlite3.Connection) -> None:
    row = ["O365-HOME-ESD", "DK", "2013-08-01", "2013-08-02", ""]
    activations(conn, [[product_key(1), *row], [product_key(2), *row]])
    stored = [tuple(r) for r in conn.execute("SELECT product_key, source_line FROM activations ORDER BY source_line")]
    assert stored == [(normalize_product_key(product_key(1), "k"), 2), (normalize_product_key(product_key(2), "k"), 3)]
    refused = refuse_row(conn, "activations", "product_key", normalize_product_key(product_key(4), "k"))
    with pytest.raises(sqlite3.IntegrityError, match=refused):
        activations(conn, [[product_key(3), *row], [product_key(4), *row]])
    assert count(conn, "activations") == 2  # the file rolled back whole


@pytest.mark.parametrize(("content", "message"), [
    (b"", "empty"),
    (b"product_key,sku\n", "missing column purchased_at, activated_at"),
    (b"product_key,sku,purchased_at,activated_at\n", "missing column purchase_country, activation_country"),
    (b"product_key,sku,purchase_country,purchased_at,activated_at\n", "missing column activation_country"),
    (b"product_key,sku,country,purchase_country,purchased_at,activated_at\n",
     "column country means both countries: leave out purchase_country"),
    (b"product_key,sku,country,purchased_at,activated_at,colour\n", "unknown column colour"),
    (b"\xff\xfe\x00garbage", "not UTF-8"),
])
def test_activation_file_problems_are_clear(conn: sqlite3.Connection, content: bytes, message: str) -> None:
    with pytest.raises(InputError, match=message):
        import_activations(conn, source=io.BytesIO(content), catalog=load_catalog(conn), now=NOW)


TWO = ["product_key", "sku", "purchase_country", "activation_country", "purchased_at", "activated_at", "account_email"]


def test_activation_records_carry_both_countries(conn: sqlite3.Connection) -> None:
    # R-X2: bought and activated in an eligible country; the record keeps the two apart.
    assert activations(conn, [[product_key(1), "O365-HOME-ESD", "dk", "no", "2013-08-01", "2013-08-02", ""]], TWO) == 1
    record = get_activation(conn, normalize_product_key(product_key(1), "k"))
    assert record is not None and (record.purchase_country, record.activation_country) == ("DK", "NO")


def test_a_file_with_one_country_column_still_imports_meaning_both(conn: sqlite3.Connection) -> None:
    assert activations(conn, [[product_key(1), "O365-HOME-ESD", "SE", "2013-08-01", "2013-08-02", ""]]) == 1
    record = get_activation(conn, normalize_product_key(product_key(1), "k"))
    assert record is not None and (record.purchase_country, record.activation_country) == ("SE", "SE")


def test_each_country_is_checked_in_its_own_column(conn: sqlite3.Connection) -> None:
    with pytest.raises(InputError) as info:
        activations(conn, [[product_key(1), "O365-HOME-ESD", "XX", "DK", "2013-08-01", "2013-08-02", ""],
                           [product_key(2), "O365-HOME-ESD", "DK", "", "2013-08-01", "2013-08-02", ""]], TWO)
    assert {(e.line, e.field) for e in info.value.errors} == {(2, "purchase_country"), (3, "activation_country")}
    with pytest.raises(InputError) as info:  # a bad legacy cell is one error, named by its column
        activations(conn, [[product_key(3), "O365-HOME-ESD", "XX", "2013-08-01", "2013-08-02", ""]])
    assert [(e.line, e.field) for e in info.value.errors] == [(2, "country")]
    assert count(conn, "activations") == 0


def test_records_from_before_migration_0012_mean_both_countries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import promo.migrate

    every = promo.migrate.available_migrations()
    monkeypatch.setattr(promo.migrate, "available_migrations", lambda: [m for m in every if m[0] != 12])  # all but 0012
    old = connect(tmp_path / "old.sqlite3")
    migrate(old)
    with transaction(old):
        upsert_skus(old, shipped_catalog())
        old.execute("INSERT INTO activations (product_key, sku, country, purchased_at, activated_at, account_email,"
                    " imported_at, import_batch) VALUES ('K1', 'O365-HOME-ESD', 'NO', '2013-08-01', '2013-08-02', NULL,"
                    " '2013-07-10T00:00:00.000000Z', 'old')")
    monkeypatch.setattr(promo.migrate, "available_migrations", lambda: every)
    assert migrate(old) == ["0012_two_countries_unbound_keys.sql"]
    record = get_activation(old, "K1")
    assert record is not None and (record.purchase_country, record.activation_country) == ("NO", "NO")
    assert old.execute("SELECT activation_country FROM activations").fetchone()[0] == "NO"  # filled, not only read so


# A bare day belongs to no zone until a campaign orders it: an import refuses only an activation
# that is before the purchase in every zone (UTC-12 … UTC+14); each campaign then orders in its own.
@pytest.mark.parametrize(("purchased", "activated", "imports"), [
    ("2013-08-02", "2013-08-01T23:30:00Z", True),  # issue 15: 01:30 on 2013-08-02 in Copenhagen
    ("2013-08-01T23:30:00Z", "2013-08-01", True),  # 19:30 on 2013-08-01 in New York
    ("2013-08-02", "2013-08-01T10:00:00Z", True),  # 00:00 on 2013-08-02 at UTC+14
    ("2013-08-02", "2013-08-01T09:59:59Z", False),  # 2013-08-01 everywhere
    ("2013-08-02T11:59:59Z", "2013-08-01", True),  # 23:59:59 on 2013-08-01 at UTC-12
    ("2013-08-02T12:00:00Z", "2013-08-01", False),  # 2013-08-02 everywhere
    ("2013-08-02", "2013-08-01", False),
    ("2013-08-01T10:00:00Z", "2013-08-01T09:59:59Z", False),
])
def test_import_refuses_only_an_order_no_zone_makes_right(conn: sqlite3.Connection, purchased: str, activated: str,
                                                          imports: bool) -> None:
    row = [product_key(1), "O365-HOME-ESD", "DK", purchased, activated, ""]
    if imports:
        assert activations(conn, [row]) == 1
    else:
        with pytest.raises(InputError, match="is before purchase .* in every time zone"):
            activations(conn, [row])


def test_bom_and_blank_lines_are_accepted(conn: sqlite3.Connection) -> None:
    text = "\ufeffproduct_key,sku,country,purchased_at,activated_at\r\n\r\n" + \
           f"{product_key(1)},O365-HOME-ESD,DK,2013-08-01,2013-08-02\r\n\r\n"
    assert import_activations(conn, source=io.BytesIO(text.encode()), catalog=load_catalog(conn), now=NOW) == 1


# ---- reward codes

def test_codes_import_and_stock(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    assert codes(conn, stored, [[reward_code(i).lower()] for i in range(5)]) == 5
    assert stock(conn, campaign_id=stored.id, not_expiring_before=stored.campaign.code_expires_at, now=NOW) == {
        "available": 5, "issued": 0, "expired": 0, "voided": 0}
    # Codes are stored in upper case, as printed.
    assert conn.execute("SELECT code FROM reward_codes ORDER BY id LIMIT 1").fetchone()[0] == reward_code(0)


def test_duplicates_in_file_and_in_pool_are_reported_by_line(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    codes(conn, stored, [[reward_code(1)]])
    with pytest.raises(InputError) as info:
        codes(conn, stored, [[reward_code(2)], [reward_code(3)], [reward_code(2)], [reward_code(1)], ["BAD-CODE"]])
    assert sorted((e.line, e.message) for e in info.value.errors) == [
        (4, "duplicate of line 2"),
        (5, "already in a code pool"),
        (6, "does not match the pool's pattern ^[A-Z0-9]{5}(-[A-Z0-9]{5}){4}$"),
    ]
    assert count(conn, "reward_codes") == 1 and count(conn, "code_batches") == 1  # nothing half-imported


def test_each_code_keeps_the_line_it_came_from(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    codes(conn, stored, [[reward_code(1)], [""], [reward_code(2)]])
    assert [tuple(r) for r in conn.execute("SELECT code, source_line FROM reward_codes ORDER BY id")] == [
        (reward_code(1), 2), (reward_code(2), 4)]


def test_the_same_file_twice_is_refused_line_by_line(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    """Duplicates are found by the unique index, not by a copy of every code in memory:
    each refused row is reported, and the rest of the file is still checked."""
    rows = [[reward_code(i)] for i in range(300)]
    codes(conn, stored, rows)
    with pytest.raises(InputError) as info:
        codes(conn, stored, [*rows, ["BAD"], [reward_code(0)]])
    assert info.value.total == 302
    assert info.value.errors[0] == FieldError("code", "already in a code pool", line=2)
    assert count(conn, "reward_codes") == 300 and count(conn, "code_batches") == 1


def test_a_refusal_that_is_not_a_duplicate_is_not_reported_as_one(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    refused = refuse_row(conn, "reward_codes", "code", reward_code(2))
    with pytest.raises(sqlite3.IntegrityError, match=refused):
        codes(conn, stored, [[reward_code(1)], [reward_code(2)]])
    assert count(conn, "reward_codes") == 0 and count(conn, "code_batches") == 0


def test_error_report_is_capped_but_counts_everything(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    with pytest.raises(InputError) as info:
        codes(conn, stored, [["bad"] for _ in range(250)])
    assert len(info.value.errors) == 100 and info.value.total == 250


def test_earliest_expiring_valid_code_is_issued_first(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    campaign = stored.campaign
    codes(conn, stored, [
        [reward_code(1), ""],  # no own expiry: the campaign's stated one (2014-10-31)
        [reward_code(2), "2015-06-30"],
        [reward_code(3), "2014-10-30"],  # expires before the stated expiry: never issued (R-X9)
        [reward_code(4), "2014-10-31"],  # valid through the stated day: issuable, earliest
        [reward_code(5), "2014-12-01T00:00:00Z"],
    ], header=["code", "expires_at"])
    order = []
    while (code := claim_code(conn, campaign_id=stored.id, not_expiring_before=campaign.code_expires_at, now=NOW)):
        order.append(code.code)
    assert order == [reward_code(1), reward_code(4), reward_code(5), reward_code(2)]
    assert stock(conn, campaign_id=stored.id, not_expiring_before=campaign.code_expires_at, now=NOW) == {
        "available": 0, "issued": 4, "expired": 1, "voided": 0}


def test_code_expiry_without_zone_is_refused(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    with pytest.raises(InputError, match="line 2: expires_at: .* has no time zone"):
        codes(conn, stored, [[reward_code(1), "2015-01-01T00:00:00"]], header=["code", "expires_at"])


@pytest.mark.slow
def test_a_million_codes_import_in_one_go(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    data = io.BytesIO(("code\n" + "\n".join(reward_code(i) for i in range(1_000_000)) + "\n").encode())
    report = import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source=data,
                          source_name="million.csv", now=NOW)
    assert report.imported == 1_000_000 == count(conn, "reward_codes")


@pytest.mark.sqlite_only("SQLite's page cache (PRAGMA cache_size); PostgreSQL's shared buffers are the server's")
def test_the_import_cache_is_larger_only_for_the_import(conn: sqlite3.Connection, stored: StoredCampaign) -> None:
    """The code import raises the page cache (its unique index on random codes outgrows
    the default) and gives the connection its own size back, after success and failure."""
    conn.execute("PRAGMA cache_size=-3000")
    seen: list[int] = []
    conn.set_trace_callback(lambda sql: seen.append(int(sql.split("=")[1])) if "cache_size=" in sql else None)
    try:
        codes(conn, stored, [[reward_code(1)]])
        with pytest.raises(InputError):
            codes(conn, stored, [["BAD"]])
    finally:
        conn.set_trace_callback(None)
    assert seen == [-IMPORT_CACHE_MIB * 1024, -3000] * 2
    assert conn.execute("PRAGMA cache_size").fetchone()[0] == -3000


# ---- the CSV readers: records() is rows() without a dict per row

def test_records_pick_columns_in_order_and_pad_a_missing_optional_one() -> None:
    text = "Expires_At , code\n 2015-01-01 ,abc\n\n , \nx,y,z\n"
    assert list(records(io.StringIO(text), ("code", "expires_at", "sku"), ("code",), ("expires_at", "sku"))) == [
        (2, ("abc", "2015-01-01", "")),
        (5, "has 3 fields, the header has 2"),
    ]
    assert list(records(io.StringIO("code\nabc\n"), ("code",), ("code",))) == [(2, ("abc",))]


@pytest.mark.parametrize("text, message", [
    ("", "is empty"), ("sku\nx\n", "missing column code"), ("code,colour\nx,y\n", "unknown column colour"),
])
def test_records_check_the_header_as_rows_does(text: str, message: str) -> None:
    for reader in (lambda s: records(s, ("code",), ("code",), ("sku",)), lambda s: rows(s, ("code",), ("sku",))):
        with pytest.raises(InputError, match=message):
            list(reader(io.StringIO(text)))


cells = st.text(alphabet=st.sampled_from("ab ,\"\n\r\t"), max_size=6)


@given(st.lists(st.lists(cells, min_size=1, max_size=3), max_size=8), st.booleans())
def test_records_agree_with_rows(body: list[list[str]], with_sku: bool) -> None:
    header = ["code", "sku"] if with_sku else ["code"]
    out = io.StringIO()
    csv.writer(out).writerows([header, *body])
    as_dicts = list(rows(io.StringIO(out.getvalue()), ("code",), ("sku",)))
    as_tuples = list(records(io.StringIO(out.getvalue()), ("code", "sku"), ("code",), ("sku",)))
    assert [line for line, _ in as_dicts] == [line for line, _ in as_tuples]
    for (_, row), (_, values) in zip(as_dicts, as_tuples, strict=True):
        if "__error__" in row:
            assert values == row["__error__"]
        else:
            assert values == (row["code"], row.get("sku", ""))
