"""SQL only with parameters: every execute() in promo/ gets a literal SQL string, or is one of
the reviewed places below that build SQL from code-controlled pieces only (never input)."""

from __future__ import annotations

import ast
from pathlib import Path

PROMO = Path(__file__).resolve().parent.parent / "promo"
# (module, function): why its SQL is built, and from what.
REVIEWED_DYNAMIC_SQL = {
    ("bulk.py", "copy_insert"): "the staging and move-in of a PostgreSQL import: the table and columns of the literal INSERT"
                                " its caller passes (codes, activations), quoted by names.quoted; values go through COPY",
    ("copy_sides.py", "_all"): "`promo db copy`: statements built by the methods below, values as parameters",
    ("copy_sides.py", "columns"): "`promo db copy`: a table name read from the source's own schema, quoted",
    ("copy_sides.py", "count"): "`promo db copy`: a table name read from the schema, quoted",
    ("copy_sides.py", "finish"): "`promo db copy`: setval on identity columns read from the target's schema, quoted",
    ("copy_sides.py", "primary_key"): "`promo db copy`: a table name read from the schema, quoted",
    ("copy_sides.py", "refers_to"): "`promo db copy`: a table name read from the schema, quoted",
    ("copy_sides.py", "rows"): "`promo db copy`: table and column names read from the schema, quoted",
    ("copy_sides.py", "write"): "`promo db copy`: table and column names read from the schema, quoted; values as parameters",
    ("db.py", "configure"): "PRAGMA values: an int() and a value checked against FULL/NORMAL",
    ("db.py", "_commit_on_loop"): "PRAGMA busy_timeout restored from an int()",
    ("db.py", "larger_cache"): "PRAGMA cache_size from int()s: the MiB asked for, then the size read back",
    ("migrate.py", "migrate"): "statements of the numbered migration files shipped in the package",
    ("db.py", "insert_each"): "the literal INSERT its callers pass (the code and activation imports); values are parameters",
    ("outbox.py", "mark_sent"): "an optional fixed clause",
    ("rewards.py", "get_reward"): "a constant SELECT plus a constant WHERE",
    ("rewards.py", "rewards_of"): "a constant SELECT plus a constant WHERE",
    ("decision_log.py", "query_attempts"): "WHERE joins fixed clauses chosen by AttemptFilter; every value is a parameter",
    ("decision_log.py", "count_attempts"): "the same fixed clauses as query_attempts",
    ("decision_log.py", "attempt_detail"): "a constant SELECT plus a constant WHERE",
    ("reviews.py", "get_claim"): "a constant SELECT plus a constant WHERE",
    ("reviews.py", "pending_claims"): "a constant SELECT and WHERE plus Keyset's clause on a fixed column",
    ("review_history.py", "decided_claims"): "CLAIM_SELECT, fixed clauses chosen by DecidedFilter plus Keyset's clause on a fixed column",
    ("jobs.py", "get_job"): "a constant SELECT plus a constant WHERE",
    ("organisations.py", "get_organisation"): "a constant SELECT plus a constant WHERE",
    ("organisations.py", "organisations_of"): "a constant SELECT plus a constant WHERE",
    ("organisations.py", "organisations_by_status"): "a constant SELECT plus a fixed standing condition (STANDING_SQL)",
    ("validation_codes.py", "get_code"): "a constant SELECT plus a constant WHERE",
    ("validation_codes.py", "find_code"): "a constant SELECT plus a constant WHERE",
    ("validation_codes.py", "codes_of_organisation"): "a constant SELECT plus a constant WHERE",
    ("validation_codes.py", "codes_held_by"): "a constant SELECT plus a constant WHERE",
    ("jobs.py", "recent_jobs"): "a constant SELECT plus a constant WHERE",
    ("campaign_store.py", "ask_campaign"): "a constant column list plus a constant WHERE",
    ("campaign_store.py", "list_campaigns"): "a constant column list",
    ("campaign_store.py", "change_state"): "the column is one of two names fixed in the function; values are parameters",
    ("codes.py", "batches"): "a constant SELECT plus paging.Keyset's clause on a fixed column; values are parameters",
    ("codes.py", "batch_of"): "a constant SELECT plus a constant WHERE",
    ("organisations.py", "organisations_page"): "a constant SELECT, a fixed standing condition (STANDING_SQL)"
                                                       " plus Keyset's clause on a fixed column",
    ("donations.py", "requests_page"): "a constant SELECT and WHERE plus Keyset's clause on a fixed column",
    ("donations.py", "requests_by_id"): "constant SELECTs plus an IN list of named parameters :r0, :r1 …, one per request",
    ("redemption_lookup.py", "find_redemptions"): "the SQL of lookup_sql: one of four constant SELECTs plus Keyset's clause",
    ("staff_actions.py", "query_actions"): "the SQL of actions_sql: fixed clauses chosen by ActionFilter plus Keyset's clause",
    ("activity.py", "_count"): "the module's constant _TAKE_FREE with the dialect's constant SKIP LOCKED, and the"
                               " constant upsert (_UPSERT); values are parameters",
    ("totals.py", "take"): "the module's constant _TAKE_ROOM with the dialect's constant SKIP LOCKED; values are parameters",
    ("totals.py", "_wait_for_room"): "the module's constant _WAIT_FOR_ROOM with the dialect's constant row lock; values are parameters",
    ("totals.py", "share_out"): "constants _GATE and _ALL_ROWS with the dialect's constant locks, _STALE; values are parameters",
    ("totals.py", "ask_take"): "the module's constant _TAKE_FREE with the dialect's constant SKIP LOCKED; values are parameters",
    ("totals.py", "taken"): "the module's constant _TAKE; values are parameters",
    ("totals.py", "make_rows"): "the module's constant _MAKE_ROWS; values are parameters",
    ("redemption.py", "mailbox_sibling"): "the module's constant _SIBLING; values are parameters",
    ("redemption.py", "ask_prior_redemptions"): "the module's constant _PRIOR (a constant SELECT with the constant _SIBLING_IN"
                                                 " as a subquery, the campaign named by the constant _CAMPAIGN_ID); values are parameters",
    ("redemption.py", "_ask_replay"): "the module's constant _REPLAY (a constant SELECT, the campaign named by the constant"
                                      " _CAMPAIGN_ID); values are parameters",
    ("stock.py", "pool_counts"): "the module's constant _COUNTS; values are parameters",
    ("stock.py", "_armed_and_available"): "the module's constant _COUNTS; values are parameters",
    ("pg_connection.py", "execute"): "the caller's SQL in psycopg's placeholders (pg_sql.translate), plus RETURNING of an"
                                     " identity column read from the schema",
    ("pg_connection.py", "executemany"): "the caller's SQL in psycopg's placeholders (pg_sql.translate)",
    ("codes.py", "ask_claim"): "the constant _TAKE_FREE_CODE with the dialect's constant SKIP LOCKED (empty on SQLite);"
                               " values are parameters",
    ("codes.py", "claimed"): "the constants _FREE_CODE and _ANY_FREE_CODE with the dialect's constant FOR UPDATE [SKIP LOCKED]"
                             " (empty on SQLite); values are parameters",
    ("audit.py", "seal"): "the dialect's constant sealer lock (PostgreSQL's advisory lock; SQLite has no sealer)",
    ("postgresql.py", "in_transaction"): "one of two constant BEGINs (READ COMMITTED for writes, a read-only snapshot for reads)",
    ("pg_schema.py", "migrate"): "statements of the numbered PostgreSQL migration files shipped in the package",
    ("pg_connection.py", "__exit__"): "one of two constant statements, ROLLBACK or COMMIT",
    ("campaign_list.py", "_rows"): "the dialect's JSON member expressions for five fixed paths of the definition column",
    ("donations.py", "request_donation"): "a constant SELECT plus the dialect's constant FOR UPDATE (empty on SQLite)",
    ("outbox.py", "claim_due"): "a constant SELECT plus the dialect's constant FOR UPDATE SKIP LOCKED (empty on SQLite)",
    ("activity.py", "hourly"): "an IN list of named parameters :o0, :o1 …, one per outcome; values are parameters",
}


def _is_literal(node: ast.expr) -> bool:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return True
    # Adjacent literals joined by +: still a literal.
    return isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and _is_literal(node.left) and _is_literal(node.right)


def dynamic_sql_sites() -> set[tuple[str, str]]:
    found = set()
    for path in PROMO.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for function in [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]:
            for call in [n for n in ast.walk(function) if isinstance(n, ast.Call)]:
                if isinstance(call.func, ast.Attribute) and call.func.attr in ("execute", "executemany") and call.args:
                    if not _is_literal(call.args[0]):
                        found.add((path.name, function.name))
    return found


def test_sql_is_literal_except_in_reviewed_places() -> None:
    unreviewed = dynamic_sql_sites() - set(REVIEWED_DYNAMIC_SQL)
    assert not unreviewed, f"SQL built at run time here; use parameters, or review and list it: {sorted(unreviewed)}"


def test_the_reviewed_list_has_no_stale_entries() -> None:
    assert set(REVIEWED_DYNAMIC_SQL) <= dynamic_sql_sites()
