"""Streaming CSV input with a checked header, for imports that are all or nothing.

Rows come out one at a time with their line number, so a million-row file is never
held as text; errors are collected per line and reported together (capped)."""

from __future__ import annotations

import bisect
import csv
import io
from collections.abc import Callable, Iterator
from operator import itemgetter
from pathlib import Path
from typing import IO

from promo.errors import FieldError, InputError

MAX_REPORTED_ERRORS = 100
MAX_FIELD = 4096  # a longer cell is not a product key, code or date


def _line_of(error: FieldError) -> int:
    return -1 if error.line is None else error.line  # a file's own errors first


class ErrorList:
    """Collects line errors; reports the MAX_REPORTED_ERRORS of the earliest lines, in line
    order, and counts them all. Errors may come out of line order: on PostgreSQL an import
    finds its duplicates after the format errors (promo/backends/bulk.py)."""

    def __init__(self) -> None:
        self.errors: list[FieldError] = []
        self.total = 0

    def add(self, error: FieldError) -> None:
        """Keep the errors of the first lines, in line order, whatever order they are found in
        (on PostgreSQL a chunk's rows are read before its refusals come back)."""
        self.total += 1
        bisect.insort(self.errors, error, key=_line_of)
        if len(self.errors) > MAX_REPORTED_ERRORS:
            self.errors.pop()

    def extend(self, errors: list[FieldError], line: int) -> None:
        for e in errors:
            self.add(FieldError(e.field, e.message, line=line, rule=e.rule))

    def raise_if_any(self) -> None:
        if self.total:
            raise InputError(self.errors, total=self.total)


def open_text(source: Path | str | IO[bytes]) -> IO[str]:
    # utf-8-sig: spreadsheets often write a byte-order mark.
    if isinstance(source, (str, Path)):
        return open(source, encoding="utf-8-sig", newline="")
    return io.TextIOWrapper(source, encoding="utf-8-sig", newline="")


def rows(stream: IO[str], required: tuple[str, ...], optional: tuple[str, ...] = (),
         header_problem: Callable[[list[str]], str | None] | None = None) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, {column: value}) for each non-blank row; a row of the wrong
    width comes as (line number, {"__error__": message}). `header_problem` checks what
    the columns alone cannot say (one of two sets of columns), naming what is wrong."""
    lines = _lines(stream, required, optional)
    _, header = next(lines)
    assert isinstance(header, list)  # _lines gives the header first, as cells
    problem = header_problem(header) if header_problem else None
    if problem:
        raise InputError(FieldError("header", problem, line=1))
    for line, values in lines:
        yield line, {"__error__": values} if isinstance(values, str) else dict(zip(header, values, strict=True))


def records(stream: IO[str], columns: tuple[str, ...], required: tuple[str, ...],
            optional: tuple[str, ...] = ()) -> Iterator[tuple[int, tuple[str, ...] | str]]:
    """rows() for a million-row import: yield (line number, the values of `columns` in
    that order) for each non-blank row, "" for an optional column the file lacks; a row
    of the wrong width comes as (line number, error message). No dict per row."""
    lines = _lines(stream, required, optional)
    _, header = next(lines)
    width = len(header)
    getter = itemgetter(*(header.index(c) if c in header else width for c in columns))
    pick: Callable[[list[str]], tuple[str, ...]] = getter if len(columns) > 1 else lambda values: (getter(values),)
    pad = any(c not in header for c in columns)  # a column the file lacks reads the "" appended at `width`
    for line, values in lines:
        if isinstance(values, str):
            yield line, values
            continue
        if pad:
            values.append("")
        yield line, pick(values)


def _lines(stream: IO[str], required: tuple[str, ...], optional: tuple[str, ...]) -> Iterator[tuple[int, list[str] | str]]:
    """First (1, the checked header), then (line number, stripped cells) per non-blank row,
    or (line number, error message) for a row of the wrong width."""
    csv.field_size_limit(MAX_FIELD)
    reader = csv.reader(stream)
    try:
        header = next(reader, None)
        if header is None:
            raise InputError(FieldError("file", "is empty: expected a header row", line=1))
        header = [h.strip().lower() for h in header]
        missing = [c for c in required if c not in header]
        unknown = [c for c in header if c not in required + optional]
        repeated = sorted({c for c in header if header.count(c) > 1})
        if missing or unknown or repeated:
            expected = ",".join(required + optional)
            what = (f"missing column {', '.join(missing)}" if missing else f"unknown column {', '.join(unknown)}"
                    if unknown else f"column {', '.join(repeated)} appears more than once")
            raise InputError(FieldError("header", f"{what}; expected {expected}", line=1))
        yield 1, header
        width = len(header)
        for record in reader:  # the hot loop of a million-row import: keep it lean
            values = [cell.strip() for cell in record]
            if not any(values):
                continue
            if len(values) != width:
                yield reader.line_num, f"has {len(record)} fields, the header has {width}"
                continue
            yield reader.line_num, values
    except UnicodeDecodeError:
        raise InputError(FieldError("file", "is not UTF-8 text", line=reader.line_num + 1)) from None
    except csv.Error as exc:
        raise InputError(FieldError("file", f"is not valid CSV: {exc}", line=reader.line_num)) from None
