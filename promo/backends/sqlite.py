"""SQLite's dialect: the embedded default (one writer; BEGIN IMMEDIATE takes its lock first)."""

from __future__ import annotations

from promo.backends.dialect import Dialect

SQLITE = Dialect(
    name="sqlite",
    begin_write="BEGIN IMMEDIATE",
    skip_locked="",  # one writer at a time: nothing is ever locked by another transaction
    time_type="TEXT",
    case_insensitive_like="LIKE",
)
