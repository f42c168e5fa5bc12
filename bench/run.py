"""Promo benchmark: one command (scripts/bench), figures printed and written to
bench/results.json. See bench/README.md for what each figure means and the targets.

Everything targets 127.0.0.1 and stops by itself (wrk runs are bounded in time).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx2 as httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.data import code  # noqa: E402
from bench.verify import verify  # noqa: E402
from promo.activations import import_activations  # noqa: E402
from promo.campaign_store import StoredCampaign, get_campaign, save_campaign  # noqa: E402
from promo.campaigns import campaign_from_dict  # noqa: E402
from promo.catalog import load_catalog, shipped_catalog, upsert_skus  # noqa: E402
from promo.codes import import_codes  # noqa: E402
from promo.config import load_settings  # noqa: E402
from promo.db import Database, connect, run_group, transaction  # noqa: E402
from promo.demo import demo_definition  # noqa: E402
from promo.logs import configure_logging  # noqa: E402
from promo.mail import MailRelay  # noqa: E402
from promo.migrate import migrate  # noqa: E402
from promo.redemption import RedeemRequest, redeem_sync, redeem_unit  # noqa: E402
from promo.templating import Templates  # noqa: E402
from tests.support.mailserver import free_port  # noqa: E402
from tests.support.served import mint_sessions, write_config  # noqa: E402

PROMO = str(Path(sys.executable).parent / "promo")
UVICORN = str(Path(sys.executable).parent / "uvicorn")
LUA = ROOT / "bench" / "post.lua"
SLUG = "bench"
CODES, ACTIVATIONS = 1_000_000, 200_000


def key(n: int) -> str:
    return f"BK{n:023d}"



def wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            httpx.get(url, timeout=1)
            return
        except httpx.TransportError:
            assert process.poll() is None, "server exited"
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer")


def wrk(url: str, path: str, connections: int, seconds: int, lines: Path | None) -> dict[str, float]:
    threads = 2
    out = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(LUA), url,
         "--", str(lines) if lines else "-", str(threads), path],
        capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("BENCH "))
    result = json.loads(line[6:])
    result["per_second"] = round(result["requests"] / result["seconds"])
    return result


def wait_port(port: int) -> None:
    import socket
    deadline = time.time() + 10
    while time.time() < deadline:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def serve_env(config: Path, **settings: str) -> dict[str, str]:
    """The environment a benchmark runs `promo serve` in: `config`, production, warnings only, no
    mail relay or sink; `settings` adds or overrides PROMO_* variables."""
    return {**os.environ, "PROMO_CONFIG": str(config), "PROMO_LOGGING_LEVEL": "WARNING",
            "PROMO_ENVIRONMENT": "production", "PROMO_SERVER_PUBLIC_URL": "https://bench.promo.invalid",
            "PROMO_MAIL_RELAY": "false", "PROMO_MAIL_SINK": "false", **settings}


def new_offer(conn: sqlite3.Connection, now: datetime) -> StoredCampaign:
    """On a fresh database: the schema, the shipped catalog and the demo offer as SLUG."""
    migrate(conn)
    with transaction(conn):
        upsert_skus(conn, shipped_catalog())
        save_campaign(conn, campaign_from_dict(demo_definition(now) | {"slug": SLUG}, load_catalog(conn)), actor="bench", now=now)
    return get_campaign(conn, SLUG)


def hello_command(port: int) -> list[str]:
    """The hello-world server (bench/hello.py) on uvicorn as `promo serve` runs it (uvloop, httptools)."""
    return [UVICORN, "bench.hello:app", "--port", str(port), "--loop", "uvloop", "--http", "httptools",
            "--no-access-log", "--log-level", "warning"]


def baseline(env: dict[str, str], seconds: int) -> dict[str, float]:
    """wrk at 64 connections POSTing to the hello-world server: the ceiling the figures are read against."""
    port = free_port()
    hello = subprocess.Popen(hello_command(port), cwd=ROOT, env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/", hello)
        return wrk(f"http://127.0.0.1:{port}", "/hello", 64, seconds, None)
    finally:
        hello.send_signal(signal.SIGINT)
        hello.wait(timeout=15)


def write_lines(path: Path, sessions: dict[str, tuple[str, str]], accounts: list[str], keys: list[str], country: str) -> Path:
    with open(path, "w") as out:
        for account, product_key in zip(accounts, keys, strict=True):
            cookie, csrf = sessions[account]
            out.write(f"{cookie} {csrf} {product_key} {country}\n")
    return path


def write_refusals(path: Path, db_path: Path, sessions: dict[str, tuple[str, str]], accounts: list[str],
                   n: Callable[[int], int]) -> Path:
    """Three kinds of refusal, interleaved. "A second redemption" uses accounts that the
    redemption runs did redeem for (read back from the database), so none of them can succeed."""
    with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True) as peek:
        redeemed = [row[0] for row in peek.execute("SELECT account_email FROM redemptions ORDER BY id LIMIT :n",
                                                    {"n": n(20_000)})]
    with open(path, "w") as out:
        for i in range(n(20_000)):
            account = accounts[n(140_000) + i % n(10_000)]
            cookie, csrf = sessions[account]
            kind = i % 3
            if kind == 0:  # ineligible SKU (R-X4)
                out.write(f"{cookie} {csrf} {key(n(ACTIVATIONS) - n(20_000) + i)} DK\n")
            elif kind == 1:  # wrong country declared (R-X17)
                out.write(f"{cookie} {csrf} {key(n(150_000) + i)} NO\n")
            else:  # a second redemption for an account that has one (R-X6)
                c2, s2 = sessions[redeemed[i % len(redeemed)]]
                out.write(f"{c2} {s2} {key(n(160_000) + i)} DK\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=10, help="length of each wrk run")
    parser.add_argument("--synchronous", choices=["FULL", "NORMAL"], default=None,
                        help="database.synchronous for this run (default: config.toml's)")
    parser.add_argument("--scale", type=float, default=1.0,
                        help="every count times this (the test suite runs 0.01: the whole harness, in seconds)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results.json", help="where the JSON goes")
    args = parser.parse_args()

    def n(count: int) -> int:
        return max(1, round(count * args.scale))

    results: dict[str, object] = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "cores": os.cpu_count()}
    work = Path(tempfile.mkdtemp(prefix="promo-bench-"))
    db_path = work / "bench.sqlite3"
    config = write_config(work, db_path)
    settings = load_settings(config)
    synchronous = args.synchronous or settings.database_synchronous
    results["synchronous"] = synchronous

    print("loading data…", flush=True)
    conn = connect(db_path, synchronous=synchronous)
    now = datetime.now(UTC)
    stored = new_offer(conn, now)
    data = ("code\n" + "\n".join(code(i) for i in range(n(CODES))) + "\n").encode()
    started = time.perf_counter()
    import_codes(conn, campaign_id=stored.id, campaign=stored.campaign, source=io.BytesIO(data), source_name="bench", now=now)
    results["codes"], results["activations"] = n(CODES), n(ACTIVATIONS)
    results["import_1m_codes_s"] = round(time.perf_counter() - started, 2)
    day = (now - timedelta(days=3)).date().isoformat()
    # Most keys qualify (DK); the last 20,000 are a trial SKU, for refusals (R-X4).
    rows = "".join(f"{key(i)},{'O365-HOME-TRIAL' if i >= n(ACTIVATIONS) - n(20_000) else 'O365-HOME-ESD'},DK,{day},{day},\n"
                   for i in range(n(ACTIVATIONS)))
    started = time.perf_counter()
    import_activations(conn, source=io.BytesIO(("product_key,sku,country,purchased_at,activated_at,account_email\n" + rows).encode()),
                       catalog=load_catalog(conn), now=now)
    results["import_200k_activations_s"] = round(time.perf_counter() - started, 2)
    accounts = [f"u{i}@bench.example" for i in range(n(150_000))]
    started = time.perf_counter()
    sessions = mint_sessions(conn, accounts)
    results["mint_150k_sessions_s"] = round(time.perf_counter() - started, 2)
    conn.close()

    run64 = write_lines(work / "run64.txt", sessions, accounts[:n(70_000)], [key(i) for i in range(n(70_000))], "DK")
    run512 = write_lines(work / "run512.txt", sessions, accounts[n(70_000):n(140_000)],
                         [key(i) for i in range(n(70_000), n(140_000))], "DK")

    env = serve_env(config, PROMO_DATABASE_SYNCHRONOUS=synchronous, PROMO_SECURITY_KEY_ATTEMPTS_PER_HOUR="100000000")

    print("baseline…", flush=True)
    results["baseline_hello_post"] = baseline(env, args.seconds)

    print("redemptions over HTTP…", flush=True)
    port = free_port()
    env["PROMO_SERVER_PORT"] = str(port)
    server = subprocess.Popen([PROMO, "serve"], env=env)
    try:
        wait_ready(f"http://127.0.0.1:{port}/healthz", server)
        url, path = f"http://127.0.0.1:{port}", f"/offers/{SLUG}/redeem"
        results["redeem_64"] = wrk(url, path, 64, args.seconds, run64)
        results["redeem_512"] = wrk(url, path, 512, args.seconds, run512)
        refuse = write_refusals(work / "refuse.txt", db_path, sessions, accounts, n)
        results["refusals_64"] = wrk(url, path, 64, args.seconds, refuse)
        # Every answer must be a refusal (4xx): a 303 would mean a line redeemed after all.
        results["refusals_64"]["all_refused"] = results["refusals_64"]["status_errors"] == results["refusals_64"]["requests"]
        results["server_peak_rss_mb"] = peak_rss_mb(server.pid)
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(timeout=30)
    results["verify"] = verify(db_path)

    print("storage ceiling…", flush=True)
    conn = connect(db_path, synchronous=synchronous)
    requests = [RedeemRequest(SLUG, f"s{i}@bench.example", key(n(170_000) + i), terms_accepted=True).normalized()
                for i in range(n(10_000))]
    started = time.perf_counter()
    for request in requests:
        redeem_sync(conn, request, datetime.now(UTC))
    results["storage_redeem_one_at_a_time_per_s"] = round(len(requests) / (time.perf_counter() - started))
    # The transaction alone, 64 per COMMIT, no event loop: what the storage can do at best.
    # (Keys from 150,000 were only refused over HTTP, for R-X17: none has redeemed.)
    requests = [RedeemRequest(SLUG, f"t{i}@bench.example", key(n(150_000) + i), terms_accepted=True).normalized()
                for i in range(n(10_000))]
    started = time.perf_counter()
    for chunk in range(0, len(requests), 64):
        now = datetime.now(UTC)
        outcomes = run_group(conn, [(redeem_unit, (r, now), {}) for r in requests[chunk : chunk + 64]])
        assert all(ok and value.redeemed for ok, value in outcomes)
    results["storage_redeem_64_per_commit_per_s"] = round(len(requests) / (time.perf_counter() - started))
    conn.close()

    async def grouped() -> float:
        from promo.redemption import redeem
        async with Database(db_path, synchronous=synchronous) as db:
            batch = [RedeemRequest(SLUG, f"g{i}@bench.example", key(n(140_000) + i), terms_accepted=True)  # unused by the HTTP runs
                     for i in range(n(10_000))]
            started = time.perf_counter()
            for chunk in range(0, len(batch), 64):  # 64 in flight, as 64 connections would be
                outcomes = await asyncio.gather(*(redeem(db, r, datetime.now(UTC)) for r in batch[chunk : chunk + 64]))
                assert all(o.redeemed for o in outcomes)
            return len(batch) / (time.perf_counter() - started)

    results["storage_redeem_per_s"] = round(asyncio.run(grouped()))
    conn = connect(db_path, synchronous=synchronous)
    queued = conn.execute("SELECT COUNT(*) FROM outbox WHERE status = 'queued'").fetchone()[0]
    conn.close()

    print("mail relay…", flush=True)
    configure_logging("json", "WARNING")  # no per-message log lines in the measurement
    sink_port = free_port()
    sink = subprocess.Popen([sys.executable, str(ROOT / "bench" / "sink.py"), str(sink_port), "300"])

    async def relay_all() -> float:
        mail = settings.mail.__class__(**{**settings.mail.__dict__, "port": sink_port, "host": "127.0.0.1"})
        async with Database(db_path, synchronous=synchronous) as db:
            relay = MailRelay(db, mail, Templates(auto_reload=False), "http://127.0.0.1")
            target = min(n(10_000), queued)
            sent = 0
            started = time.perf_counter()
            while sent < target:
                sent += await relay.deliver_once(keep_open=True)  # as relay.run() does
            elapsed = time.perf_counter() - started
            await relay.close()
            return sent / elapsed

    try:
        wait_port(sink_port)
        results["mail_relay_msgs_per_s"] = round(asyncio.run(relay_all()))
    finally:
        sink.terminate()
        sink.wait(timeout=10)

    base = results["baseline_hello_post"]["per_second"]  # type: ignore[index]
    results["ratio_redeem64_to_baseline"] = round(results["redeem_64"]["per_second"] / base, 3)  # type: ignore[index]
    results["ratio_refusals_to_baseline"] = round(results["refusals_64"]["per_second"] / base, 3)  # type: ignore[index]
    results["ratio_redeem64_to_storage"] = round(results["redeem_64"]["per_second"] / results["storage_redeem_per_s"], 3)  # type: ignore[index,operator]

    print()
    print(f"{'figure':<36} {'value':>12}  p50/p95/p99 ms, errors")
    for name, value in results.items():
        if isinstance(value, dict) and "per_second" in value:
            print(f"{name:<36} {value['per_second']:>10}/s  {value['p50_ms']}/{value['p95_ms']}/{value['p99_ms']}, "
                  f"status {value['status_errors']}, socket {value['socket_errors']}")
        elif not isinstance(value, dict):
            print(f"{name:<36} {value:>12}")
    print(f"{'verify':<36} {results['verify']}")
    out = args.out
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nwritten to {out}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
