"""Per-request overhead of the redemption route (issue 18): the real `promo serve` app with only
the redemption transaction replaced by a stub, against the hello-world baseline, in one run.

    .venv/bin/python bench/overhead.py                    # 3 rounds of 5 s each; prints req/s, CPU and ratios
    .venv/bin/python bench/overhead.py --compare TREE     # and another source tree's app in the same rounds
    .venv/bin/python bench/overhead.py --profile /tmp/p   # and a py-spy profile of the stubbed server
    .venv/bin/python bench/overhead.py --prepare /tmp/o --sessions 2000    # then instructions per request:
    PROMO_BENCH_CALLGRIND=1 valgrind --tool=callgrind .venv/bin/python bench/overhead.py --in-process /tmp/o stub 300

The stub lives here, not in the product: the server process is this script in `--serve-stub`
mode, which replaces `promo.views.consumer.redeem` (the one call into the write transaction)
by a coroutine that checks the input as the real one does (`RedeemRequest.normalized`) and
returns a canned success. Everything else is the real app: routing, the middleware, the session
read from SQLite, the form, CSRF, the redirect. All servers run at once (only one is loaded at
a time). Each round loads hello, then each stubbed app (sessions marked seen first, so no run
pays the once-a-minute session touch), then GET /healthz through the app's whole stack as a
reference; ratios are taken within a round and their medians reported. The CPU the server
used per request (from /proc) is printed too: on a machine shared with other work it wanders
less than requests/s. Everything targets 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SLUG = "bench"
PYSPY = str(Path(sys.executable).parent / "py-spy")


def stub_redeem() -> None:
    """Replace the app's one call into the redemption transaction by a canned success."""
    from promo.campaigns.rules import Decision
    from promo.redemption import RedeemRequest, RedemptionResult
    from promo.views import consumer

    async def stubbed_redeem(db: object, request: RedeemRequest, now: datetime, *, guess_limit: int | None = None) -> RedemptionResult:
        request.normalized()  # the input check the real redeem() makes before its transaction
        return RedemptionResult("redeemed", Decision(), redemption_id=1, code="STUB", code_expires_at=None)

    consumer.redeem = stubbed_redeem  # type: ignore[assignment]


def serve_stub() -> None:
    """`promo serve` with the redemption transaction stubbed out (runs in its own process)."""
    from promo.cli import main as promo_main

    stub_redeem()
    promo_main(["serve"], prog_name="promo")


def count_in_process(work: Path, which: str, requests: int) -> None:
    """Call the ASGI app in this process (no sockets): the stubbed app or hello, `requests`
    times after a warm-up. Under `valgrind --tool=callgrind` the counters are zeroed before the
    loop and dumped after it (callgrind_control), so the dump holds the requests only:
    instructions per request = its total / `requests`, which repeat to 0.1 % where req/s
    on a shared machine do not."""
    import asyncio
    import time

    config = work / "served.toml"
    from bench.run import serve_env

    os.environ.update(serve_env(config))
    from bench.hello import app as hello
    from promo.app import create_app
    from promo.config import load_settings
    from promo.logs import configure_logging

    stub_redeem()
    settings = load_settings(config)
    configure_logging(settings.logging_format, settings.logging_level)
    app = create_app(settings)
    application, path = (app, f"/offers/{SLUG}/redeem") if which == "stub" else (hello, "/hello")
    rows = [line.split() for line in (work / "lines.txt").read_text().splitlines()]

    async def one(i: int) -> int:
        cookie, csrf, key, country = rows[i % len(rows)]
        body = f"csrf={csrf}&product_key={key}&country={country}&accept_terms=yes&idempotency_key={key}-{i}".encode()
        scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
                 "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "",
                 "headers": [(b"host", b"127.0.0.1"), (b"cookie", b"promo_session=" + cookie.encode()),
                             (b"content-type", b"application/x-www-form-urlencoded"),
                             (b"content-length", str(len(body)).encode())],
                 "client": ("127.0.0.1", 5555), "server": ("127.0.0.1", 8000), "state": {}}
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        await application(scope, receive, send)  # type: ignore[arg-type]
        return int(sent[0]["status"])  # type: ignore[call-overload]

    def callgrind(command: str) -> None:
        if os.environ.get("PROMO_BENCH_CALLGRIND"):
            subprocess.run(["callgrind_control", command, str(os.getpid())], check=True, capture_output=True)

    async def run() -> None:
        async with app.router.lifespan_context(app):
            for i in range(200):
                assert await one(i) in (200, 303)
            refresh_sessions(work / "overhead.sqlite3")  # no request in the loop pays a session touch
            callgrind("-z")
            started = time.process_time()
            for i in range(requests):
                await one(i)
            elapsed = time.process_time() - started
            callgrind("-d")
            print(f"{which}: {requests} requests in-process, {elapsed / requests * 1e6:.1f} µs CPU each")

    asyncio.run(run())


def prepare(work: Path, sessions: int) -> tuple[Path, Path]:
    """A fresh SQLite file with the offer and `sessions` signed-in accounts; returns the config
    and the wrk lines file (cookie csrf product_key country)."""
    from bench.run import key, new_offer, write_lines
    from promo.db import connect
    from tests.support.served import mint_sessions, write_config

    db_path = work / "overhead.sqlite3"
    config = write_config(work, db_path)
    conn = connect(db_path)
    new_offer(conn, datetime.now(UTC))
    accounts = [f"o{i}@bench.example" for i in range(sessions)]
    minted = mint_sessions(conn, accounts)
    conn.close()
    return config, write_lines(work / "lines.txt", minted, accounts, [key(i) for i in range(sessions)], "DK")


def refresh_sessions(db_path: Path) -> None:
    """Mark every session seen just now, so that no run pays the once-a-minute touch (a write
    transaction, which the stub is meant to leave out; minting 20,000 sessions and a few
    rounds take more than the minute)."""
    import sqlite3

    from promo.timeutil import db_time

    with sqlite3.connect(db_path) as conn:
        conn.execute("UPDATE sessions SET last_seen_at = :now", {"now": db_time(datetime.now(UTC))})
    conn.close()


def wrk(url: str, path: str, seconds: int, lines: Path | None, connections: int = 64, pid: int | None = None) -> dict[str, float]:
    """bench/run.py's wrk at `connections` for `seconds`; with `pid`, also the server's CPU µs
    per request and its share of a core (from one reading of /proc after the run)."""
    from bench.run import wrk as run_wrk
    from bench.sampling import cpu_seconds

    before = cpu_seconds(pid) if pid else None
    result = run_wrk(url, path, connections, seconds, lines)
    if pid:
        after = cpu_seconds(pid)
        assert before is not None and after is not None, "the server exited during its run"
        result["cpu_us"] = round((after - before) / result["requests"] * 1e6)
        result["cpu_share"] = round((after - before) / result["seconds"], 2)
    return result


def wrk_get(url: str, seconds: int, connections: int = 64) -> float:
    out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", url],
                         capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    return round(float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)))  # type: ignore[union-attr]


# Where a sample's time goes: the deepest frame (leaf first) that names one of these. A frame
# is py-spy's "function (file:line)"; a pattern matches its function name or its file.
CATEGORIES: list[tuple[str, tuple[str, ...]]] = [
    ("session lookup (SQLite point read)", ("load_session", "session_hash", "lookup (promo/db.py")),
    ("CSRF check", ("same_token", "csrf_ok")),
    ("form parsing", ("read_form", "parse_qsl", "FormData")),
    ("input check (normalized)", ("normalized", "stubbed_redeem")),
    ("logging (structlog)", ("structlog", "logging/__init__", "bind_contextvars", "unbind_contextvars")),
    ("metrics (prometheus)", ("observe_request", "prometheus_client")),
    ("i18n (negotiate, Localizer)", ("negotiate", "region_of", "i18n.py", "babel")),
    ("page context (cookies, country)", ("page_context", "_chosen_country", "_region", "cookies (starlette")),
    ("Jinja rendering", ("jinja2", "templating.py", "render (promo")),
    ("response (redirect, headers)", ("RedirectResponse", "responses.py", "init_headers", "datastructures.py")),
    ("RequestContext middleware (ids, headers)", ("promo/app.py", "http_policy.py")),
    ("the view itself (redeem_submit, guards)", ("promo/views/consumer.py", "promo/views/guards.py", "promo/redemption.py")),
    ("Starlette routing, exceptions, request", ("starlette/routing", "starlette/middleware", "starlette/_exception_handler",
                                              "starlette/applications", "starlette/requests", "starlette/concurrency")),
    ("uvicorn + httptools (HTTP parsing, transport)", ("uvicorn", "httptools")),
    ("asyncio / uvloop", ("asyncio", "uvloop")),
]


def categorize(collapsed: Path) -> tuple[int, list[tuple[str, int]], list[tuple[str, int]]]:
    """Samples per category, and the top leaf functions, from py-spy's raw (collapsed) output."""
    by_category: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        count = int(count_text)
        frames = stack.split(";")
        if frames and frames[0].startswith("process "):
            frames = frames[1:]
        if frames and frames[0].startswith("thread "):
            frames = frames[1:]
        total += count
        leaves[re.sub(r":\d+\)", ")", frames[-1] if frames else "?")] += count
        for frame in reversed(frames):
            name = next((label for label, patterns in CATEGORIES if any(p in frame for p in patterns)), None)
            if name is not None:
                by_category[name] += count
                break
        else:
            by_category["other"] += count
    return total, by_category.most_common(), leaves.most_common(25)


def profile(pid: int, url: str, lines: Path, seconds: int, out_dir: Path, native: bool) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    raw = out_dir / "stub.collapsed"
    command = [PYSPY, "record", "--pid", str(pid), "--format", "raw", "--output", str(raw), "--rate", "250",
               "--duration", str(seconds), "--nonblocking"] + (["--native"] if native else [])
    spy = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wrk(url, f"/offers/{SLUG}/redeem", seconds + 1, lines)
    finally:
        _, err = spy.communicate(timeout=seconds + 60)
    if not raw.exists():
        print(f"py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")
        return
    total, categories, leaves = categorize(raw)
    print(f" profile of the stubbed server ({total} samples, {raw}); the deepest category on each stack:")
    for name, count in categories:
        print(f"  {100 * count / total:5.1f} %  {name}")
    print("top leaf functions:")
    for name, count in leaves[:15]:
        print(f"  {100 * count / total:5.1f} %  {name}")


def start(command: list[str], env: dict[str, str], port: int, ready: str) -> subprocess.Popen[bytes]:
    from bench.run import wait_ready

    process = subprocess.Popen(command, env={**env, "PROMO_SERVER_PORT": str(port)}, cwd=ROOT)
    wait_ready(f"http://127.0.0.1:{port}{ready}", process)
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=5, help="length of each wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of runs; the median of each ratio is reported")
    parser.add_argument("--sessions", type=int, default=20_000, help="signed-in accounts the requests cycle through")
    parser.add_argument("--compare", type=Path, default=None, metavar="TREE",
                        help="also load the stubbed app of another source tree (e.g. `git archive` of an older commit), "
                             "in the same rounds: before and after from one run")
    parser.add_argument("--profile", type=Path, default=None, help="also profile the stubbed server with py-spy, into this folder")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    parser.add_argument("--in-process", nargs=3, metavar=("FOLDER", "stub|hello", "N"), default=None,
                        help="call the app in this process N times on FOLDER (made by --prepare); for callgrind: "
                             "PROMO_BENCH_CALLGRIND=1 valgrind --tool=callgrind python bench/overhead.py --in-process …")
    parser.add_argument("--prepare", type=Path, default=None, metavar="FOLDER", help="only prepare FOLDER for --in-process")
    parser.add_argument("--serve-stub", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_stub:
        serve_stub()
        return
    if args.prepare:
        args.prepare.mkdir(parents=True, exist_ok=True)
        prepare(args.prepare, args.sessions)
        return
    if args.in_process:
        folder, which, count = args.in_process
        count_in_process(Path(folder), which, int(count))
        return

    from bench.run import hello_command, serve_env
    from tests.support.mailserver import free_port

    work = Path(tempfile.mkdtemp(prefix="promo-overhead-"))
    print("preparing…", flush=True)
    config, lines = prepare(work, args.sessions)
    env = serve_env(config)
    stubs = {"stub": ROOT} | ({"compare": args.compare.resolve()} if args.compare else {})
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    try:
        port = free_port()
        servers["hello"] = (start(hello_command(port), env, port, "/"), f"http://127.0.0.1:{port}")
        for name, tree in stubs.items():
            if tree != ROOT:  # the other tree runs this very script, so its stub is this one
                shutil.copy(Path(__file__), tree / "bench" / "overhead.py")
            port = free_port()
            servers[name] = (start([sys.executable, str(tree / "bench" / "overhead.py"), "--serve-stub"], env, port, "/healthz"),
                             f"http://127.0.0.1:{port}")
        rounds = []
        for n in range(args.rounds):
            process, url = servers["hello"]
            hello = wrk(url, "/hello", args.seconds, None, pid=process.pid)
            row: dict[str, float] = {"hello": hello["per_second"], "hello_cpu_us": hello["cpu_us"]}
            text = [f"hello {hello['per_second']}/s ({hello['cpu_us']} µs CPU each)"]
            for name in stubs:
                refresh_sessions(work / "overhead.sqlite3")
                process, url = servers[name]
                stub = wrk(url, f"/offers/{SLUG}/redeem", args.seconds, lines, pid=process.pid)
                assert stub["status_errors"] + stub["socket_errors"] == 0, stub
                row |= {name: stub["per_second"], f"{name}_cpu_us": stub["cpu_us"],
                        f"{name}_ratio": stub["per_second"] / hello["per_second"],
                        f"{name}_cpu_ratio": hello["cpu_us"] / stub["cpu_us"]}
                text.append(f"{name} {stub['per_second']}/s ({stub['cpu_us']} µs CPU each; p50 {stub['p50_ms']} ms, "
                            f"p99 {stub['p99_ms']} ms), ratio {row[f'{name}_ratio']:.3f}")
            row["healthz"] = wrk_get(servers["stub"][1] + "/healthz", args.seconds)
            row["healthz_ratio"] = row["healthz"] / hello["per_second"]
            rounds.append(row)
            print(f"round {n + 1}: " + "; ".join(text) + f"; GET /healthz {row['healthz']:.0f}/s", flush=True)
        median = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        print(f"\nmedians of {args.rounds} rounds (hello {median['hello']:.0f}/s, {median['hello_cpu_us']:.0f} µs CPU per request):")
        for name, tree in stubs.items():
            print(f"  {name} ({tree}): {median[name]:.0f}/s, {median[f'{name}_cpu_us']:.0f} µs CPU per request; "
                  f"ratio to hello {median[f'{name}_ratio']:.3f} (target ≥ 0.30), by CPU per request {median[f'{name}_cpu_ratio']:.3f}")
        print(f"  GET /healthz through the whole app: ratio {median['healthz_ratio']:.3f}")
        try:
            load = os.getloadavg()[0]
        except OSError:
            load = float("nan")
        print(f"load average at the end: {load:.1f}")
        if args.profile:
            for name in stubs:  # each stubbed app, under the same load
                refresh_sessions(work / "overhead.sqlite3")
                print(f"\n{name}:", end="")
                profile(servers[name][0].pid, servers[name][1], lines, args.seconds, args.profile / name, args.native)
    finally:
        for process, _ in servers.values():
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
