"""PostgreSQL's dialect, and the translation of the shared SQL into psycopg's spelling.

The storage functions write SQLite's parameters (`:name`, some `?`); psycopg wants
`%(name)s` and `%s`, and then reads every other `%` as its own, so a literal one is
doubled. Text inside quotes and comments is left alone. A translation is cached per
statement text: the storage functions' SQL is a few hundred constant strings.
"""

from __future__ import annotations

import re
from functools import lru_cache

from promo.backends.dialect import Dialect

POSTGRESQL = Dialect(
    name="postgresql",
    begin_write="BEGIN",  # READ COMMITTED; the claim takes its row FOR UPDATE SKIP LOCKED
    skip_locked=" FOR UPDATE SKIP LOCKED",
    row_lock=" FOR UPDATE",
    step_lock=" FOR NO KEY UPDATE",
    time_type="timestamptz",
    case_insensitive_like="ILIKE",
    seal_lock="SELECT pg_advisory_xact_lock(7001)",  # 7001: the audit chain's lock key, Promo's own
    seal_try_lock="SELECT pg_try_advisory_xact_lock(7001)",
    # Connection lost, server shutting down, too many connections, disk full: try again later.
    unavailable_sqlstates=frozenset({"08000", "08001", "08003", "08004", "08006", "57P01", "57P02", "57P03",
                                     "53000", "53100", "53200", "53300"}),
    retry_sqlstates=frozenset({"40001", "40P01"}),  # serialization_failure, deadlock_detected
    reruns_transactions=True,
)

# SQLite's transaction openers; PostgreSQL has one BEGIN (a writer's row locks do the rest).
_BEGIN = re.compile(r"\s*BEGIN(\s+(IMMEDIATE|DEFERRED|EXCLUSIVE))?(\s+TRANSACTION)?\s*;?\s*", re.IGNORECASE)
_PRAGMA = re.compile(r"\s*PRAGMA\b", re.IGNORECASE)
# SQLite's tuning of its own page cache (promo.db.larger_cache around bulk imports): nothing
# to tune per connection on PostgreSQL, so reading it gives 0 and setting it does nothing.
_TUNING_PRAGMA = re.compile(r"\s*PRAGMA\s+cache_size\s*(=\s*-?\d+)?\s*;?\s*", re.IGNORECASE)


class UnsupportedStatement(ValueError):
    """SQL that only SQLite understands reached a PostgreSQL connection (a missing dialect hook)."""


@lru_cache(maxsize=4096)
def translate(sql: str) -> str:
    """The shared SQL in psycopg's placeholders, with SQLite-only statements mapped or refused."""
    if _BEGIN.fullmatch(sql):
        return "BEGIN"
    if _TUNING_PRAGMA.fullmatch(sql):
        return "SELECT 0"
    if _PRAGMA.match(sql):
        raise UnsupportedStatement(f"PRAGMA is SQLite's own; this statement needs a dialect hook: {sql[:60]!r}")
    return _placeholders(sql)


def _placeholders(sql: str) -> str:
    out: list[str] = []
    styles: set[str] = set()
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in "'\"":  # a string or quoted identifier: copied as is ('' and "" escape themselves)
            end = sql.find(ch, i + 1)
            while end != -1 and end + 1 < n and sql[end + 1] == ch:
                end = sql.find(ch, end + 2)
            if end == -1:
                raise ValueError(f"unterminated quote in SQL: {sql[i:i + 40]!r}")
            out.append(sql[i:end + 1].replace("%", "%%"))
            i = end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            end = n if end == -1 else end
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            end = n if end == -1 else end + 2
            out.append(sql[i:end].replace("%", "%%"))
            i = end
        elif ch == "%":
            out.append("%%")
            i += 1
        elif ch == "?":
            out.append("%s")
            styles.add("?")
            i += 1
        elif ch == ":" and sql.startswith("::", i):  # a PostgreSQL cast in a dialect fragment
            out.append("::")
            i += 2
        elif ch == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_"):
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            out.append(f"%({sql[i + 1:j]})s")
            styles.add(":")
            i = j
        else:
            out.append(ch)
            i += 1
    if len(styles) > 1:
        raise ValueError(f"SQL mixes :name and ? parameters: {sql[:60]!r}")
    return "".join(out)


_INSERT = re.compile(r"\s*INSERT\s+INTO\s+(\w+)", re.IGNORECASE)
_RETURNING = re.compile(r"\bRETURNING\b", re.IGNORECASE)
_VALUES = re.compile(r"\bVALUES\b", re.IGNORECASE)


@lru_cache(maxsize=4096)
def inserted_table(sql: str) -> str | None:
    """The table a single-row `INSERT ... VALUES` without RETURNING writes, else None: the
    statements whose `lastrowid` the connection supplies by appending `RETURNING id`."""
    match = _INSERT.match(sql)
    if match is None or _RETURNING.search(sql) or not _VALUES.search(sql):
        return None
    return match.group(1).lower()
