"""What a backend spells its own way: the few SQL fragments that differ between stores.

Everything else is shared SQL that both SQLite (3.35+) and PostgreSQL accept as written:
`:name` parameters (PostgreSQL's connection translates them), `INSERT ... ON CONFLICT (...)
DO UPDATE/DO NOTHING`, `RETURNING`, `COALESCE`, `||`, `LIKE ... ESCAPE`, window functions.
A fragment belongs here only when no portable spelling exists.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Dialect:
    name: str  # "sqlite" | "postgresql"
    begin_write: str  # opens a write transaction: SQLite takes the write lock up front
    skip_locked: str  # appended to a SELECT that claims a row another writer may hold
    time_type: str  # the column type of an instant (promo.timeutil.db_time on both)
    case_insensitive_like: str  # SQLite's LIKE ignores ASCII case; PostgreSQL's does not
    # The audit chain's sealer lock (issue 18): where writers run at once, events are appended
    # unsealed and one sealer at a time chains them (promo/audit.py); empty: sealed at append
    # (SQLite's write lock already serialises writers). The try form returns a boolean.
    seal_lock: str = ""
    seal_try_lock: str = ""
    # Appended to a SELECT of the row a check-then-write serialises on (an organisation's
    # allocation, R-N2): SQLite's write lock already serialises every writer.
    row_lock: str = ""
    # Appended to a SELECT of a row that serialises a rare step (sharing a cap out, totals.py)
    # without blocking the inserts that refer to that row (their foreign key checks).
    step_lock: str = ""
    unavailable_sqlstates: frozenset[str] = frozenset()  # "try again", not a bug (PostgreSQL)
    retry_sqlstates: frozenset[str] = frozenset()  # serialization failure, deadlock: rerun the transaction
    # Writers run at once (PostgreSQL): a transaction that lost a race may be rerun whole
    # (RerunTransaction) instead of rolled back to a savepoint. SQLite's one writer never races.
    reruns_transactions: bool = False

    def suffix(self, expr: str, length: str) -> str:
        """The last `length` characters of `expr` (indexed tails: redemptions_key_tail)."""
        if self.name == "sqlite":
            return f"substr({expr}, -({length}))"
        return f"right({expr}, {length})"

    def json_text(self, column: str, path: str) -> str:
        """A member of a JSON text column by its dotted path ("redemption_window.first_day"),
        as text on PostgreSQL (SQLite's json_extract gives the JSON value: same for strings)."""
        keys = path.split(".")
        if not all(key.isidentifier() for key in keys):
            raise ValueError(f"not a JSON path this module spells: {path!r}")
        if self.name == "sqlite":
            return f"json_extract({column}, '$.{path}')"
        return f"(({column})::jsonb #>> '{{{','.join(keys)}}}')"

    def hour_of(self, column: str) -> str:
        """The UTC hour an instant falls in, comparable with db_time text (charts, back-fills)."""
        if self.name == "sqlite":
            return f"(substr({column}, 1, 13) || ':00:00.000000Z')"
        return f"date_trunc('hour', {column})"

    def total(self, expr: str) -> str:
        """SQLite's total(): a sum that is 0.0, never NULL, over no rows."""
        if self.name == "sqlite":
            return f"total({expr})"
        return f"COALESCE(sum({expr}), 0)::float8"
