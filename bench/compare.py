"""Scale-out benchmark (issue 18): SQLite with 1 instance, PostgreSQL with 1 and 2 instances, in
one run, after the hello-world baseline. `scripts/bench compare` runs all three;
`scripts/bench --database sqlite|postgresql --instances N` runs one. bench/README.md says what
each figure means. Everything targets 127.0.0.1 and stops by itself.

The data is loaded once into a SQLite file through the application's own code (codes,
activation records, signed-in sessions), then each configuration gets a fresh database
holding the same rows: a copy of the file, or a PostgreSQL database cloned from a template
filled by `promo db copy`'s code (promo_test_bench_*, dropped afterwards). For each
configuration, N `promo serve` processes on N ports, then in this order (redemptions before
anything else on the same database; no refusal run):
1. closed loop: wrk at 64 connections spread over the instances; CPU seconds of the app
   processes and of the database's PostgreSQL backends (/proc), lock waits (pg_stat_activity);
2. open loop (bench/openloop.py) at 50 % and 90 % of the closed loop's redemptions/s;
3. the same open loop at 50 % while `promo import-codes` imports as many codes as the pool holds;
4. the same while 50 failed staff sign-ins arrive at once, from 50 loopback addresses;
5. the instances stopped, the database verified (bench/verify.py).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import openloop  # noqa: E402
from bench.data import code  # noqa: E402
from bench.run import LUA, PROMO, baseline, key, new_offer, peak_rss_mb, serve_env, wait_ready, write_lines  # noqa: E402
from bench.sampling import CpuMeter, LockSampler, backend_pids  # noqa: E402
from bench.signin_burst import attack, prepare_attackers  # noqa: E402
from bench.verify import passed, verify  # noqa: E402
from promo.activations import import_activations  # noqa: E402
from promo.backends.copy import copy_database  # noqa: E402
from promo.catalog import load_catalog  # noqa: E402
from promo.codes import import_codes  # noqa: E402
from promo.db import connect  # noqa: E402
from tests.support.mailserver import free_port  # noqa: E402
from tests.support.pg import CODE_POINT_ORDER  # noqa: E402
from tests.support.served import mint_sessions, write_config  # noqa: E402

ADMIN_URL = os.environ.get("PROMO_BENCH_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")
PREFIX = "promo_test_bench_"  # the shared server's rule: every database a test or bench makes
SLUG = "bench"
PATH = f"/offers/{SLUG}/redeem"
# Every activation record has its signed-in account: the lines last through the closed loop
# (a third), both open loops and both disturbances at about 1,500 redemptions/s.
CODES, ACTIVATIONS, ACCOUNTS = 1_000_000, 200_000, 200_000
MIN_ACCOUNTS = 8_000  # a smoke run still needs a line per request it sends
CONFIGS = {"sqlite-1": ("sqlite", 1), "postgresql-1": ("postgresql", 1), "postgresql-2": ("postgresql", 2)}


BEGAN = time.monotonic()


def say(line: str) -> None:
    print(f"[{time.monotonic() - BEGAN:6.1f} s] {line}", flush=True)


def pg_url(name: str) -> str:
    return ADMIN_URL.rpartition("/")[0] + "/" + name


def admin(sql: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


# --- the data, loaded once ----------------------------------------------------------------

def load(work: Path, *, codes: int, activations: int, accounts: int) -> tuple[Path, Path, dict[str, float]]:
    """The SQLite file every configuration starts from, and the lines file (one redemption per
    line, bench/post.lua's format: account i, product key i)."""
    db_path = work / "prepared.sqlite3"
    timings: dict[str, float] = {}
    conn = connect(db_path)
    now = datetime.now(UTC)
    stored = new_offer(conn, now)
    started = time.perf_counter()
    data = ("code\n" + "\n".join(code(i) for i in range(codes)) + "\n").encode()
    import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source=io.BytesIO(data), source_name="bench", now=now)
    timings["import_codes_s"] = round(time.perf_counter() - started, 2)
    day = (now - timedelta(days=3)).date().isoformat()
    rows = "".join(f"{key(i)},O365-HOME-ESD,DK,{day},{day},\n" for i in range(activations))
    started = time.perf_counter()
    import_activations(conn, source=io.BytesIO(("product_key,sku,country,purchased_at,activated_at,account_email\n"
                                                + rows).encode()), catalog=load_catalog(conn), now=now)
    timings["import_activations_s"] = round(time.perf_counter() - started, 2)
    started = time.perf_counter()
    emails = [f"u{i}@bench.example" for i in range(accounts)]
    sessions = mint_sessions(conn, emails)
    timings["mint_sessions_s"] = round(time.perf_counter() - started, 2)
    conn.close()
    lines = write_lines(work / "lines.txt", sessions, emails, [key(i) for i in range(accounts)], "DK")
    return db_path, lines, timings


@contextmanager
def pg_template(prepared: Path, work: Path, timings: dict[str, float]) -> Iterator[str]:
    """A PostgreSQL database holding the prepared file's rows, to clone (never served)."""
    name = f"{PREFIX}tpl_{secrets.token_hex(4)}"
    admin(f'CREATE DATABASE "{name}" {CODE_POINT_ORDER}')  # the baseline migration needs it
    try:
        started = time.perf_counter()
        copy_database(f"sqlite:///{prepared}", pg_url(name), base=work)
        with psycopg.connect(pg_url(name), autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")
        timings["copy_to_postgresql_s"] = round(time.perf_counter() - started, 2)
        yield name
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def fresh_database(store: str, prepared: Path, template: str | None, work: Path, label: str) -> Iterator[Path | str]:
    if store == "sqlite":
        path = work / f"{label}.sqlite3"
        shutil.copy(prepared, path)
        yield path
        return
    name = f"{PREFIX}{secrets.token_hex(5)}"
    admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    try:
        yield pg_url(name)
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def redemptions(target: Path | str) -> int:
    if isinstance(target, str):
        with psycopg.connect(target) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0])  # type: ignore[index]
    with sqlite3.connect(f"file:{target}?mode=ro", uri=True) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM redemptions").fetchone()[0])


# --- the instances ---------------------------------------------------------------------------

def start_instances(env: dict[str, str], count: int, logs: Path) -> list[tuple[subprocess.Popen[bytes], str]]:
    started = []
    try:
        for _ in range(count):
            port = free_port()
            with open(logs / f"serve-{port}.log", "ab") as log:
                process = subprocess.Popen([PROMO, "serve"], env={**env, "PROMO_SERVER_PORT": str(port)},
                                           stdout=log, stderr=subprocess.STDOUT)
            started.append((process, f"http://127.0.0.1:{port}"))
        for process, url in started:
            wait_ready(url + "/healthz", process)
    except BaseException:
        stop_instances(started)
        raise
    return started


def stop_instances(instances: list[tuple[subprocess.Popen[bytes], str]]) -> None:
    for process, _ in instances:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
    for process, _ in instances:
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def closed_loop(urls: list[str], lines: Path, start: int, count: int, seconds: int, work: Path) -> dict[str, Any]:
    """wrk at 64 connections in all, one wrk per instance (64/N connections each), each with
    its own slice of lines; requests and errors summed, percentiles the worst instance's."""
    every = lines.read_text(encoding="ascii").splitlines()[start:start + count]
    share = len(every) // len(urls)
    runs = []
    for k, url in enumerate(urls):
        part = work / f"closed-{k}.txt"
        part.write_text("\n".join(every[k * share:(k + 1) * share]) + "\n", encoding="ascii")
        threads = max(1, 2 // len(urls))
        runs.append(subprocess.Popen(
            ["wrk", f"-t{threads}", f"-c{64 // len(urls)}", f"-d{seconds}s", "--timeout", "5s", "-s", str(LUA), url,
             "--", str(part), str(threads), PATH], stdout=subprocess.PIPE, text=True))
    parts = []
    for run in runs:
        out, _ = run.communicate(timeout=seconds + 60)
        parts.append(json.loads(next(x for x in out.splitlines() if x.startswith("BENCH "))[6:]))
    requests = sum(p["requests"] for p in parts)
    length = max(p["seconds"] for p in parts)
    return {
        "requests": requests, "seconds": length, "status_errors": sum(p["status_errors"] for p in parts),
        "socket_errors": sum(p["socket_errors"] for p in parts),
        "per_second": round(requests / length), "lines_reused": any(p["requests"] > share for p in parts),
        **{f: max(p[f] for p in parts) for f in ("p50_ms", "p99_ms", "max_ms")},
    }


def under_disturbance(urls: list[str], lines: Path, cursor: int, remaining: int, rate: float, quiet: float,
                      disturb: Callable[[openloop.Load], dict[str, Any]]) -> tuple[dict[str, Any], int]:
    """An open loop at `rate`; after `quiet` s, disturb(load) runs to its end; then `quiet` s
    more. Requests due before it are "quiet", those due while it ran are "during"."""
    load = openloop.start(urls, PATH, rate=rate, seconds=3600, lines=lines, start_line=cursor, count=remaining)
    try:
        time.sleep(max(0.0, load.t0 + quiet - time.monotonic()))
        began = time.monotonic()
        figures = disturb(load)
        ended = time.monotonic()
        time.sleep(quiet)
    except BaseException:
        load.stop()
        load.wait(timeout=300)  # the workers end by themselves once stopped: none left behind
        raise
    load.stop()
    result = load.wait(timeout=300)
    s, e = began - load.t0, ended - load.t0
    quiet_part, during = result.summary(until=s, ok=(303,)), result.summary(since=s, until=e, ok=(303,))
    figures |= {"disturbance_s": round(e - s, 2), "quiet": quiet_part, "during": during}
    if quiet_part.get("completed_per_s") and during.get("completed_per_s") is not None:
        figures["completed_ratio_during_to_quiet"] = round(during["completed_per_s"] / quiet_part["completed_per_s"], 2)
    return figures, len(result.due)


def run_config(label: str, store: str, count: int, *, prepared: Path, template: str | None, lines: Path,
               accounts: int, restock: Path, args: argparse.Namespace, work: Path, base_env: dict[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {"store": store, "instances": count}
    with fresh_database(store, prepared, template, work, label) as target:
        env = {**base_env, **({"PROMO_DATABASE_URL": str(target)} if store == "postgresql" else
                              {"PROMO_DATABASE_PATH": str(target)})}
        say(f"{label}: starting {count} instance(s)…")
        instances = start_instances(env, count, work)
        urls = [url for _, url in instances]
        try:
            cursor = 0
            # 1. Closed loop, with the CPU meters and the lock sampler.
            app = CpuMeter(lambda: [p.pid for p, _ in instances])
            server = CpuMeter(backend_pids(ADMIN_URL, str(target).rpartition("/")[2])) if store == "postgresql" else None
            locks = LockSampler(str(target)) if store == "postgresql" else None
            before = redemptions(target)
            app.start()
            if server:
                server.start()
            if locks:
                locks.start()
            slice_ = max(1000, accounts // 3)
            out["closed_64"] = closed = closed_loop(urls, lines, cursor, slice_, args.seconds, work)
            app_s, server_s = app.stop(), server.stop() if server else 0.0
            out["lock_waits"] = locks.stop() if locks else None
            redeemed = redemptions(target) - before
            cursor += slice_
            capacity = redeemed / closed["seconds"]
            closed["redemptions"], closed["redemptions_per_s"] = redeemed, round(capacity)
            per_k = 1000 / redeemed if redeemed else float("nan")
            out["cpu_per_1000"] = {"app_s": round(app_s * per_k, 3), "server_s": round(server_s * per_k, 3),
                                   "total_s": round((app_s + server_s) * per_k, 3)}
            say(f"{label}: closed loop {capacity:.0f} redemptions/s; open loop at 50 % and 90 %…")
            if capacity < 1:
                raise RuntimeError(f"{label}: no redemption succeeded in the closed loop; see {work}/serve-*.log")
            # 2. Open loop at 50 % and 90 % of it.
            for share in (50, 90):
                result = openloop.run(urls, PATH, rate=capacity * share / 100, seconds=args.seconds, lines=lines,
                                      start_line=cursor, count=accounts - cursor)
                cursor += len(result.due)
                out[f"open_{share}"] = result.summary(ok=(303,))
            # 3. A restock as large as the pool, from the command line, during redemptions at 50 %.
            say(f"{label}: during an import of {args.restock_codes:,} codes…")

            def import_restock(load: openloop.Load) -> dict[str, Any]:
                started = time.perf_counter()
                done = subprocess.run([PROMO, "import-codes", "--campaign", SLUG, str(restock)], env=env,
                                      capture_output=True, text=True, timeout=3600)
                if done.returncode != 0:
                    raise RuntimeError(f"promo import-codes failed: {done.stderr[-2000:]}")
                return {"import_s": round(time.perf_counter() - started, 2)}

            out["during_import"], used = under_disturbance(urls, lines, cursor, accounts - cursor, capacity / 2,
                                                           args.quiet, import_restock)
            cursor += used
            # 4. A burst of failed staff sign-ins during redemptions at 50 %.
            say(f"{label}: during a burst of {args.burst} failed staff sign-ins…")

            def burst(load: openloop.Load) -> dict[str, Any]:
                async def go() -> list[tuple[float, int]]:
                    attackers, forms = await prepare_attackers(urls, args.burst)
                    try:
                        return await attack(attackers, forms)
                    finally:
                        for client in attackers:
                            await client.aclose()
                statuses: dict[str, int] = {}
                for _, status in asyncio.run(go()):
                    statuses[str(status)] = statuses.get(str(status), 0) + 1
                return {"signin_statuses": statuses}

            out["during_signin_burst"], used = under_disturbance(urls, lines, cursor, accounts - cursor, capacity / 2,
                                                                 args.quiet, burst)
            cursor += used
            out["lines_used"] = cursor
            out["peak_rss_mb"] = [peak_rss_mb(p.pid) for p, _ in instances]
        finally:
            stop_instances(instances)
        say(f"{label}: verifying the database…")
        # 5. The database, verified.
        started = time.perf_counter()
        checks = verify(target)
        out["verify"] = checks | {"seconds": round(time.perf_counter() - started, 2)}
        out["verified"] = passed(checks)
    return out


# --- the report -------------------------------------------------------------------------------

def ratios(configs: dict[str, dict[str, Any]]) -> dict[str, float]:
    def rate(label: str) -> float | None:
        return configs[label]["closed_64"]["redemptions_per_s"] if label in configs else None

    def cpu(label: str) -> float | None:
        return configs[label]["cpu_per_1000"]["total_s"] if label in configs else None

    out = {}
    for name, a, b, fn in (("throughput_pg2_to_pg1", "postgresql-2", "postgresql-1", rate),
                           ("throughput_pg2_to_sqlite1", "postgresql-2", "sqlite-1", rate),
                           ("throughput_pg1_to_sqlite1", "postgresql-1", "sqlite-1", rate),
                           ("cpu_per_redemption_pg1_to_sqlite1", "postgresql-1", "sqlite-1", cpu),
                           ("cpu_per_redemption_pg2_to_sqlite1", "postgresql-2", "sqlite-1", cpu)):
        x, y = fn(a), fn(b)
        if x is not None and y:
            out[name] = round(x / y, 2)
    return out


ROWS: list[tuple[str, Callable[[dict[str, Any]], Any]]] = [
    ("closed loop 64: redemptions/s", lambda c: c["closed_64"]["redemptions_per_s"]),
    ("closed loop 64: p50 / p99 ms", lambda c: f"{c['closed_64']['p50_ms']} / {c['closed_64']['p99_ms']}"),
    ("closed loop 64: errors (status+socket)", lambda c: c["closed_64"]["status_errors"] + c["closed_64"]["socket_errors"]),
    ("open 50 %: rate/s", lambda c: c["open_50"]["offered_per_s"]),
    ("open 50 %: p50 / p99 / p99.9 ms", lambda c: f"{c['open_50']['p50_ms']} / {c['open_50']['p99_ms']} / {c['open_50']['p999_ms']}"),
    ("open 50 %: errors", lambda c: c["open_50"]["errors"]),
    ("open 90 %: p50 / p99 / p99.9 ms", lambda c: f"{c['open_90']['p50_ms']} / {c['open_90']['p99_ms']} / {c['open_90']['p999_ms']}"),
    ("open 90 %: errors", lambda c: c["open_90"]["errors"]),
    # Late leaving the generator: waiting for a free connection, or (server idle) a generator short of CPU.
    ("open 50 % / 90 %: generator lag p99 ms", lambda c: f"{c['open_50']['generator_lag_p99_ms']} / "
                                                           f"{c['open_90']['generator_lag_p99_ms']}"),
    ("CPU s per 1,000: app / server", lambda c: f"{c['cpu_per_1000']['app_s']} / {c['cpu_per_1000']['server_s']}"),
    ("lock waits, share of busy backend time", lambda c: c["lock_waits"]["lock_wait_share"] if c["lock_waits"] else "n/a"),
    ("import: seconds", lambda c: c["during_import"]["import_s"]),
    ("import: p99 quiet / during ms", lambda c: f"{c['during_import']['quiet'].get('p99_ms')} / "
                                                 f"{c['during_import']['during'].get('p99_ms')}"),
    ("import: completed during / quiet", lambda c: c["during_import"].get("completed_ratio_during_to_quiet")),
    ("import: errors during", lambda c: c["during_import"]["during"].get("errors")),
    ("sign-in burst: seconds", lambda c: c["during_signin_burst"]["disturbance_s"]),
    ("sign-in burst: p99 quiet / during ms", lambda c: f"{c['during_signin_burst']['quiet'].get('p99_ms')} / "
                                                        f"{c['during_signin_burst']['during'].get('p99_ms')}"),
    ("peak RSS per instance MB", lambda c: c["peak_rss_mb"]),
    ("verification (seconds)", lambda c: f"{'passes' if c['verified'] else 'FAILS'} ({c['verify']['seconds']})"),
]


def table(results: dict[str, Any]) -> str:
    configs = results["configs"]
    labels = list(configs)
    lines = [f"baseline hello-world POST: {results['baseline_hello_post']['per_second']}/s (wrk, 64 connections)",
             "", f"{'figure':<42}" + "".join(f"{label:>24}" for label in labels)]
    for name, fn in ROWS:
        cells = []
        for label in labels:
            try:
                cells.append(str(fn(configs[label])))
            except (KeyError, TypeError):
                cells.append("-")
        lines.append(f"{name:<42}" + "".join(f"{cell:>24}" for cell in cells))
    for label in labels:
        waits = configs[label].get("lock_waits")
        for entry in (waits or {}).get("by_lock", [])[:3]:
            lines.append(f"  {label} lock wait {entry['share_of_busy']:.1%}: {entry['lock']} on {entry['relation']}: "
                         f"{entry['query'][:90]}")
    for label in labels:
        config = configs[label]
        short = [phase for phase in ("open_50", "open_90") if config.get(phase, {}).get("ran_out_of_lines")]
        short += [phase for phase in ("during_import", "during_signin_burst")
                  if config.get(phase, {}).get("during", {}).get("ran_out_of_lines")]
        if short or config.get("closed_64", {}).get("lines_reused"):
            lines.append(f"  {label}: RAN OUT OF ACCOUNTS in {short or ['closed_64']}: raise --accounts")
    lines += ["", "ratios: " + (", ".join(f"{k} {v}" for k, v in results["ratios"].items())
                                or "none (one configuration; `scripts/bench compare` runs all three)")]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--compare", action="store_true", help="SQLite×1, PostgreSQL×1, PostgreSQL×2 in one run")
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--instances", type=int, default=1)
    parser.add_argument("--scale", type=float, default=1.0, help="every count times this (0.001: a smoke run)")
    parser.add_argument("--seconds", type=int, default=10, help="length of the closed-loop and each open-loop run")
    parser.add_argument("--quiet", type=float, default=5.0, help="seconds of redemptions before and after a disturbance")
    parser.add_argument("--burst", type=int, default=50, help="failed staff sign-ins sent at once")
    parser.add_argument("--accounts", type=int, default=None,
                        help="signed-in accounts, each with its key (default 200,000 times --scale): one per request")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results-compare.json")
    args = parser.parse_args()
    if args.instances < 1:
        parser.error("--instances must be at least 1")
    if args.database == "sqlite" and args.instances > 1 and not args.compare:
        parser.error("--instances N > 1 needs --database postgresql: SQLite has one writer, in one process")
    if not shutil.which("wrk"):
        parser.error("the closed loop needs wrk (scripts/bench installs Debian's)")
    chosen = dict(CONFIGS) if args.compare else {f"{args.database}-{args.instances}": (args.database, args.instances)}

    def n(count: int) -> int:
        return max(1, round(count * float(args.scale)))

    accounts = args.accounts or max(n(ACCOUNTS), MIN_ACCOUNTS)
    args.restock_codes = n(CODES)
    results: dict[str, Any] = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "cores": os.cpu_count(),
                               "load_average_at_start": round(os.getloadavg()[0], 1), "scale": args.scale,
                               "seconds": args.seconds, "codes": max(n(CODES), accounts),
                               "activations": max(n(ACTIVATIONS), accounts), "accounts": accounts, "configs": {}}
    partial = args.out.with_suffix(".partial.json")
    work = Path(tempfile.mkdtemp(prefix="promo-bench-compare-"))
    try:
        say(f"loading {results['codes']:,} codes, {results['activations']:,} activation records, {accounts:,} sessions…")
        prepared, lines, timings = load(work, codes=results["codes"], activations=results["activations"], accounts=accounts)
        results["prepare"] = timings
        restock = work / "restock.csv"
        restock.write_text("code\n" + "\n".join(code(10_000_000 + i) for i in range(args.restock_codes)) + "\n",
                           encoding="ascii")
        config = write_config(work, prepared)
        base_env = serve_env(config, PROMO_SECURITY_KEY_ATTEMPTS_PER_HOUR="100000000")

        say("baseline…")
        results["baseline_hello_post"] = baseline(base_env, args.seconds)

        template_needed = any(store == "postgresql" for store, _ in chosen.values())
        if template_needed:
            say("copying the rows into a PostgreSQL template…")
        with (pg_template(prepared, work, timings) if template_needed else nullcontext()) as template:
            for label, (store, count) in chosen.items():
                results["configs"][label] = run_config(
                    label, store, count, prepared=prepared, template=template, lines=lines, accounts=accounts,
                    restock=restock, args=args, work=work, base_env=base_env)
                results["ratios"] = ratios(results["configs"])
                partial.write_text(json.dumps(results, indent=2) + "\n")
        results["load_average_at_end"] = round(os.getloadavg()[0], 1)
        print()
        print(table(results))
        args.out.write_text(json.dumps(results, indent=2) + "\n")
        partial.unlink(missing_ok=True)
        print(f"\nwritten to {args.out}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
