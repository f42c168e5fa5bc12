"""Keyset paging (promo/paging.py): cursors read strictly, and pages that cover a list
exactly once forwards and come back the same way, on a real SQLite table."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from promo.errors import InputError
from promo.paging import MAX_ID, Keyset, parse_id


@given(st.text(max_size=30))
def test_a_cursor_is_digits_within_64_bits_or_a_named_error(raw: str) -> None:
    try:
        value = parse_id(raw, "before")
    except InputError as exc:
        assert exc.errors[0].field == "before" and not (raw.isascii() and raw.isdigit() and int(raw) <= MAX_ID)
        return
    assert value is None if raw == "" else (value == int(raw) and 0 <= value <= MAX_ID and raw.isascii())


@pytest.mark.parametrize("raw", ["²", "١٢", "1_000", " 12", "+5", "-1", "9223372036854775808", "9" * 400, "0x10"])
def test_what_python_calls_a_number_is_not_a_cursor(raw: str) -> None:
    with pytest.raises(InputError):
        parse_id(raw, "after")
    assert parse_id("9223372036854775807", "after") == MAX_ID and parse_id("007", "after") == 7


def test_before_and_after_together_are_refused() -> None:
    with pytest.raises(InputError) as caught:
        Keyset.from_query({"p_before": "3", "p_after": "1"}, prefix="p_")
    assert caught.value.errors[0].field == "p_after"


def _fetch(conn: sqlite3.Connection, keyset: Keyset) -> list[int]:
    condition, order, params = keyset.sql("id")
    return [r[0] for r in conn.execute(f"SELECT id FROM t WHERE {condition} ORDER BY {order} LIMIT :keyset_limit", params)]


@given(st.sets(st.integers(1, 500), max_size=60), st.integers(1, 9), st.booleans())
def test_pages_cover_the_list_once_and_walk_back_the_same_way(ids: set[int], size: int, descending: bool) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    conn.executemany("INSERT INTO t VALUES (?)", [(i,) for i in ids])
    expected = sorted(ids, reverse=descending)
    pages, keyset = [], Keyset(size=size, descending=descending)
    while True:
        page = keyset.page(_fetch(conn, keyset), lambda i: i)
        pages.append(page.items)
        assert (page.prev_query is None) == (len(pages) == 1)
        if page.next_query is None:
            break
        keyset = Keyset.from_query(page.next_query, size=size, descending=descending)
    assert [i for items in pages for i in items] == expected
    back = []
    while page.prev_query is not None:
        keyset = Keyset.from_query(page.prev_query, size=size, descending=descending)
        page = keyset.page(_fetch(conn, keyset), lambda i: i)
        back.append(page.items)
    assert back == pages[-2::-1]


@given(st.lists(st.integers(1, 50), unique=True, max_size=30), st.integers(1, 7))
def test_pages_of_a_sorted_list_follow_on_even_when_the_cursor_row_is_gone(order: list[int], size: int) -> None:
    every = {i: n for n, i in enumerate(order)}  # id -> its place in the full list
    shown = [i for i in order if i % 3]  # the filter drops some rows

    def position(row_id: int) -> tuple[int, bool] | None:
        if row_id not in every:
            return None
        later = [n for n, i in enumerate(shown) if every[i] >= every[row_id]]
        return (later[0] if later else len(shown)), row_id in shown

    seen, keyset = [], Keyset(size=size, descending=False)
    while True:
        page = keyset.page_of_sorted(shown, lambda i: i, position)
        seen += page.items
        if page.next_query is None:
            break
        keyset = Keyset.from_query(page.next_query, size=size, descending=False)
    assert seen == shown
    for gone in (i for i in order if not i % 3):  # a cursor on a row filtered out since: the rows after it
        page = Keyset(after=gone, size=size, descending=False).page_of_sorted(shown, lambda i: i, position)
        assert page.items == [i for i in shown if every[i] > every[gone]][:size]
    with pytest.raises(InputError):
        Keyset(after=999, size=size).page_of_sorted(shown, lambda i: i, position)
