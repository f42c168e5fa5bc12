"""The floor under a PostgreSQL redemption on this machine (issue 18): the redemption's own
statements run by pgbench's C client, so no Python at all, against SQLite's redemption in the
same run.

    .venv/bin/python bench/pg_floor.py                 # about 2 minutes
    .venv/bin/python bench/pg_floor.py --seconds 3 --records 20000   # a quick look

Issue 18 asks PostgreSQL (app + server) to cost at most 1.5x SQLite's CPU per redemption, and
two PostgreSQL instances to serve at least as many redemptions as one SQLite instance, on this
2-core machine. This measures what no change to the app can go below:

1. The statements: one redemption is written by the service's own code (`in_transaction`,
   pipelined) with psycopg's execute recorded, so the script follows the code as it is. Each
   becomes a pgbench command with its parameters as literals, but for what must differ per
   redemption: the account, the product key (existing activation records), the message id, and
   the ids the statements return (the claimed code: `\\gset`; the redemption's id: `currval`).
2. Two scripts, each run by `pgbench -M prepared` (as psycopg prepares a statement after 5
   uses) with each of `--connections` in turn, for `--seconds`:
   - *waited*: each statement waits for its answer (as `redeem_sync`);
   - *one round trip*: the whole transaction in one pipeline (`\\startpipeline`), the code's
     claim and the redemption's INSERT joined in one statement (a pipeline cannot read the
     claimed id in between). Fewer waits than the service's write can have (6): below its floor.
3. SQLite, in this process, through the service's store (`Database.write_grouped`: group
   commit, `--in-flight` redemptions at once) and one at a time.

Printed per configuration: redemptions/s, CPU ms per redemption of the PostgreSQL backends
(/proc), of the client (pgbench, or this process for SQLite), and their sum; then the ratios
the issue's targets are about. The database is checked after each PostgreSQL run by the benchmark's
own verification (bench/verify.py: each code once, every redemption's outbox row and audit
event, the chain), and every transaction wrote its decision-log row. The statements are
recorded once, on the database every run is cloned from. Compare the ratios within one run (this machine drifts by ±30 %).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from bench.inprocess import by_service_write, in_flight, load, one_at_a_time, pg_database, request  # noqa: E402
from bench.sampling import CpuMeter, backend_pids  # noqa: E402
from bench.verify import passed, verify  # noqa: E402
from promo.activity import SHARDS  # noqa: E402
from promo.backends import pg_connection  # noqa: E402
from promo.db import Database, connect  # noqa: E402
from promo.migrate import migrate  # noqa: E402
from tests.support.pg import ADMIN_URL, scratch_database  # noqa: E402

PGBENCH = "pgbench"
SAMPLE_ACCOUNT = 0  # the redemption recorded to make the script (its values are replaced)

# What differs per redemption, as SQL over pgbench's variable :n (unique per transaction).
ACCOUNT = "('u' || CAST(:n AS text) || '@example.com')"
PER_REDEMPTION = {
    "account": ACCOUNT,
    "key": "('PK' || lpad(CAST(:n AS text), 23, '0'))",  # tests.support.database.product_key
    "lo": "('u' || CAST(:n AS text) || '+')",
    "hi": "('u' || CAST(:n AS text) || ',')",
    "actor": f"('account:' || {ACCOUNT})",
    "message_id": "('<redemption-' || CAST(:n AS text) || '@promo.invalid>')",
    "redemption": "('redemption:' || currval('redemptions_id_seq'))",
    "redemption_id": "currval('redemptions_id_seq')",
    "code_id": ":code_id",
}


def record_statements(url: str) -> list[tuple[str, dict[str, Any]]]:
    """(query, params) of one redemption as the service writes it, in the order sent."""
    conn = pg_connection.connect(url)
    by_service_write(conn, SAMPLE_ACCOUNT + 1)  # warm: the campaign's rows, its counter's
    seen: list[tuple[str, dict[str, Any]]] = []
    original = psycopg.Cursor.execute

    def recording(self: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
        seen.append((str(query), dict(params) if isinstance(params, dict) else {}))
        return original(self, query, params, **kwargs)

    psycopg.Cursor.execute = recording  # type: ignore[method-assign]
    try:
        assert by_service_write(conn, SAMPLE_ACCOUNT)
    finally:
        psycopg.Cursor.execute = original  # type: ignore[method-assign]
    conn.close()
    return seen


def sample_roles(sample_redemption: int) -> dict[str, str]:
    """The recorded redemption's per-redemption text values, each with its role in PER_REDEMPTION."""
    sample = request(SAMPLE_ACCOUNT).normalized()
    account = sample.account_email
    local = account.partition("@")[0]
    return {account: "account", sample.product_key: "key", f"{local}+": "lo", f"{local},": "hi",
            f"account:{account}": "actor", f"redemption:{sample_redemption}": "redemption"}


def role_of(name: str, value: Any, roles: dict[str, str]) -> str | None:
    """Which per-redemption value a recorded parameter is, if any (ids by their parameter's name:
    the sample's code and redemption ids may be equal to each other or to a count)."""
    if name == "code":
        return "code_id"
    if name == "rid":
        return "redemption_id"
    if not isinstance(value, str):
        return None
    if value.startswith("<redemption-"):
        return "message_id"
    return roles.get(value)


def as_pgbench(query: str, params: dict[str, Any], roles: dict[str, str], literal: Any, defines: dict[str, str]) -> str:
    """One statement with its parameters as literals, but the per-redemption ones as SQL. pgbench
    would read ':x' inside a literal (JSON's "terms_accepted":true) as a variable, so such values
    go in as variables of their own (`defines`: pgbench -D), sent as parameters."""
    marked = {}
    for name, value in params.items():
        role = role_of(name, value, roles)
        if role is None and isinstance(value, str) and re.search(r":[A-Za-z_]", value):
            role = f"v{len(defines)}"
            defines[role] = value
        marked[name] = value if role is None else f"\x01{role}\x01"
    text = literal(query, marked) if marked else query.replace("%%", "%")
    return re.sub("'\x01(\\w+)\x01'", lambda m: PER_REDEMPTION.get(m.group(1), f":{m.group(1)}"), text)


def scripts(recorded: list[tuple[str, dict[str, Any]]], url: str) -> tuple[dict[str, str], dict[str, str]]:
    """The two pgbench scripts (waited, one round trip) from the recorded statements, and the
    variables they read (pgbench -D)."""
    with psycopg.connect(url) as conn:
        cursor = psycopg.ClientCursor(conn)

        def literal(query: str, params: dict[str, Any]) -> str:
            return cursor.mogrify(query, params)

        claim_at = next(i for i, (q, _) in enumerate(recorded) if q.startswith("UPDATE reward_codes"))
        insert_at = next(i for i, (q, _) in enumerate(recorded) if q.startswith("INSERT INTO redemptions "))
        roles = sample_roles(next(p["rid"] for q, p in recorded if q.startswith("INSERT INTO redemption_attempts")))
        defines: dict[str, str] = {}
        lines = [as_pgbench(q, p, roles, literal, defines) for q, p in recorded]
    # :n runs over the activation records not yet redeemed (0 and 1 were, to record the statements)
    head = ["\\set n 2 + :i * :clients + :client_id", "\\set i :i + 1"]
    waited = [line + (" \\gset code_" if k == claim_at else ";") for k, line in enumerate(lines)]
    claim = lines[claim_at]
    insert = re.fullmatch(r"(INSERT INTO redemptions \([^)]*\)) VALUES \((.*)\)( RETURNING \w+)", lines[insert_at])
    assert insert is not None, lines[insert_at]
    joined = (f"WITH code AS ({claim}) {insert.group(1)} SELECT {insert.group(2).replace(':code_id', 'code.id')}"
              f" FROM code{insert.group(3)}")
    piped = [line + ";" for k, line in enumerate(lines) if k not in (claim_at, insert_at)]
    piped.insert(insert_at - 1, joined + ";")
    return ({"waited": "\n".join(head + waited) + "\n",
             "one round trip": "\n".join(head + ["\\startpipeline"] + piped + ["\\endpipeline"]) + "\n"}, defines)


def logged(url: str) -> tuple[int, int]:
    """Redemptions and decision-log rows."""
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT (SELECT COUNT(*) FROM redemptions), (SELECT COUNT(*) FROM redemption_attempts)").fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def steady_state(url: str) -> None:
    """Every activity counter row of the hour made (the service makes them as concurrent writers
    need them, up to SHARDS), and fresh statistics."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("INSERT INTO campaign_activity (campaign_id, outcome, hour, reason, shard, n)"
                     " SELECT campaign_id, outcome, hour, reason, s, 0 FROM campaign_activity, generate_series(0, %s) AS s"
                     " WHERE outcome = 'redeemed' ON CONFLICT DO NOTHING", (SHARDS - 1,))
        conn.execute("ANALYZE")


def run_pgbench(url: str, script: str, defines: dict[str, str], clients: int, seconds: int) -> dict[str, float]:
    before = logged(url)
    with tempfile.NamedTemporaryFile("w", suffix=".sql") as file:
        file.write(script)
        file.flush()
        server = CpuMeter(backend_pids(ADMIN_URL, url.rpartition("/")[2]), interval=0.2).start()
        children0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        command = [PGBENCH, "-n", "-M", "prepared", "-c", str(clients), "-j", "2", "-T", str(seconds),
                   "-D", "i=0", "-D", f"clients={clients}", *(f"-D{name}={value}" for name, value in defines.items()),
                   "-f", file.name, url]
        done = subprocess.run(command, capture_output=True, text=True)
        wall = time.perf_counter() - started
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        server_s = server.stop()
    if done.returncode != 0:
        raise SystemExit(f"pgbench failed ({done.returncode}):\n{done.stderr[-3000:]}\n--- script:\n{script}")
    after = logged(url)
    n, attempts = after[0] - before[0], after[1] - before[1]
    checks = verify(url)  # the benchmark's own: each code once, every redemption's outbox row and audit event, the chain
    assert n > 0 and attempts == n and passed(checks), (n, attempts, checks)
    client_s = (children.ru_utime + children.ru_stime) - (children0.ru_utime + children0.ru_stime)
    tps = re.search(r"tps = ([\d.]+) \(without initial connection time\)", done.stdout)
    return {"per_s": float(tps.group(1)) if tps else n / wall, "server_ms": server_s / n * 1000,
            "client_ms": client_s / n * 1000, "n": n}


async def sqlite_grouped(path: Path, n: int, at_once: int) -> dict[str, float]:
    """SQLite as the service writes it: group commit, `at_once` redemptions in flight."""
    async with Database(path) as db:
        got = await in_flight(db, n, at_once)
    return {"per_s": got["per_s"], "client_ms": got["app_ms"], "server_ms": 0.0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--in-flight", type=int, default=64, help="SQLite's redemptions in flight")
    parser.add_argument("--connections", type=int, nargs="+", default=[16, 64], help="pgbench's, each in turn")
    parser.add_argument("--records", type=int, default=200_000, help="activation records and codes (PostgreSQL)")
    parser.add_argument("--sqlite", type=int, default=20_000, help="redemptions on SQLite, each way")
    parser.add_argument("--show", action="store_true", help="print the pgbench scripts")
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "floor.sqlite3"
        conn = connect(path)
        migrate(conn)
        load(conn, 2 * args.sqlite)
        alone = one_at_a_time(conn, range(args.sqlite, 2 * args.sqlite))
        results["SQLite, one at a time"] = {"client_ms": alone["app_ms"], "server_ms": 0.0}
        conn.close()
        results[f"SQLite, group commit, {args.in_flight} in flight"] = asyncio.run(
            sqlite_grouped(path, args.sqlite, args.in_flight))
    with pg_database(args.records) as template_url:
        made, defines = scripts(record_statements(template_url), template_url)
        steady_state(template_url)
        for connections in args.connections:
            for way in ("waited", "one round trip"):
                if args.show:
                    print(f"--- {way}\n{made[way]}")
                with scratch_database(template_url.rpartition("/")[2]) as url:  # each run from the same state
                    results[f"pgbench, {way}, {connections} connections"] = run_pgbench(
                        url, made[way], defines, connections, args.seconds)

    print("                                                per s   client ms   server ms   total ms")
    for name, got in results.items():
        total = got["client_ms"] + got["server_ms"]
        per_s = f"{got['per_s']:7.0f}" if "per_s" in got else "      –"
        print(f"  {name:44s} {per_s}   {got['client_ms']:9.2f}   {got['server_ms']:9.2f}   {total:8.2f}")
    lite = results[f"SQLite, group commit, {args.in_flight} in flight"]
    print(f"against SQLite's group commit ({lite['client_ms']:.2f} ms, {lite['per_s']:.0f}/s):")
    for name, got in results.items():
        if name.startswith("pgbench"):
            print(f"  {name:44s} server alone {got['server_ms'] / lite['client_ms']:.2f}x CPU,"
                  f" with pgbench {(got['server_ms'] + got['client_ms']) / lite['client_ms']:.2f}x;"
                  f" throughput {got['per_s'] / lite['per_s']:.2f}x")


if __name__ == "__main__":
    main()
